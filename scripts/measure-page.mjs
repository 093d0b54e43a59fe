// Measures the page in headless Chromium (Debian's) on WebGPU and on the CPU fallback and
// prints Markdown tables: time from navigation to a ready network, the first 20-way query
// (shader compilation included), and the median of later 20-way queries (embed the query, score
// it against 20 cached support embeddings, read the scores back); then fine-tuning speed, in
// steps per second from the second step on, for the head alone and the whole network (5
// characters with 2 drawings each: 10 images per step), with the longest main-thread task seen.
//
// Usage: node scripts/measure-page.mjs [repetitions]   (needs site/ from scripts/build-web)
// Headless Chromium here runs WebGPU on SwiftShader, a CPU emulation of a GPU: its figures say
// nothing about a real GPU.

import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { chromium } from 'playwright-core';

const repetitions = Number(process.argv[2] ?? 20);
const root = resolve(import.meta.dirname, '..');
const port = 18700 + Math.floor(Math.random() * 200);
const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', `${root}/site`], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 800));

const rows = [];
for (const webgpu of [true, false]) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu-sandbox', '--disable-background-networking', '--no-first-run', ...(webgpu ? ['--enable-unsafe-webgpu'] : [])],
  });
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/index.html`);
  const result = await page.evaluate(async (reps) => {
    await window.oneshot.ready;
    const ready = performance.now();
    const engine = window.oneshot.engine;
    const size = 128;
    // Twenty different scribbles and a query.
    const picture = (seed) => {
      const rgba = new Uint8Array(size * size * 4).fill(255);
      let s = seed * 9301 + 49297;
      const rand = () => ((s = (s * 9301 + 49297) % 233280) / 233280);
      for (let stroke = 0; stroke < 4; stroke++) {
        let [x, y] = [20 + rand() * 88, 20 + rand() * 88];
        const [dx, dy] = [rand() * 2 - 1, rand() * 2 - 1];
        for (let t = 0; t < 50; t++, x += dx, y += dy) {
          for (let oy = -2; oy <= 2; oy++) for (let ox = -2; ox <= 2; ox++) {
            const [px, py] = [Math.round(x + ox), Math.round(y + oy)];
            if (px >= 0 && py >= 0 && px < size && py < size) rgba.fill(0, 4 * (py * size + px), 4 * (py * size + px) + 3);
          }
        }
      }
      return rgba;
    };
    const supports = [];
    for (let i = 0; i < 20; i++) supports.push(await engine.embed(size, size, picture(i + 1)));
    const flat = new Float32Array(supports.length * supports[0].length);
    supports.forEach((e, i) => flat.set(e, i * e.length));
    const query = picture(99);
    const once = async () => {
      const t = performance.now();
      const e = await engine.embed(size, size, query);
      await engine.scores(e, flat);
      return performance.now() - t;
    };
    const first = await once();
    const times = [];
    for (let i = 0; i < reps; i++) times.push(await once());
    times.sort((a, b) => a - b);
    return { backend: window.oneshot.backend, startup: window.oneshot.startupMs, ready, first, median: times[times.length >> 1], min: times[0], max: times.at(-1) };
  }, repetitions);
  result.tuning = await page.evaluate(async () => {
    const app = window.oneshot;
    const scribble = (seed) => {
      let s = seed * 7919 + 13;
      const rand = () => ((s = (s * 9301 + 49297) % 233280) / 233280);
      return Array.from({ length: 3 }, () => Array.from({ length: 6 }, () => [0.15 + rand() * 0.7, 0.15 + rand() * 0.7]));
    };
    app.slots.forEach((slot, i) => {
      slot.pad.setStrokes(scribble(i + 1));
      slot.root.querySelector('.more').click();
      slot.drawings[1].pad.setStrokes(scribble(i + 1).map((stroke) => stroke.map(([x, y]) => [x * 0.9 + 0.05, y * 0.9 + 0.03])));
    });
    await app.idle();
    const tasks = [];
    new PerformanceObserver((list) => tasks.push(...list.getEntries())).observe({ type: 'longtask' });
    let longest = 0;
    const speeds = {};
    for (const scope of ['head', 'whole']) {
      document.querySelector(`#tune-form input[value="${scope}"]`).checked = true;
      // SwiftShader takes seconds per step: fewer steps there.
      document.getElementById('tune-steps').value = app.backend.kind === 'webgpu' ? '6' : '20';
      await app.finetune.start();
      await app.idle();
      speeds[scope] = app.tune.stepsPerSecond;
      const during = tasks.filter((t) => t.startTime >= app.tune.startedAt && t.startTime < app.tune.trainedAt);
      longest = Math.max(longest, ...during.map((t) => t.duration));
      await app.loading;
    }
    return { ...speeds, longest };
  });
  rows.push(result);
  await browser.close();
}
server.kill();

console.log(`Chromium ${process.env.CHROMIUM ?? '/usr/bin/chromium'}, ${repetitions} repetitions, ${new Date().toISOString().slice(0, 10)}`);
console.log('| backend | navigation → network ready | first 20-way query | 20-way query, median (min–max) |');
console.log('|---|---:|---:|---:|');
for (const r of rows) {
  const name = r.backend.kind === 'webgpu' ? 'WebGPU (SwiftShader: CPU emulation)' : `CPU fallback (${r.backend.detail})`;
  console.log(`| ${name} | ${r.startup.toFixed(0)} ms | ${r.first.toFixed(1)} ms | ${r.median.toFixed(1)} ms (${r.min.toFixed(1)}–${r.max.toFixed(1)}) |`);
}
console.log('\n| backend | fine-tune, head only | fine-tune, whole network | longest main-thread task while training |');
console.log('|---|---:|---:|---:|');
for (const r of rows) {
  const name = r.backend.kind === 'webgpu' ? 'WebGPU (SwiftShader: CPU emulation)' : 'CPU (own SIMD kernels in wasm; Burn flex for fine-tuning)';
  console.log(`| ${name} | ${r.tuning.head.toFixed(2)} steps/s | ${r.tuning.whole.toFixed(2)} steps/s | ${r.tuning.longest.toFixed(0)} ms |`);
}
