// The fine-tuning panel: collects the user's drawings, trains a copy of the network in a Web
// Worker (so the page stays responsive), shows progress, the loss of each step and the speed,
// and hands the new weights to the page when done. Cancel stops the worker and keeps the
// network as it was.

import { drawLossCurve } from './chart.js';

const $ = (id) => document.getElementById(id);

/** What the last run did, for the page's state (and the browser tests). */
export const tuneState = { running: false, losses: [], stepsPerSecond: null, backend: null, error: null, runs: 0, startedAt: 0, trainedAt: 0 };

export class FineTunePanel {
  /**
   * @param {{
   *   ready: () => boolean,
   *   module: () => Promise<WebAssembly.Module>,
   *   flavour: () => string,
   *   useGpu: () => boolean,
   *   weights: () => Uint8Array,
   *   drawings: () => {classes: number, drawings: {points: Float32Array, lengths: Uint32Array}[], labels: number[]},
   *   version: () => number,
   *   onDone: (weights: Uint8Array, description: string) => Promise<boolean>,
   * }} hooks `version` changes whenever the drawings or the network change; `onDone` resolves
   *   to whether the new weights were loaded.
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.worker = null;
    this.form = $('tune-form');
    this.startButton = $('tune-start');
    this.cancelButton = $('tune-cancel');
    this.progress = $('tune-progress');
    this.chart = $('tune-loss');
    this.status = $('tune-status');
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.start();
    });
    this.cancelButton.addEventListener('click', () => this.cancel('Cancelled; the network is unchanged.'));
    new ResizeObserver(() => this.#draw()).observe(this.chart);
  }

  get scope() {
    return new FormData(this.form).get('scope') === 'head' ? 'head' : 'whole';
  }

  get steps() {
    const value = Math.round(Number($('tune-steps').value));
    return Number.isFinite(value) ? Math.min(500, Math.max(1, value)) : 30;
  }

  async start() {
    if (tuneState.running) return;
    if (!this.hooks.ready()) {
      this.#say('The network is still loading; try again in a moment.', true);
      return;
    }
    const { classes, drawings, labels } = this.hooks.drawings();
    if (classes < 2) {
      this.#say('Draw at least two characters above first.', true);
      return;
    }
    const [scope, steps, version] = [this.scope, this.steps, this.hooks.version()];
    const payload = strokePayload(drawings);
    Object.assign(tuneState, { running: true, losses: [], stepsPerSecond: null, backend: null, error: null, steps, startedAt: performance.now(), trainedAt: Infinity });
    this.#running(true);
    this.progress.value = 0;
    this.#say(`Starting: ${drawings.length} drawings of ${classes} characters…`);
    this.#draw();

    const finished = new Promise((resolve) => (this.finish = resolve));
    let module;
    try {
      module = await this.hooks.module();
    } catch (error) {
      this.#fail(`could not load the training engine (${error?.message ?? error})`);
      return finished;
    }
    if (!tuneState.running) return finished; // cancelled while the engine downloaded
    const worker = (this.worker = new Worker(new URL('./tune-worker.js', import.meta.url), { type: 'module' }));
    worker.onmessage = async ({ data }) => {
      if (worker !== this.worker) return;
      if (data.type === 'backend') {
        tuneState.backend = data.backend;
      } else if (data.type === 'step') {
        this.#step(data, steps);
      } else if (data.type === 'done') {
        tuneState.trainedAt = performance.now();
        this.#stop();
        const what = scope === 'head' ? 'similarity head' : 'whole network';
        const summary = `${what}, ${steps} steps, loss ${tuneState.losses[0].toFixed(3)} → ${tuneState.losses.at(-1).toFixed(3)}`;
        if (this.hooks.version() !== version) {
          // The drawings or the network changed meanwhile: this result belongs to neither.
          tuneState.discarded = (tuneState.discarded ?? 0) + 1;
          this.#say('The drawings or the network changed while fine-tuning, so its result was discarded. Fine-tune again to use the new ones.', true);
        } else if (await this.hooks.onDone(new Uint8Array(data.weights), `fine-tuned weights (${summary})`)) {
          this.#say(`Fine-tuned the ${summary}${this.#speed()}. The scores above now use it.`);
          tuneState.runs += 1;
        } else {
          this.#say('Fine-tuning finished, but its weights could not be loaded; the network is unchanged.', true);
        }
        this.finish();
      } else if (data.type === 'error') {
        this.#fail(data.message);
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      this.#fail(event.message || 'the training worker failed to start');
    };
    const message = { module, flavour: this.hooks.flavour(), useGpu: this.hooks.useGpu(), weights: this.hooks.weights(), scope, steps, classes: Uint32Array.from(labels), ...payload };
    worker.postMessage(message, [payload.points.buffer, payload.lengths.buffer, payload.strokes.buffer]);
    return finished;
  }

  /** Ends a run that failed, saying why; the panel is usable again. */
  #fail(reason) {
    tuneState.error = reason;
    if (this.worker) {
      this.cancel(`Fine-tuning failed: ${reason}`, true);
    } else {
      this.#stop();
      this.#say(`Fine-tuning failed: ${reason}`, true);
      this.finish?.();
    }
  }

  /** Stops a run, if any, keeping the network as it was. */
  cancel(message, error = false) {
    if (!tuneState.running) return;
    this.#stop();
    this.#say(message, error);
    this.finish?.();
  }

  #stop() {
    this.worker?.terminate();
    this.worker = null;
    tuneState.running = false;
    this.#running(false);
  }

  #step({ step, loss, elapsedMs }, steps) {
    tuneState.losses.push(loss);
    // The first step compiles the GPU kernels: the speed is measured from the second one on.
    if (step === 1) this.firstStepMs = elapsedMs;
    else tuneState.stepsPerSecond = ((step - 1) * 1000) / (elapsedMs - this.firstStepMs);
    this.progress.value = step / steps;
    const where = tuneState.backend?.kind === 'webgpu' ? 'WebGPU' : 'CPU';
    this.#say(`Step ${step} of ${steps} · loss ${loss.toFixed(3)}${this.#speed()} · ${where}`);
    this.#draw();
  }

  #speed() {
    return tuneState.stepsPerSecond ? ` · ${tuneState.stepsPerSecond.toFixed(1)} steps/s` : '';
  }

  #draw() {
    drawLossCurve(this.chart, tuneState.losses, tuneState.steps ?? this.steps);
  }

  #running(running) {
    this.startButton.hidden = running;
    this.cancelButton.hidden = !running;
    for (const input of this.form.querySelectorAll('input')) input.disabled = running;
  }

  #say(text, error = false) {
    this.status.textContent = text;
    this.status.classList.toggle('error', error);
  }
}

/** Drawings' strokes flattened as `Engine.fineTuneStrokes` takes them. */
function strokePayload(drawings) {
  const strokes = Uint32Array.from(drawings, (d) => d.lengths.length);
  const lengths = new Uint32Array(strokes.reduce((sum, n) => sum + n, 0));
  const points = new Float32Array(drawings.reduce((sum, d) => sum + d.points.length, 0));
  let [strokeAt, pointAt] = [0, 0];
  for (const d of drawings) {
    lengths.set(d.lengths, strokeAt);
    points.set(d.points, pointAt);
    strokeAt += d.lengths.length;
    pointAt += d.points.length;
  }
  return { strokes, lengths, points };
}
