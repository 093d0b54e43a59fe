// Lake's benchmark in the page: the visitor picks all_runs.zip (or any zip in its layout), the
// page reads it with the same run loader `oneshot eval` uses (in WebAssembly) and classifies
// every trial with the network on this device, then shows the accuracy, the time per trial and
// every trial: the query, the character chosen, right or wrong.

import { createEngine } from './engine.js';
import { NATIVE_LAKE_ACCURACY } from './calibration.js';

const $ = (id) => document.getElementById(id);

/** What the last run found, for the page's state (and the browser tests). */
export const lakeState = { running: false, trials: 0, correct: 0, msPerTrial: null, backend: null, error: null, done: 0 };

/** An engine of a build that reads run zips: the page's own on WebGPU, else a CPU one. */
async function runtime(network) {
  if (network.active.flavour === 'gpu') return network.active;
  const cpu = await createEngine('cpu', network.weights);
  return { ...cpu, owned: true };
}

/** Paints a network input (`size²` values, 1 = ink) on a small canvas. */
function thumbnail(values, size, label) {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = size;
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', label);
  const context = canvas.getContext('2d');
  const image = context.createImageData(size, size);
  values.forEach((v, i) => {
    const shade = 255 - Math.round(255 * Math.min(1, Math.max(0, v)));
    image.data.set([shade, shade, shade, 255], 4 * i);
  });
  context.putImageData(image, 0, 0);
  return canvas;
}

/** Runs every trial of `bytes` (a zip) on the network; fills the panel. */
export async function runBenchmark(network, bytes, fileName) {
  if (lakeState.running) return;
  const [summary, progress, grid] = [$('lake-summary'), $('lake-progress'), $('lake-grid')];
  Object.assign(lakeState, { running: true, trials: 0, correct: 0, msPerTrial: null, backend: null, error: null, done: 0 });
  grid.replaceChildren();
  summary.classList.remove('error');
  summary.textContent = `Reading ${fileName}…`;
  let engine = null;
  try {
    engine = await runtime(network);
    const LakeRuns = engine.glue.LakeRuns;
    const runs = LakeRuns.fromZip(bytes);
    const [count, total] = [runs.count(), runs.trials()];
    const size = engine.engine.inputSize();
    lakeState.backend = engine.backend.kind;
    progress.hidden = false;
    progress.value = 0;
    const started = performance.now();
    for (let r = 0; r < count; r++) {
      const result = await runs.classifyRun(engine.engine, r);
      result.chosen.forEach((chosen, q) => {
        const right = chosen === result.truth[q];
        lakeState.correct += right ? 1 : 0;
        lakeState.trials += 1;
        const item = document.createElement('li');
        item.className = right ? 'right' : 'wrong';
        item.title = `${result.name}, query ${q + 1}: chose ${chosen + 1}, the answer is ${result.truth[q] + 1}`;
        item.append(
          thumbnail(runs.queryView(engine.engine, r, q), size, `query ${q + 1} of ${result.name}`),
          thumbnail(runs.supportView(engine.engine, r, chosen), size, `the character chosen, ${right ? 'right' : 'wrong'}`),
        );
        grid.append(item);
      });
      lakeState.done = r + 1;
      progress.value = (r + 1) / count;
      summary.textContent = `Run ${r + 1} of ${count}: ${lakeState.correct} of ${lakeState.trials} right so far…`;
    }
    lakeState.msPerTrial = (performance.now() - started) / Math.max(1, total);
    const percent = (100 * lakeState.correct) / Math.max(1, lakeState.trials);
    const where = lakeState.backend === 'webgpu' ? 'WebGPU' : 'the CPU';
    summary.textContent =
      `${lakeState.correct} of ${lakeState.trials} trials right: ${percent.toFixed(1)} % on ${where}, ` +
      `${lakeState.msPerTrial.toFixed(1)} ms per trial (the native \`oneshot eval\` of the shipped network: ${NATIVE_LAKE_ACCURACY.toFixed(1)} %).`;
    runs.free();
    document.querySelector('.lake-controls').hidden = false;
  } catch (error) {
    lakeState.error = String(error?.message ?? error);
    summary.textContent = `Could not run ${fileName}: ${lakeState.error}`;
    summary.classList.add('error');
  } finally {
    if (engine?.owned) engine.engine.free();
    progress.hidden = true;
    lakeState.running = false;
  }
}

/** Shows every trial, or only the mistakes. */
export function showOnlyMistakes(only) {
  $('lake-grid').classList.toggle('only-wrong', only);
}
