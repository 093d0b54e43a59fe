// Fine-tuning off the main thread: this worker runs its own copy of the network (on WebGPU when
// the page uses it, else on the CPU), trains it on the drawings it is sent, reports the loss of
// every step and sends back the weights file. Cancelling terminates the worker.

self.onmessage = async ({ data }) => {
  try {
    // The build the page runs (cpu or gpu), compiled by the page and posted here.
    const glue = await import(`../pkg/${data.flavour === 'gpu' ? 'gpu' : 'cpu'}/oneshot.js`);
    await glue.default({ module_or_path: data.module });
    const { Engine } = glue;
    const engine = await Engine.create(data.useGpu, data.weights);
    self.postMessage({ type: 'backend', backend: engine.backend() });
    const run = engine.fineTuneStrokes(data.scope, data.classes, data.strokes, data.lengths, data.points);
    const started = performance.now();
    for (let step = 1; step <= data.steps; step++) {
      const loss = await run.step();
      self.postMessage({ type: 'step', step, loss, elapsedMs: performance.now() - started });
    }
    const weights = await run.weights();
    self.postMessage({ type: 'done', weights }, [weights.buffer]);
  } catch (error) {
    self.postMessage({ type: 'error', message: String(error?.message ?? error) });
  }
};
