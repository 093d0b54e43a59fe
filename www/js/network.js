// The page's network: which engine answers (CPU at first, WebGPU once ready), on which weights,
// and recovery — a lost GPU device or an uncaptured GPU error falls back to the CPU engine, and
// an engine that traps is replaced by a fresh instance — so the page never goes dark.

import { createEngine, gpuAbsenceReason, gpuAdapter, isTrap, shippedWeights, wantsGpu, wasmModule, watchGpuDevices } from './engine.js';

/** A tiny drawing whose embedding and scores make the WebGPU build compile its shaders. */
const WARM_UP = { points: new Float32Array([0.2, 0.2, 0.8, 0.8, 0.8, 0.2, 0.2, 0.8]), lengths: new Uint32Array([2, 2]) };
/** Support counts scored while warming up (see `upgrade`). */
const WARM_UP_SUPPORTS = [1, 2, 3, 4, 20];

/** `count` copies of `values`, end to end. */
function repeat(values, count) {
  const out = new Float32Array(values.length * count);
  for (let i = 0; i < count; i++) out.set(values, i * values.length);
  return out;
}

export class Network {
  /**
   * @param {{onSwitch: (reason: string) => Promise<void>|void, onNotice: () => void}} hooks
   *   `onSwitch` runs after the answering engine changed (the page re-embeds its drawings
   *   there); `onNotice` when only the note changed (an engine was restarted, same results).
   */
  constructor({ onSwitch, onNotice = () => {} }) {
    this.onSwitch = onSwitch;
    this.onNotice = onNotice;
    /** The CPU engine, always loaded: `{ engine, flavour, backend }`. */
    this.cpu = null;
    /** The WebGPU engine once it is ready and healthy. */
    this.gpu = null;
    /** The weights file both run. */
    this.weights = null;
    /** Why the page runs where it runs, for the status line. */
    this.note = '';
    /** The WebGPU device Burn created (tests destroy it to check the fallback). */
    this.gpuDevice = null;
    /** Whether that device was lost or failed: WebGPU is not used again in this page. */
    this.gpuLost = false;
    this.generation = 0;
  }

  /** The engine that answers. */
  get active() {
    return this.gpu ?? this.cpu;
  }

  /** Starts the CPU engine (the lite build) on the shipped weights. */
  async start(onProgress) {
    const [weights] = await Promise.all([shippedWeights(), wasmModule('lite', onProgress)]);
    this.cpu = await createEngine('lite', weights);
    this.weights = weights;
    this.note = gpuAbsenceReason() ?? '';
  }

  /**
   * Fetches the WebGPU build if there is an adapter, warms it up and switches to it. Resolves
   * to whether the page now runs on WebGPU.
   */
  async upgrade() {
    if (!wantsGpu()) return false;
    const adapter = await gpuAdapter();
    if (!adapter) {
      this.note = 'no WebGPU adapter';
      return false;
    }
    const generation = this.generation;
    watchGpuDevices((device) => this.#watch(device));
    try {
      const gpu = await createEngine('gpu', this.weights);
      if (gpu.backend.kind !== 'webgpu') {
        gpu.engine.free();
        this.note = gpu.backend.detail;
        return false;
      }
      gpu.backend.detail = adapter;
      // One pass down the page's query path compiles its shaders before the first real query.
      // Scoring compiles a kernel per kind of support count (odd, even, multiples of four…):
      // warmed with these, a first query against 5–20 supports took 50 ms on SwiftShader, not 780.
      // Both ways the page scores: with the query in one call, and alone when a support changes.
      const { points, lengths } = WARM_UP;
      const renders = gpu.engine.pens().length * gpu.engine.inputSize() ** 2;
      const embedding = (await gpu.engine.queryStrokes(points, lengths, new Float32Array(0))).slice(renders);
      for (const count of WARM_UP_SUPPORTS) {
        await gpu.engine.queryStrokes(points, lengths, repeat(embedding, count));
        await gpu.engine.scores(embedding, repeat(embedding, count));
      }
      // Weights loaded meanwhile, or the device was lost while warming up: do not switch.
      if (generation !== this.generation || this.gpuLost) {
        gpu.engine.free();
        return false;
      }
      this.gpu = gpu;
      this.note = 'switched from the CPU once WebGPU was ready';
      await this.onSwitch('webgpu');
      return true;
    } catch (error) {
      this.note = `WebGPU failed (${String(error?.message ?? error)}); staying on the CPU`;
      return false;
    }
  }

  /** Runs `task(engine)` on the answering engine, recovering from traps and GPU failures. */
  async run(task) {
    const current = this.active;
    try {
      return await task(current.engine);
    } catch (error) {
      if (isTrap(error)) {
        await this.#replace(current);
        throw new Error('The network crashed on that input and was restarted. Please try again.');
      }
      if (current === this.gpu && this.gpuLost) {
        return task(this.cpu.engine);
      }
      throw error;
    }
  }

  /**
   * Switches both engines to new weights (bytes of a weights file). Rejects, keeping the old
   * weights, when the file is not valid.
   */
  async load(weights) {
    const generation = ++this.generation;
    const cpu = await createEngine('lite', weights);
    let gpu = null;
    if (this.gpu) {
      try {
        gpu = await createEngine('gpu', weights);
      } catch {
        gpu = null;
      }
    }
    if (generation !== this.generation) {
      // A later load won: this one is dropped.
      cpu.engine.free();
      gpu?.engine.free();
      return false;
    }
    const [oldCpu, oldGpu] = [this.cpu, this.gpu];
    this.cpu = cpu;
    this.gpu = gpu?.backend.kind === 'webgpu' ? gpu : null;
    if (gpu && !this.gpu) gpu.engine.free();
    if (this.gpu) this.gpu.backend.detail = oldGpu.backend.detail;
    this.weights = weights;
    oldCpu?.engine.free();
    oldGpu?.engine.free();
    return true;
  }

  /** Falls back from WebGPU to the CPU engine, saying why. */
  async fallBack(reason) {
    if (!this.gpu) return;
    const lost = this.gpu;
    this.gpu = null;
    this.note = `${reason}; running on the CPU`;
    try {
      lost.engine.free();
    } catch {
      // A lost device may leave the engine unusable; dropping it is all that matters.
    }
    await this.onSwitch('cpu');
  }

  #watch(device) {
    this.gpuDevice = device;
    device.lost.then((info) => {
      this.gpuLost = true;
      this.fallBack(`the GPU device was lost (${info.reason ?? 'unknown'}${info.message ? `: ${info.message}` : ''})`);
    });
    device.addEventListener?.('uncapturederror', (event) => {
      this.gpuLost = true;
      this.fallBack(`the GPU reported an error (${event.error?.message ?? 'unknown'})`);
    });
  }

  /** Replaces an engine that trapped with a fresh instance on the same weights. */
  async #replace(broken) {
    const fresh = await createEngine(broken.flavour, this.weights);
    if (broken.flavour === 'gpu') fresh.backend.detail = broken.backend.detail;
    if (this.cpu === broken) this.cpu = fresh;
    if (this.gpu === broken) this.gpu = fresh.backend.kind === 'webgpu' ? fresh : null;
    this.note = 'restarted after a crash';
    this.onNotice();
  }
}
