// The benchmark page: one stack per page load (`?stack=ours|ort-wasm|ort-webgpu`), so the time
// from navigation to the first score is that stack's alone. It reads the reference inputs and
// outputs that `oneshot export` wrote (`?data=`, default bench-data/web), checks the stack
// reproduces them to 1e-4, then times embedding one image and a 20-way query (the query's 8
// views against 20 cached support embeddings), and, for ours, fine-tuning steps. The result is
// shown and left in `window.benchResult` for scripts/bench-compare.mjs.

const TOLERANCE = 1e-4;
const params = new URLSearchParams(location.search);
const stack = params.get('stack') ?? 'ours';
const data = new URL(`${params.get('data') ?? 'bench-data/web'}/`, document.baseURI);
const repetitions = Number(params.get('reps') ?? 100);
const tuneSteps = Number(params.get('tune') ?? 5);
const status = document.getElementById('bench-status');

/** Tensors of a safetensors file (f32 only): { name: { shape, values: Float32Array } }. */
async function readSafetensors(url) {
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`no benchmark data at ${url.pathname} (HTTP ${response.status}): scripts/bench-compare exports the network and its reference outputs there`);
  }
  const bytes = await response.arrayBuffer();
  const headerLength = Number(new DataView(bytes).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(bytes, 8, headerLength)));
  const tensors = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [start, end] = info.data_offsets;
    tensors[name] = { shape: info.shape, values: new Float32Array(bytes.slice(8 + headerLength + start, 8 + headerLength + end)) };
  }
  return tensors;
}

/** Median and spread of `work()` over `n` runs after `warmup` untimed ones, in ms. */
async function measure(warmup, n, work) {
  for (let i = 0; i < warmup; i++) await work();
  const times = [];
  for (let i = 0; i < Math.max(1, n); i++) {
    const started = performance.now();
    await work();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.round((times.length - 1) * q)];
  return { median: at(0.5), p10: at(0.1), p90: at(0.9), repetitions: times.length };
}

function largestDifference(got, expected) {
  if (got.length !== expected.length) return Infinity;
  let largest = 0;
  for (let i = 0; i < got.length; i++) largest = Math.max(largest, Math.abs(got[i] - expected[i]));
  return largest;
}

/** Our engine: the same wasm and calls as the main page. */
async function oursStack() {
  const { createEngine, wantsGpu } = await import('./engine.js');
  const weights = new Uint8Array(await (await fetch(new URL('model.osw', data))).arrayBuffer());
  const { engine, backend } = await createEngine(wantsGpu() ? 'gpu' : 'cpu', weights);
  return {
    name: `ours (${backend.kind === 'webgpu' ? `WebGPU: ${backend.detail}` : 'CPU: own SIMD kernels in wasm'})`,
    embed: (images) => engine.embedImages(images),
    query: (views, supports) => engine.queryViews(views, supports),
    engine,
  };
}

/** onnxruntime-web with one execution provider, on the exported ONNX graphs. */
async function ortStack(provider) {
  const ort = await import(new URL(provider === 'webgpu' ? 'ort/ort.webgpu.min.mjs' : 'ort/ort.wasm.min.mjs', document.baseURI).href);
  ort.env.wasm.wasmPaths = new URL('ort/', document.baseURI).href;
  ort.env.wasm.numThreads = 1; // a static page is not cross-origin isolated: no wasm threads
  const options = { executionProviders: [provider] };
  // One session at a time: the WebGPU provider refuses concurrent creation.
  const twin = await ort.InferenceSession.create(new URL('twin.onnx', data).href, options);
  const query = await ort.InferenceSession.create(new URL('query.onnx', data).href, options);
  const tensor = (values, dims) => new ort.Tensor('float32', values, dims);
  return {
    name: `onnxruntime-web ${ort.env.versions.web} (${provider})`,
    embed: async (images, size) => (await twin.run({ images: tensor(images, [images.length / size ** 2, 1, size, size]) })).embeddings.data,
    query: async (views, supports, size, width) =>
      (await query.run({ views: tensor(views, [views.length / size ** 2, 1, size, size]), supports: tensor(supports, [supports.length / width, width]) })).scores.data,
  };
}

/** Twenty scribbled 128×128 RGBA drawings, two per character, for fine-tuning. */
function scribbles(characters) {
  const size = 128;
  const rgba = new Uint8Array(characters * 2 * size * size * 4).fill(255);
  let s = 12345;
  const rand = () => ((s = (s * 9301 + 49297) % 233280) / 233280);
  for (let c = 0; c < characters; c++) {
    const strokes = Array.from({ length: 3 }, () => [20 + rand() * 88, 20 + rand() * 88, rand() * 2 - 1, rand() * 2 - 1]);
    for (let copy = 0; copy < 2; copy++) {
      const base = (c * 2 + copy) * size * size * 4;
      for (const [x0, y0, dx, dy] of strokes) {
        for (let t = 0; t < 40; t++) {
          const [x, y] = [Math.round(x0 + dx * t + copy * 3), Math.round(y0 + dy * t)];
          for (let oy = -2; oy <= 2; oy++) for (let ox = -2; ox <= 2; ox++) {
            const [px, py] = [x + ox, y + oy];
            if (px >= 0 && py >= 0 && px < size && py < size) rgba.fill(0, base + 4 * (py * size + px), base + 4 * (py * size + px) + 3);
          }
        }
      }
    }
  }
  const classes = Uint32Array.from({ length: characters * 2 }, (_, i) => Math.floor(i / 2));
  return { size, classes, rgba };
}

function render(result) {
  const body = document.querySelector('#bench-table tbody');
  for (const row of result.rows) {
    const t = row.timing;
    const cells = [result.stack, row.what, `${t.median.toFixed(2)} ms`, `${t.p10.toFixed(2)}–${t.p90.toFixed(2)} ms`, t.repetitions, row.pairs_per_second ? row.pairs_per_second.toFixed(0) : ''];
    const tr = document.createElement('tr');
    for (const cell of cells) tr.append(Object.assign(document.createElement('td'), { textContent: cell }));
    body.append(tr);
  }
  document.getElementById('bench-agreement').textContent =
    `navigation → first score: ${result.firstScoreMs.toFixed(0)} ms\nlargest difference from the reference: ${JSON.stringify(result.agreement)}`;
}

async function run() {
  status.textContent = `Loading ${stack}…`;
  const reference = await readSafetensors(new URL('reference.safetensors', data));
  const views = reference.query_views.values;
  const [, , size] = reference.query_views.shape;
  const supports = reference.supports.values;
  const width = reference.supports.shape[1];
  const peer = stack === 'ours' ? await oursStack() : await ortStack(stack === 'ort-webgpu' ? 'webgpu' : 'wasm');
  const scores = await peer.query(views, supports, size, width);
  const firstScoreMs = performance.now();
  const agreement = {
    scores: largestDifference(scores, reference.scores.values),
    view_embeddings: largestDifference(await peer.embed(views, size), reference.view_embeddings.values),
  };
  const failed = Object.entries(agreement).filter(([, d]) => !(d <= TOLERANCE));
  if (failed.length) throw new Error(`${peer.name} does not reproduce the reference: ${JSON.stringify(agreement)}`);

  status.textContent = `Timing ${peer.name}…`;
  const one = views.slice(0, size * size);
  const rows = [
    { key: 'embed', what: 'embed one image', timing: await measure(3, repetitions, () => peer.embed(one, size)) },
    { key: 'query', what: `20-way query (${views.length / size ** 2} view(s), cached supports)`, timing: await measure(3, repetitions, () => peer.query(views, supports, size, width)) },
  ];
  if (peer.engine && tuneSteps > 0) {
    status.textContent = 'Timing fine-tuning…';
    const characters = 20;
    const { size: side, classes, rgba } = scribbles(characters);
    const tuning = peer.engine.fineTune('whole', side, side, classes, rgba);
    const timing = await measure(1, tuneSteps, () => tuning.step());
    tuning.free();
    const pairs = characters * characters;
    rows.push({ key: 'train_episode', what: `fine-tuning step, whole network, 20-way episode (${pairs} scored pairs)`, timing, pairs_per_second: pairs / (timing.median / 1e3) });
  }
  return { stack: peer.name, firstScoreMs, agreement, rows };
}

run().then(
  (result) => {
    window.benchResult = result;
    render(result);
    status.textContent = 'Done.';
  },
  (error) => {
    window.benchResult = { error: String(error?.message ?? error) };
    status.textContent = `Failed: ${window.benchResult.error}`;
  },
);
