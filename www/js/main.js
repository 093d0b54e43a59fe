// Wires the page: support slots, the query, the verification pair, the network's status.

import { DrawingPad } from './pad.js';
import { shippedWeights, wasmModule } from './engine.js';
import { Network } from './network.js';
import { renderScores, percent } from './scores.js';
import { exportSet, importSet, download } from './share.js';
import { FineTunePanel, tuneState } from './tune.js';

const MAX_SLOTS = 20;
/** Drawings per character: the first, and up to five more for fine-tuning and matching. */
const MAX_DRAWINGS = 6;
const DEFAULT_SLOTS = 5;
const DRAW_DEBOUNCE_MS = 120;

const $ = (id) => document.getElementById(id);
const status = { root: $('status'), text: $('status-text'), progress: $('status-progress') };

/** The page's state, also read by the browser tests. */
const app = {
  /** The engines (see network.js); `app.engine` and `app.backend` are the answering one's. */
  network: null,
  get engine() {
    return this.network?.active?.engine ?? null;
  },
  get backend() {
    return this.network?.active?.backend ?? null;
  },
  slots: [],
  query: null,
  verify: [],
  lastScores: [],
  lastVerify: null,
  lastError: null,
  weightsSource: 'the shipped weights',
  loading: Promise.resolve(),
  /** Counts changes to the support drawings and the weights (a fine-tuning run checks it). */
  version: 0,
  tune: tuneState,
  busy: Promise.resolve(),
};
window.oneshot = app;

/** Engine calls run one at a time, in order. */
function serial(task) {
  const run = app.busy.then(task, task);
  app.busy = run.catch(() => {});
  return run;
}

function setStatus(text, { ready = false, error = false } = {}) {
  status.text.textContent = text;
  status.root.classList.toggle('ready', ready);
  status.root.classList.toggle('error', error);
}

function describeBackend() {
  const { kind, detail } = app.backend;
  const where = kind === 'webgpu' ? `WebGPU · ${detail}` : 'CPU';
  return app.network.note ? `${where} (${app.network.note})` : where;
}

/** A friendlier text for errors the engine reports about a drawing. */
function drawingError(error) {
  const text = String(error?.message ?? error);
  return text.includes('blank') ? 'Nothing to recognise: no ink stands out from the background.' : text;
}

// ---- support slots -------------------------------------------------------------------------

function addSlot(label = `#${app.slots.length + 1}`, drawings = [[]]) {
  if (app.slots.length >= MAX_SLOTS) return null;
  const root = document.createElement('div');
  root.className = 'slot';
  const head = document.createElement('div');
  head.className = 'slot-head';
  const name = Object.assign(document.createElement('input'), { value: label, ariaLabel: 'Label', maxLength: 40 });
  const remove = Object.assign(document.createElement('button'), { type: 'button', textContent: '×', title: 'Remove this character', className: 'remove' });
  head.append(name, remove);
  const extras = Object.assign(document.createElement('div'), { className: 'extras' });
  const more = Object.assign(document.createElement('button'), { type: 'button', textContent: '+ drawing', className: 'more', title: 'Add another drawing of this character: more examples to match and to fine-tune on' });
  root.append(head, extras, more);
  $('slots').append(root);
  const slot = {
    root,
    name,
    extras,
    more,
    drawings: [],
    /** The first drawing's pad. */
    get pad() {
      return this.drawings[0].pad;
    },
  };
  addDrawing(slot);
  for (const strokes of drawings.slice(1)) addDrawing(slot).pad.setStrokes(strokes);
  if (drawings[0]?.length) slot.pad.setStrokes(drawings[0]);
  name.addEventListener('input', () => refreshScores());
  more.addEventListener('click', () => addDrawing(slot));
  remove.addEventListener('click', () => {
    if (app.slots.length <= 1) return;
    app.version++;
    app.slots.splice(app.slots.indexOf(slot), 1);
    root.remove();
    refreshScores();
    updateSlotButtons();
  });
  app.slots.push(slot);
  updateSlotButtons();
  return slot;
}

/** Adds a drawing box to a character: the first one large, the others small beneath it. */
function addDrawing(slot) {
  if (slot.drawings.length >= MAX_DRAWINGS) return null;
  const first = slot.drawings.length === 0;
  const host = document.createElement('div');
  host.className = first ? 'main-drawing' : 'extra';
  const label = `drawing ${slot.drawings.length + 1} of ${slot.name.value}`;
  const drawing = { host, embedding: null, version: 0 };
  drawing.pad = new DrawingPad(host, {
    label,
    onChange: (_, final) => {
      app.version++;
      schedule(drawing, final, () => embedDrawing(drawing));
    },
  });
  if (first) {
    slot.root.insertBefore(host, slot.extras);
  } else {
    const remove = Object.assign(document.createElement('button'), { type: 'button', textContent: '×', title: 'Remove this drawing', className: 'remove-drawing' });
    remove.addEventListener('click', () => {
      app.version++;
      slot.drawings.splice(slot.drawings.indexOf(drawing), 1);
      host.remove();
      drawing.version++;
      slot.more.disabled = false;
      refreshScores();
    });
    host.append(remove);
    slot.extras.append(host);
  }
  slot.drawings.push(drawing);
  slot.more.disabled = slot.drawings.length >= MAX_DRAWINGS;
  return drawing;
}

function updateSlotButtons() {
  $('add-slot').disabled = app.slots.length >= MAX_SLOTS;
  for (const slot of app.slots) slot.root.querySelector('.remove').disabled = app.slots.length <= 1;
}

/** Targets whose scheduled work has not finished yet. */
const pending = new Set();

/** Runs `work` now for a finished stroke, or after a pause while the pen is still moving. */
function schedule(target, final, work) {
  clearTimeout(target.timer);
  const ticket = (target.ticket = (target.ticket ?? 0) + 1);
  pending.add(target);
  target.timer = setTimeout(async () => {
    try {
      await work();
    } finally {
      if (target.ticket === ticket) pending.delete(target);
    }
  }, final ? 0 : DRAW_DEBOUNCE_MS);
}

/** Resolves once every drawing's result is on screen (for tests and measurements). */
app.idle = async () => {
  for (;;) {
    while (pending.size) await new Promise((r) => setTimeout(r, 20));
    const [busy, loading] = [app.busy, app.loading];
    await Promise.all([busy, loading]);
    await new Promise((r) => setTimeout(r, 0));
    // Work that finished may have queued more (a new network re-embeds, then re-scores).
    if (busy === app.busy && loading === app.loading && !pending.size) return;
  }
};

/** Embeds a pad's drawing (or forgets it when empty); returns the embedding or null. */
async function embedPad(pad) {
  if (pad.isEmpty || !app.engine) return null;
  const { points, lengths } = pad.strokeData();
  try {
    const embedding = await serial(() => app.network.run((engine) => engine.embedStrokes(points, lengths)));
    pad.setMessage('');
    return embedding;
  } catch (error) {
    pad.setMessage(drawingError(error));
    app.lastError = String(error?.message ?? error);
    return null;
  }
}

async function embedDrawing(drawing) {
  const version = ++drawing.version;
  const embedding = await embedPad(drawing.pad);
  if (version !== drawing.version) return; // a newer stroke arrived meanwhile
  drawing.embedding = embedding;
  await refreshScores();
}

/** Every drawing of every character, for re-embedding with new weights. */
const allDrawings = () => app.slots.flatMap((slot) => slot.drawings);

// ---- query ---------------------------------------------------------------------------------

const query = { embedding: null, version: 0, timer: 0 };

async function embedQuery() {
  const version = ++query.version;
  const started = performance.now();
  const embedding = await embedPad(app.query);
  if (version !== query.version) return;
  query.embedding = embedding;
  await refreshScores(started);
}

async function refreshScores(started = performance.now()) {
  const ready = app.slots.filter((s) => s.drawings.some((d) => d.embedding));
  const verdict = $('verdict');
  verdict.classList.remove('error');
  for (const slot of app.slots) slot.root.classList.remove('best');
  if (!query.embedding || ready.length === 0) {
    $('scores').replaceChildren();
    app.lastScores = [];
    verdict.textContent = ready.length === 0 ? 'Draw a few characters above, then one here.' : app.query.isEmpty ? 'Now draw a character here.' : 'Nothing to compare yet.';
    return;
  }
  // Every drawing of a character is a support; the character scores as its closest drawing.
  const supports = ready.flatMap((slot, i) => slot.drawings.filter((d) => d.embedding).map((d) => ({ slot: i, embedding: d.embedding })));
  const width = query.embedding.length;
  const flat = new Float32Array(width * supports.length);
  supports.forEach((s, i) => flat.set(s.embedding, i * width));
  let scores;
  try {
    scores = await serial(() => app.network.run((engine) => engine.scores(query.embedding, flat)));
  } catch (error) {
    verdict.textContent = String(error?.message ?? error);
    verdict.classList.add('error');
    return;
  }
  const best = ready.map(() => 0);
  supports.forEach((s, i) => (best[s.slot] = Math.max(best[s.slot], scores[i])));
  const entries = ready.map((slot, i) => ({ label: slot.name.value || `#${app.slots.indexOf(slot) + 1}`, score: best[i], slot: app.slots.indexOf(slot) }));
  app.lastScores = entries;
  const top = renderScores($('scores'), entries);
  ready[top.index].root.classList.add('best');
  verdict.replaceChildren('Looks like ', Object.assign(document.createElement('strong'), { textContent: top.label }), ` (${percent(top.score)} same character)`);
  $('timing').textContent = `${ready.length}-way query in ${(performance.now() - started).toFixed(1)} ms (${app.backend.kind === 'webgpu' ? 'WebGPU' : 'CPU'})`;
}

// ---- verification --------------------------------------------------------------------------

const verifyState = { version: 0, timer: 0 };

async function verifyPair() {
  const version = ++verifyState.version;
  const [a, b] = await Promise.all(app.verify.map((pad) => embedPad(pad)));
  if (version !== verifyState.version) return;
  const result = $('verify-result');
  result.classList.remove('error');
  if (!a || !b) {
    app.lastVerify = null;
    result.textContent = 'Draw in both boxes.';
    return;
  }
  try {
    const [p] = await serial(() => app.network.run((engine) => engine.scores(a, b)));
    app.lastVerify = p;
    const verdict = Object.assign(document.createElement('strong'), { textContent: p >= 0.5 ? 'Same character' : 'Different characters' });
    verdict.style.color = p >= 0.5 ? '' : 'var(--bad)';
    result.replaceChildren(verdict, ` — ${percent(p)} probability that both show the same character`);
  } catch (error) {
    result.textContent = String(error?.message ?? error);
    result.classList.add('error');
  }
}

// ---- the network ---------------------------------------------------------------------------

/** Switches the network to a weights file (null: the shipped one) and re-embeds every drawing. */
function useWeights(bytes, source) {
  app.loading = loadWeights(bytes, source);
  return app.loading;
}

async function loadWeights(bytes, source) {
  const message = $('model-message');
  // A file chosen while the page starts up is loaded once the shipped network is.
  await app.ready;
  try {
    const weights = bytes ?? (await shippedWeights());
    // Calls already queued finish on the old engine first.
    const switched = await serial(() => app.network.load(weights));
    if (!switched) return false; // a later load won
    app.version++;
    app.weightsSource = source;
    message.textContent = `Using ${source}.`;
    message.classList.remove('error');
    await reembed();
    return true;
  } catch (error) {
    app.lastError = String(error?.message ?? error);
    message.textContent = `Could not load ${source}: ${app.lastError}`;
    message.classList.add('error');
    return false;
  }
}

/** Embeds every drawing again (new weights, or another engine) and refreshes the scores. */
async function reembed() {
  setStatus(`Ready · ${describeBackend()}`, { ready: true });
  await Promise.all([...allDrawings().map(embedDrawing), embedQuery(), verifyPair()]);
}

// ---- start ---------------------------------------------------------------------------------

function setUp() {
  // Nothing to download until a network is loaded.
  $('weights-download').disabled = true;
  for (let i = 0; i < DEFAULT_SLOTS; i++) addSlot();
  app.query = new DrawingPad($('query-pad'), { label: 'query drawing', onChange: (_, final) => schedule(query, final, embedQuery) });
  app.verify = ['verify-a', 'verify-b'].map((id) => new DrawingPad($(id), { label: 'drawing to compare', onChange: (_, final) => schedule(verifyState, final, verifyPair) }));

  $('add-slot').addEventListener('click', () => addSlot());
  $('export').addEventListener('click', () => {
    download('oneshot-support-set.json', exportSet(app.slots.map((s) => ({ label: s.name.value, drawings: s.drawings.map((d) => d.pad.strokes) }))));
  });
  $('import').addEventListener('change', async (event) => {
    const file = event.target.files?.[0];
    event.target.value = '';
    if (!file) return;
    try {
      const slots = importSet(await file.text());
      for (const slot of app.slots) slot.root.remove();
      app.slots = [];
      for (const { label, drawings } of slots) addSlot(label, drawings);
      $('model-message').textContent = `Imported ${slots.length} characters from ${file.name}.`;
    } catch (error) {
      $('model-message').textContent = `Could not import ${file.name}: ${error.message}`;
    }
  });
  $('weights-file').addEventListener('change', async (event) => {
    const file = event.target.files?.[0];
    event.target.value = '';
    if (file) await useWeights(new Uint8Array(await file.arrayBuffer()), file.name);
  });
  $('weights-reset').addEventListener('click', () => useWeights(null, 'the shipped weights'));
  $('weights-download').addEventListener('click', () => {
    if (!app.network?.weights) return;
    const name = app.weightsSource.startsWith('fine-tuned') ? 'oneshot-web-finetuned.osw' : 'oneshot-web.osw';
    download(name, app.network.weights, 'application/octet-stream');
  });
  app.finetune = new FineTunePanel({
    ready: () => Boolean(app.network?.active),
    version: () => app.version,
    // Fine-tuning needs Burn: the WebGPU build where the page runs on it, else the CPU one.
    module: () => wasmModule(app.network.active.flavour === 'gpu' ? 'gpu' : 'cpu'),
    flavour: () => (app.network.active.flavour === 'gpu' ? 'gpu' : 'cpu'),
    useGpu: () => app.backend?.kind === 'webgpu',
    weights: () => app.network.weights,
    drawings: () => {
      const drawn = app.slots.map((slot) => slot.drawings.filter((d) => !d.pad.isEmpty));
      const classes = drawn.filter((d) => d.length);
      return {
        classes: classes.length,
        drawings: classes.flat().map((d) => d.pad.strokeData()),
        labels: classes.flatMap((d, i) => d.map(() => i)),
      };
    },
    onDone: (weights, description) => useWeights(weights, description),
  });
  document.addEventListener('keydown', (event) => {
    const pad = DrawingPad.active;
    if (!pad || event.target instanceof HTMLInputElement) return;
    const key = event.key.toLowerCase();
    if ((key === 'z' && (event.ctrlKey || event.metaKey)) || (key === 'u' && !event.ctrlKey)) {
      event.preventDefault();
      pad.undo();
    } else if (key === 'escape' || (key === 'c' && !event.ctrlKey && !event.metaKey)) {
      pad.clear();
    }
  });
}

async function start() {
  setUp();
  const loadStarted = performance.now();
  setStatus('Downloading the network…');
  app.network = new Network({ onSwitch: () => reembed(), onNotice: () => setStatus(`Ready · ${describeBackend()}`, { ready: true }) });
  await app.network.start((fraction) => {
    status.progress.value = fraction;
  });
  app.weightsSource = 'the shipped weights';
  $('model-message').textContent = `Using ${app.weightsSource}.`;
  $('weights-download').disabled = false;
  await reembed();
  app.startupMs = performance.now() - loadStarted;
  registerServiceWorker();
  // WebGPU, where there is an adapter, arrives in the background.
  app.upgraded = app.network.upgrade().then((switched) => {
    if (!switched) setStatus(`Ready · ${describeBackend()}`, { ready: true });
    return switched;
  });
}

/** Caches the site for offline use after this visit (not on file:// or without support). */
function registerServiceWorker() {
  if (!('serviceWorker' in navigator) || location.protocol === 'file:') return;
  navigator.serviceWorker.register('sw.js').catch((error) => {
    console.warn(`offline use unavailable: ${error.message}`);
  });
}

app.ready = start().catch((error) => {
  app.lastError = String(error?.message ?? error);
  setStatus(`Could not start: ${app.lastError}`, { error: true });
});
