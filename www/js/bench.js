// The benchmark page: one stack per page load
// (`?stack=ours|ort-wasm|ort-webgpu|tfjs-wasm|tfjs-webgpu`), so the time
// from navigation to the first score is that stack's alone. It reads the reference inputs and
// outputs that `oneshot export` wrote (`?data=`, default bench-data/web), checks the stack
// reproduces them to 1e-4, then times embedding one image and a 20-way query (the query's 8
// views against 20 cached support embeddings), and, for ours, fine-tuning steps (once their first
// losses match the native build's). The result is
// shown and left in `window.benchResult` for scripts/bench-compare.mjs.

const TOLERANCE = 1e-4;
const params = new URLSearchParams(location.search);
const stack = params.get('stack') ?? 'ours';
const data = new URL(`${params.get('data') ?? 'bench-data/web'}/`, document.baseURI);
const repetitions = Number(params.get('reps') ?? 100);
const tuneSteps = Number(params.get('tune') ?? 5);
const status = document.getElementById('bench-status');

/**
 * Tensors of a safetensors file (f32 only): { name: { shape, values: Float32Array } }, and its
 * metadata under `__metadata__` (strings by key).
 */
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
    if (name === '__metadata__') {
      tensors.__metadata__ = info;
      continue;
    }
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
  // One pen, as the reference and the other stacks: the query is its 8 symmetry views (the
  // page also sees a narrower pen, twice the work, the same for every stack).
  const { engine, backend } = await createEngine(wantsGpu() ? 'gpu' : 'cpu', weights, Int8Array.of(0));
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

/** Loads a classic script (TensorFlow.js ships UMD bundles that set `window.tf`). */
function loadScript(url) {
  return new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement('script'), { src: url.href });
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${url.pathname}`));
    document.head.append(script);
  });
}

/**
 * TensorFlow.js with one backend (`wasm`: XNNPACK with SIMD; `webgpu`), running the network built
 * from tf ops on the tensors `oneshot export` wrote — the best a web developer would write by
 * hand: NHWC, batch norm folded into the convolutions, fused conv + bias + ReLU, the dense
 * layer's rows reordered once so no transpose runs per call, one readback per call.
 */
async function tfjsStack(backend) {
  const base = new URL('tfjs/', document.baseURI);
  await loadScript(new URL('tf-core.min.js', base));
  const tf = window.tf;
  if (backend === 'wasm') {
    await loadScript(new URL('tf-backend-wasm.min.js', base));
    tf.wasm.setWasmPaths(base.href);
  } else {
    await loadScript(new URL('tf-backend-webgpu.min.js', base));
  }
  if (!(await tf.setBackend(backend))) throw new Error(`TensorFlow.js could not start its ${backend} backend`);
  await tf.ready();
  const tensors = await readSafetensors(new URL('weights.safetensors', data));
  const config = JSON.parse(tensors.__metadata__.config);
  const get = (name) => tf.tensor(tensors[name].values, tensors[name].shape);
  const epsilon = 1e-5; // Burn's BatchNormConfig default
  const stages = config.stages.map((stage, i) => {
    const prefix = `twin.stages.${i}`;
    return tf.tidy(() => {
      // Burn's [out, in, kh, kw] → TensorFlow's [kh, kw, in, out].
      let filter = tf.transpose(get(`${prefix}.conv.weight`), [2, 3, 1, 0]);
      let bias = tensors[`${prefix}.conv.bias`] ? get(`${prefix}.conv.bias`) : tf.zeros([stage.channels]);
      if (config.batch_norm) {
        const scale = tf.div(get(`${prefix}.norm.gamma`), tf.sqrt(tf.add(get(`${prefix}.norm.running_var`), epsilon)));
        filter = tf.mul(filter, scale);
        bias = tf.add(tf.mul(tf.sub(bias, get(`${prefix}.norm.running_mean`)), scale), get(`${prefix}.norm.beta`));
      }
      // TensorFlow's "same" puts the odd padding pixel at the end, as Burn does.
      return { filter: tf.keep(filter), bias: tf.keep(bias), pad: stage.same_padding ? 'same' : 'valid', pool: stage.pool };
    });
  });
  const size = config.input_size;
  const features = (images) => {
    // (tf-core alone has no chained methods: functions throughout.)
    let x = tf.reshape(images, [-1, size, size, 1]); // one channel: NCHW and NHWC hold the same values
    for (const stage of stages) {
      x = tf.fused.conv2d({ x, filter: stage.filter, bias: stage.bias, strides: 1, pad: stage.pad, activation: 'relu' });
      if (stage.pool) x = tf.maxPool(x, 2, 2, 'valid');
    }
    return x;
  };
  // Burn flattens channels first (NCHW); reorder the dense layer's rows to the NHWC order once.
  const [, h, w, c] = tf.tidy(() => features(tf.zeros([1, size * size]))).shape;
  const dense = tf.tidy(() => tf.keep(tf.reshape(tf.transpose(tf.reshape(get('twin.embed.weight'), [c, h, w, -1]), [1, 2, 0, 3]), [h * w * c, -1])));
  const denseBias = get('twin.embed.bias');
  const [head, headBias] = [get('head.weight'), get('head.bias')];
  // The head's product term u · (q ⊙ s), where the architecture has it.
  const product = config.product_head ? get('product.weight') : null;
  const embed = (images) => {
    const flat = tf.reshape(features(images), [-1, h * w * c]);
    const e = tf.add(tf.matMul(flat, dense), denseBias);
    return config.sigmoid_embedding ? tf.sigmoid(e) : e;
  };
  const read = async (make) => {
    const out = tf.tidy(make);
    const values = await out.data();
    out.dispose();
    return values;
  };
  const width = config.embedding;
  return {
    name: `TensorFlow.js ${tf.version_core} (${backend === 'wasm' ? 'wasm, XNNPACK, SIMD' : 'webgpu'})`,
    embed: (images) => read(() => embed(tf.tensor2d(images, [images.length / size ** 2, size * size]))),
    query: (views, supports) =>
      read(() => {
        // Each view against the same view of every support (view embeddings back to back).
        const v = views.length / size ** 2;
        const query = embed(tf.tensor2d(views, [v, size * size]));
        const perView = tf.tensor3d(supports, [supports.length / (v * width), v, width]);
        const distance = tf.abs(tf.sub(query, perView));
        let logits = tf.add(tf.matMul(tf.reshape(distance, [-1, width]), head), headBias);
        if (product) logits = tf.add(logits, tf.matMul(tf.reshape(tf.mul(query, perView), [-1, width]), product));
        return tf.sigmoid(tf.mean(tf.reshape(logits, [-1, v]), 1));
      }),
  };
}

/** Twenty scribbled 128×128 RGBA drawings, two per character, for fine-tuning. */
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
  const stacks = {
    ours: oursStack,
    'ort-wasm': () => ortStack('wasm'),
    'ort-webgpu': () => ortStack('webgpu'),
    'tfjs-wasm': () => tfjsStack('wasm'),
    'tfjs-webgpu': () => tfjsStack('webgpu'),
  };
  if (!stacks[stack]) throw new Error(`unknown stack ${stack}: one of ${Object.keys(stacks).join(', ')}`);
  const peer = await stacks[stack]();
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
    status.textContent = 'Checking and timing fine-tuning…';
    // The reference's drawings, one character each, and the losses of the first steps that the
    // native build computes with the page's settings and seed: the page's fine-tuning (the
    // training kernels in WebAssembly on the CPU) must reproduce them before it is timed.
    const [characters, height, side] = reference.tune_rgba.shape;
    const rgba = Uint8Array.from(reference.tune_rgba.values);
    const classes = Uint32Array.from({ length: characters }, (_, i) => i);
    const tuning = peer.engine.fineTune('whole', side, height, classes, rgba);
    const losses = [];
    for (let i = 0; i < reference.tune_losses.values.length; i++) losses.push(await tuning.step());
    agreement.tune_losses = largestDifference(losses, reference.tune_losses.values);
    if (!(agreement.tune_losses <= TOLERANCE)) {
      throw new Error(`${peer.name}'s fine-tuning does not reproduce the reference losses: ${losses} vs ${Array.from(reference.tune_losses.values)}`);
    }
    // The checked run goes on: its steps are timed from here.
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
