// Wires the page: support slots, the query, the verification pair, the network's status, and the
// panels (fine-tuning, Lake's benchmark). The support set is kept in this browser and can travel
// in a link.

import { DrawingPad } from './pad.js';
import { shippedWeights, wasmModule } from './engine.js';
import { Network } from './network.js';
import { renderScores, percent } from './scores.js';
import { exportSet, importSet, download } from './share.js';
import { FineTunePanel, tuneState } from './tune.js';
import { FALSE_MATCH, FALSE_NONE, NONE_THRESHOLD, PAIR_FALSE_ACCEPT, PAIR_FALSE_REJECT, SAME_THRESHOLD } from './calibration.js';
import { occlusionMap, paintMap } from './heatmap.js';
import { lakeState, runBenchmark, showOnlyMistakes } from './lake.js';
import { linkFor, setFromFragment } from './link.js';
import { forget, loadSaved, save } from './storage.js';

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
  lake: lakeState,
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

// ---- the support set: kept in this browser, exported, shared ------------------------------

let saveTimer = 0;

/** Notes a change to the drawings or labels: fine-tuning runs check it, and it is saved. */
function changed() {
  app.version++;
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => save(currentSet()), 300);
}

/** The support set as exportSet's JSON. */
function currentSet() {
  return exportSet(app.slots.map((s) => ({ label: s.name.value, drawings: s.drawings.map((d) => d.pad.strokes) })));
}

/** Replaces every character with `slots` (from importSet). */
function replaceSet(slots) {
  for (const slot of app.slots) slot.root.remove();
  app.slots = [];
  for (const { label, drawings } of slots) addSlot(label, drawings);
  updateSlotButtons();
  changed();
}

// ---- support slots -------------------------------------------------------------------------

function addSlot(label = `#${app.slots.length + 1}`, drawings = [[]]) {
  if (app.slots.length >= MAX_SLOTS) return null;
  const root = document.createElement('div');
  root.className = 'slot';
  const head = document.createElement('div');
  head.className = 'slot-head';
  const number = app.slots.length + 1;
  const name = Object.assign(document.createElement('input'), { value: label, maxLength: 40 });
  name.setAttribute('aria-label', `Label of character ${number}`);
  const remove = Object.assign(document.createElement('button'), { type: 'button', textContent: '×', title: 'Remove this character', className: 'remove' });
  remove.setAttribute('aria-label', `Remove character ${number}`);
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
  name.addEventListener('input', () => {
    changed();
    refreshScores();
  });
  more.addEventListener('click', () => addDrawing(slot));
  remove.addEventListener('click', () => {
    if (app.slots.length <= 1) return;
    changed();
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
      changed();
      schedule(drawing, final, () => embedDrawing(drawing));
    },
  });
  if (first) {
    slot.root.insertBefore(host, slot.extras);
  } else {
    const remove = Object.assign(document.createElement('button'), { type: 'button', textContent: '×', title: 'Remove this drawing', className: 'remove-drawing' });
    remove.setAttribute('aria-label', `Remove ${label}`);
    remove.addEventListener('click', () => {
      changed();
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
/** Resolvers of `whenNothingPending` calls, run as the last pending work finishes. */
let drainWaiters = [];

function finishPending(target) {
  pending.delete(target);
  if (pending.size === 0) for (const resolve of drainWaiters.splice(0)) resolve();
}

/**
 * Runs `task` counted as pending work until it settles, so that `app.idle()` also waits for what
 * starts outside the engine queue (a file being read, a download).
 */
async function whilePending(task) {
  const token = {};
  pending.add(token);
  try {
    return await task();
  } finally {
    finishPending(token);
  }
}

/** Resolves as soon as no scheduled work is left (at once when there is none). */
const whenNothingPending = () => (pending.size ? new Promise((resolve) => drainWaiters.push(resolve)) : Promise.resolve());

/**
 * Runs `work` for a finished stroke as soon as the current event is handled (a microtask: a
 * timer would wait behind rendering), or after a pause while the pen is still moving.
 */
function schedule(target, final, work) {
  clearTimeout(target.timer);
  const ticket = (target.ticket = (target.ticket ?? 0) + 1);
  pending.add(target);
  const run = async () => {
    if (target.ticket !== ticket) return; // a newer change runs instead
    try {
      await work();
    } finally {
      if (target.ticket === ticket) finishPending(target);
    }
  };
  if (final) queueMicrotask(run);
  else target.timer = setTimeout(run, DRAW_DEBOUNCE_MS);
}

/**
 * Resolves once every drawing's result is on screen (for tests and measurements). Woken by the
 * work itself, not by polling, so a measurement through it times the page, not a timer.
 */
app.idle = async () => {
  for (;;) {
    await whenNothingPending();
    const [busy, loading] = [app.busy, app.loading];
    await Promise.all([busy, loading]);
    await null; // let finished work queue what follows it
    // Work that finished may have queued more (a new network re-embeds, then re-scores).
    if (busy === app.busy && loading === app.loading && !pending.size) return;
  }
};

/**
 * Embeds a pad's drawing (or forgets it when empty) and, in the same engine call, scores it
 * against `supports` (embeddings back to back; none to embed only): `{ embedding, scores }`, or
 * null. One call preprocesses the drawing once and, on WebGPU, reads back once.
 */
async function embedPad(pad, supports = new Float32Array(0)) {
  if (pad.isEmpty || !app.engine) {
    pad.showInput(null);
    pad.renders = null;
    return null;
  }
  const { points, lengths } = pad.strokeData();
  try {
    const { renders, size, embedding, scores } = await serial(() =>
      app.network.run(async (engine) => {
        const [size, width] = [engine.inputSize(), engine.embeddingWidth()];
        const out = await engine.queryStrokes(points, lengths, supports);
        // One render per pen (the drawing as drawn first), then the embedding, then the scores.
        const pixels = size * size * engine.pens().length;
        return { size, renders: out.slice(0, pixels), embedding: out.slice(pixels, pixels + width), scores: out.subarray(pixels + width) };
      }),
    );
    pad.setMessage('');
    pad.showInput(renders.subarray(0, size * size), size);
    pad.renders = renders;
    return { embedding, scores };
  } catch (error) {
    pad.showInput(null);
    pad.renders = null;
    pad.setMessage(drawingError(error));
    app.lastError = String(error?.message ?? error);
    return null;
  }
}

async function embedDrawing(drawing) {
  const version = ++drawing.version;
  const embedded = await embedPad(drawing.pad);
  if (version !== drawing.version) return; // a newer stroke arrived meanwhile
  drawing.embedding = embedded?.embedding ?? null;
  await refreshScores();
}

/** Every drawing of every character, for re-embedding with new weights. */
const allDrawings = () => app.slots.flatMap((slot) => slot.drawings);

// ---- query ---------------------------------------------------------------------------------

const query = { embedding: null, version: 0, timer: 0 };

async function embedQuery() {
  const version = ++query.version;
  const started = performance.now();
  // The supports as they are now, scored in the same call that embeds the query.
  const { supports } = currentSupports();
  const embedded = await embedPad(app.query, flatEmbeddings(supports));
  if (version !== query.version) return;
  query.embedding = embedded?.embedding ?? null;
  await refreshScores(started, embedded && { supports, scores: embedded.scores });
}

/**
 * The characters with at least one embedded drawing (`ready`), and every such drawing as a
 * support: `supports[i] = { slot, embedding }` (slot indexes `ready`). A character scores as its
 * closest drawing.
 */
function currentSupports() {
  const ready = app.slots.filter((s) => s.drawings.some((d) => d.embedding));
  const supports = ready.flatMap((slot, i) => slot.drawings.filter((d) => d.embedding).map((d) => ({ slot: i, embedding: d.embedding })));
  return { ready, supports };
}

/** The supports' embeddings back to back, as the engine takes them. */
function flatEmbeddings(supports) {
  const width = supports[0]?.embedding.length ?? 0;
  const flat = new Float32Array(width * supports.length);
  supports.forEach((s, i) => flat.set(s.embedding, i * width));
  return flat;
}

/**
 * Shows the query's scores against every character. `scored` holds scores computed with the
 * query's embedding (`{ supports, scores }`), used while those supports are still the current
 * ones; otherwise the engine scores again.
 */
async function refreshScores(started = performance.now(), scored = null) {
  const { ready, supports } = currentSupports();
  const verdict = $('verdict');
  verdict.classList.remove('error');
  for (const slot of app.slots) slot.root.classList.remove('best');
  if (!query.embedding || ready.length === 0) {
    $('scores').replaceChildren();
    app.lastScores = [];
    app.verdict = null;
    query.bestSupport = null;
    $('heatmap-figure').hidden = true;
    verdict.textContent = ready.length === 0 ? 'Draw a few characters above, then one here.' : app.query.isEmpty ? 'Now draw a character here.' : 'Nothing to compare yet.';
    return;
  }
  const current = scored && scored.supports.length === supports.length && scored.supports.every((s, i) => s.embedding === supports[i].embedding);
  let scores = current ? scored.scores : null;
  if (!scores) {
    try {
      const flat = flatEmbeddings(supports);
      scores = await serial(() => app.network.run((engine) => engine.scores(query.embedding, flat)));
    } catch (error) {
      verdict.textContent = String(error?.message ?? error);
      verdict.classList.add('error');
      return;
    }
  }
  const best = ready.map(() => 0);
  supports.forEach((s, i) => (best[s.slot] = Math.max(best[s.slot], scores[i])));
  const entries = ready.map((slot, i) => ({ label: slot.name.value || `#${app.slots.indexOf(slot) + 1}`, score: best[i], slot: app.slots.indexOf(slot) }));
  app.lastScores = entries;
  const top = renderScores($('scores'), entries);
  if (top.score < NONE_THRESHOLD) {
    // No character is likely enough: naming one would be a guess.
    app.verdict = 'none';
    verdict.replaceChildren(
      Object.assign(document.createElement('strong'), { textContent: 'None of these' }),
      ` — the closest is ${top.label} at ${percent(top.score)}, below the ${percent(NONE_THRESHOLD)} it takes to name one.`,
    );
  } else {
    app.verdict = top.label;
    ready[top.index].root.classList.add('best');
    verdict.replaceChildren('Looks like ', Object.assign(document.createElement('strong'), { textContent: top.label }), ` (${percent(top.score)} same character)`);
  }
  const bestSupport = supports.filter((s) => s.slot === top.index).reduce((a, b) => (scores[supports.indexOf(b)] > scores[supports.indexOf(a)] ? b : a));
  query.bestSupport = bestSupport.embedding;
  if ($('heatmap-toggle').checked) await drawHeatmap();
  app.lastQueryMs = performance.now() - started;
  $('timing').textContent = `${ready.length}-way query in ${app.lastQueryMs.toFixed(1)} ms (${app.backend.kind === 'webgpu' ? 'WebGPU' : 'CPU'})`;
}

// ---- verification --------------------------------------------------------------------------

const verifyState = { version: 0, timer: 0 };

async function verifyPair() {
  const version = ++verifyState.version;
  const [a, b] = (await Promise.all(app.verify.map((pad) => embedPad(pad)))).map((embedded) => embedded?.embedding);
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
    const same = p >= SAME_THRESHOLD;
    const verdict = Object.assign(document.createElement('strong'), { textContent: same ? 'Same' : 'Different' });
    verdict.style.color = same ? '' : 'var(--bad)';
    result.replaceChildren(verdict, ` — ${percent(p)} probability that both show the same character`);
  } catch (error) {
    result.textContent = String(error?.message ?? error);
    result.classList.add('error');
  }
}

// ---- where it looks ------------------------------------------------------------------------

/** Paints the occlusion map of the query against its best match (when the toggle is on). */
async function drawHeatmap() {
  const figure = $('heatmap-figure');
  const renders = app.query.renders;
  if (!query.bestSupport || !renders) {
    figure.hidden = true;
    return;
  }
  try {
    const map = await serial(() => app.network.run((engine) => occlusionMap(engine, renders, query.bestSupport)));
    paintMap($('heatmap'), renders.subarray(0, map.size * map.size), map.size, map);
    app.heatmap = map;
    figure.hidden = false;
  } catch (error) {
    figure.hidden = true;
    app.lastError = String(error?.message ?? error);
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
    changed();
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

  $('add-slot').addEventListener('click', () => {
    addSlot();
    changed();
  });
  $('example').addEventListener('click', () => loadExample());
  $('share').addEventListener('click', () => shareLink());
  $('start-over').addEventListener('click', () => {
    replaceSet(Array.from({ length: DEFAULT_SLOTS }, (_, i) => ({ label: `#${i + 1}`, drawings: [[]] })));
    app.query.clear();
    clearTimeout(saveTimer);
    forget();
    history.replaceState(null, '', location.pathname + location.search);
    $('model-message').textContent = 'Started over: every drawing and label is gone.';
  });
  $('export').addEventListener('click', () => download('oneshot-support-set.json', currentSet()));
  // The file inputs are hidden; their buttons are what the keyboard reaches.
  for (const [button, input] of [['import-button', 'import'], ['weights-load', 'weights-file'], ['lake-choose', 'lake-file']]) {
    $(button).addEventListener('click', () => $(input).click());
  }
  $('import').addEventListener('change', async (event) => {
    const file = event.target.files?.[0];
    event.target.value = '';
    if (!file) return;
    await whilePending(async () => {
      try {
        const slots = importSet(await file.text());
        replaceSet(slots);
        $('model-message').textContent = `Imported ${slots.length} characters from ${file.name}.`;
      } catch (error) {
        $('model-message').textContent = `Could not import ${file.name}: ${error.message}`;
      }
    });
  });
  $('heatmap-toggle').addEventListener('change', (event) => {
    if (event.target.checked) drawHeatmap();
    else $('heatmap-figure').hidden = true;
  });
  $('lake-file').addEventListener('change', async (event) => {
    const file = event.target.files?.[0];
    event.target.value = '';
    if (!file || !app.network?.active) return;
    app.lakeRun = runBenchmark(app.network, new Uint8Array(await file.arrayBuffer()), file.name);
    await app.lakeRun;
  });
  $('lake-wrong-only').addEventListener('change', (event) => showOnlyMistakes(event.target.checked));
  $('verify-note').textContent =
    `Two signatures, or two drawings of anything, compare the same way: "Same" from ${percent(SAME_THRESHOLD)} on. ` +
    `On held-out Omniglot drawers (two people drawing one character, standing in for two signatures by one person ` +
    `until signature data exists), that calls ${PAIR_FALSE_REJECT.toFixed(1)} % of same-character pairs different and ` +
    `${PAIR_FALSE_ACCEPT.toFixed(1)} % of different-character pairs the same. "None of these" above: below ${percent(NONE_THRESHOLD)} ` +
    `(misses ${FALSE_NONE.toFixed(1)} % of characters that are there; names one in ${FALSE_MATCH.toFixed(1)} % of queries whose character is not).`;
  $('weights-file').addEventListener('change', async (event) => {
    const file = event.target.files?.[0];
    event.target.value = '';
    if (file) await whilePending(async () => useWeights(new Uint8Array(await file.arrayBuffer()), file.name));
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
}

/** Fills the support set with five Greek letters drawn by people, and a query. */
async function loadExample() {
  // Pending until the set is on the pads, so that `app.idle()` also waits for the download.
  await whilePending(async () => {
    try {
      const response = await fetch(new URL('../examples/omniglot-greek.json', import.meta.url));
      const example = await response.json();
      replaceSet(example.slots);
      app.query.setStrokes(example.queries[1].strokes);
      $('model-message').textContent = `An example: five Greek letters and a β by another hand. ${example.attribution}`;
    } catch (error) {
      $('model-message').textContent = `Could not load the example: ${error.message}`;
    }
  });
}

/** Puts a link carrying the support set in the address bar and on the clipboard. */
async function shareLink() {
  const url = await linkFor(currentSet());
  history.replaceState(null, '', url);
  app.sharedLink = url;
  try {
    await navigator.clipboard.writeText(url);
    $('model-message').textContent = `A link to these drawings is on the clipboard (${url.length} characters; the drawings travel in it, no server sees them).`;
  } catch {
    $('model-message').textContent = `The address bar now holds a link to these drawings (${url.length} characters; copy it from there).`;
  }
}

/** The support set a visit starts with: a shared link's, else the one kept in this browser. */
async function restoreSet() {
  try {
    const shared = await setFromFragment(location.hash);
    if (shared) {
      replaceSet(importSet(shared));
      return 'Loaded the drawings from the link.';
    }
  } catch (error) {
    return `Could not open the link: ${error.message}`;
  }
  const saved = loadSaved();
  if (!saved) return '';
  try {
    replaceSet(importSet(saved));
    return 'Your drawings from last time are back (Start over forgets them).';
  } catch {
    forget(); // from an older page, or damaged: start fresh
    return '';
  }
}

async function start() {
  setUp();
  const restored = await restoreSet();
  const loadStarted = performance.now();
  setStatus('Downloading the network…');
  app.network = new Network({ onSwitch: () => reembed(), onNotice: () => setStatus(`Ready · ${describeBackend()}`, { ready: true }) });
  await app.network.start((fraction) => {
    status.progress.value = fraction;
  });
  app.weightsSource = 'the shipped weights';
  $('model-message').textContent = `Using ${app.weightsSource}.${restored ? ` ${restored}` : ''}`;
  $('weights-download').disabled = false;
  await reembed();
  app.startupMs = performance.now() - loadStarted;
  // performance.now() counts from the navigation's start.
  app.readyMs = performance.now();
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
