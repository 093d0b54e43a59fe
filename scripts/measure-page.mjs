// Measures the page in headless Chromium (Debian's) and prints Markdown tables:
//
// - what a first visit downloads before the first score (every response until the page is
//   ready, gzipped as GitHub Pages serves it), and what a second visit downloads (the service
//   worker answers the rest);
// - navigation → ready on the CPU (the lite build), and on WebGPU until the page has switched;
// - the page's own query path (a drawing's strokes in, scores out: painting, preprocessing,
//   embedding, 20-way scoring, readback), the first after the switch to WebGPU and the median;
// - fine-tuning speed, steps per second from the second step (5 characters × 2 drawings).
//
// Usage: node scripts/measure-page.mjs [repetitions]   (needs site/ from scripts/build-web)
// Headless Chromium here runs WebGPU on SwiftShader, a CPU emulation of a GPU: its figures say
// nothing about a real GPU.

import { gzipSync } from 'node:zlib';
import { launch, openPage, startServer, stopServer, base } from '../tests/browser/harness.mjs';

const repetitions = Number(process.argv[2] ?? 20);
await startServer();

/** Bytes a visit fetches from the network until the page is ready: raw and gzipped. */
async function download() {
  const browser = await launch(false);
  const context = await browser.newContext();
  const page = await context.newPage();
  const measure = async () => {
    const responses = [];
    const listener = (r) => responses.push(r);
    page.on('response', listener);
    const started = Date.now();
    await page.goto(`${base}/index.html?backend=cpu`);
    await page.evaluate(() => window.oneshot.ready);
    const ready = Date.now() - started;
    page.off('response', listener);
    let [raw, gzipped, files] = [0, 0, 0];
    for (const response of responses) {
      if (response.fromServiceWorker()) continue;
      const body = await response.body().catch(() => Buffer.alloc(0));
      raw += body.length;
      gzipped += gzipSync(body, { level: 6 }).length;
      files += 1;
    }
    return { raw, gzipped, files, ready };
  };
  const cold = await measure();
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    while (!navigator.serviceWorker.controller) await new Promise((r) => setTimeout(r, 50));
  });
  const warm = await measure();
  await browser.close();
  return { cold, warm };
}

/** Navigation → ready, the page's query path, and fine-tuning speed on one backend. */
async function backend(webgpu) {
  const started = Date.now();
  const { browser, page } = await openPage({ webgpu });
  const switched = Date.now() - started;
  const result = await page.evaluate(async (reps) => {
    const app = window.oneshot;
    const scribble = (seed) => {
      let s = seed * 7919 + 13;
      const rand = () => ((s = (s * 9301 + 49297) % 233280) / 233280);
      return Array.from({ length: 3 }, () => Array.from({ length: 8 }, () => [0.15 + rand() * 0.7, 0.15 + rand() * 0.7]));
    };
    while (app.slots.length < 20) document.getElementById('add-slot').click();
    app.slots.forEach((slot, i) => slot.pad.setStrokes(scribble(i + 1)));
    await app.idle();
    const query = async (seed) => {
      const t = performance.now();
      app.query.setStrokes(scribble(seed));
      await app.idle();
      return performance.now() - t;
    };
    const first = await query(100);
    const times = [];
    for (let i = 0; i < reps; i++) times.push(await query(101 + i));
    times.sort((a, b) => a - b);
    return { backend: app.backend, startup: app.readyMs, first, median: times[times.length >> 1], min: times[0], max: times.at(-1) };
  }, repetitions);
  result.switched = switched;
  result.tuning = await page.evaluate(async () => {
    const app = window.oneshot;
    while (app.slots.length > 5) app.slots.at(-1).root.querySelector('.remove').click();
    app.slots.forEach((slot) => {
      slot.root.querySelector('.more').click();
      slot.drawings[1].pad.setStrokes(slot.pad.strokes.map((stroke) => stroke.map(([x, y]) => [x * 0.9 + 0.05, y * 0.9 + 0.03])));
    });
    await app.idle();
    const speeds = {};
    for (const scope of ['head', 'whole']) {
      document.querySelector(`#tune-form input[value="${scope}"]`).checked = true;
      // SwiftShader takes seconds per step: fewer steps there.
      document.getElementById('tune-steps').value = app.backend.kind === 'webgpu' ? '6' : '20';
      await app.finetune.start();
      await app.idle();
      speeds[scope] = app.tune.stepsPerSecond;
      await app.loading;
    }
    return speeds;
  });
  await browser.close();
  return result;
}

const sizes = await download();
const rows = [await backend(false), await backend(true)];
stopServer();

const kb = (n) => `${(n / 1024).toFixed(0)} KiB`;
console.log(`Chromium ${process.env.CHROMIUM ?? '/usr/bin/chromium'}, ${repetitions} repetitions, ${new Date().toISOString().slice(0, 10)}\n`);
console.log('| visit | files from the network before the first score | raw | gzipped | navigation → ready |');
console.log('|---|---:|---:|---:|---:|');
for (const [name, v] of [['first (cold cache)', sizes.cold], ['second (service worker)', sizes.warm]]) {
  console.log(`| ${name} | ${v.files} | ${kb(v.raw)} | ${kb(v.gzipped)} | ${v.ready} ms |`);
}
console.log('\n| backend | navigation → ready | first query | query, median (min–max) | first / median | fine-tune head | fine-tune whole |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const webgpu = r.backend.kind === 'webgpu';
  const name = webgpu ? 'WebGPU (SwiftShader: CPU emulation)' : 'CPU (lite build; fine-tuning: the cpu build)';
  const ready = webgpu ? `${r.switched} ms (switched; CPU ready at ${r.startup.toFixed(0)} ms)` : `${r.startup.toFixed(0)} ms`;
  console.log(
    `| ${name} | ${ready} | ${r.first.toFixed(1)} ms | ${r.median.toFixed(1)} ms (${r.min.toFixed(1)}–${r.max.toFixed(1)}) | ` +
      `${(r.first / r.median).toFixed(2)} | ${r.tuning.head.toFixed(2)} steps/s | ${r.tuning.whole.toFixed(2)} steps/s |`,
  );
}
