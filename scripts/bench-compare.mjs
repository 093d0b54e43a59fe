// The browser half of scripts/bench-compare, and the table: runs www/bench.html in headless
// Chromium (Debian's) once per stack — ours on WebGPU and on the CPU, onnxruntime-web and
// TensorFlow.js each on wasm and on WebGPU, each in a fresh browser — then reads the native reports that scripts/bench-compare
// wrote (DIR/{web,koch}/{ours,peers}.json) and prints one Markdown table of ratios, ours / peer,
// with the machine and date. Everything is also written to DIR/results.json.
//
// Usage: node scripts/bench-compare.mjs DIR [REPETITIONS [TUNE_STEPS]]   (DIR under site/)
// Headless Chromium runs WebGPU on SwiftShader, a CPU emulation: those rows say nothing about a
// real GPU.

import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { relative, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const [dirArg, repsArg = '100', tuneArg = '5'] = process.argv.slice(2);
if (!dirArg) {
  console.error('usage: node scripts/bench-compare.mjs DIR [REPETITIONS [TUNE_STEPS]]');
  process.exit(2);
}
const root = resolve(import.meta.dirname, '..');
const site = resolve(root, 'site');
const dir = resolve(dirArg);
const data = relative(site, resolve(dir, 'web'));
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

const port = 18900 + Math.floor(Math.random() * 200);
const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', site], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 800));

/** One page load of bench.html in a fresh browser. */
async function runPage(stack, webgpu, extra = '') {
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu-sandbox', '--disable-background-networking', '--no-first-run', ...(webgpu ? ['--enable-unsafe-webgpu'] : [])],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/bench.html?stack=${stack}&data=${data}&reps=${repsArg}&tune=${tuneArg}${extra}`);
    await page.waitForFunction(() => window.benchResult, null, { timeout: 30 * 60e3, polling: 500 });
    const result = await page.evaluate(() => window.benchResult);
    if (result.error) throw new Error(`${stack}: ${result.error}`);
    return result;
  } finally {
    await browser.close();
  }
}

let page;
try {
  page = {
    oursGpu: await runPage('ours', true),
    oursCpu: await runPage('ours', false, '&backend=cpu'),
    ortWasm: await runPage('ort-wasm', false),
    ortGpu: await runPage('ort-webgpu', true),
    tfjsWasm: await runPage('tfjs-wasm', false),
    tfjsGpu: await runPage('tfjs-webgpu', true),
  };
} finally {
  server.kill();
}

const bytes = (files) => {
  let raw = 0, gz = 0;
  for (const file of files) {
    const content = readFileSync(resolve(site, file));
    raw += content.length;
    gz += gzipSync(content, { level: 9 }).length;
  }
  return { raw, gz };
};
// Ours: a build's glue and wasm (site/app-HASH/) plus one network as the page ships it (8-bit,
// DIR/web/page-network.osw, written by scripts/bench-compare), like for like with the peers' one
// network. The page's weights file holds a committee of networks: reported apart below.
const app = readdirSync(site).find((f) => f.startsWith('app-'));
const build = (flavour) => [`${app}/pkg/${flavour}/oneshot_bg.wasm`, `${app}/pkg/${flavour}/oneshot.js`, `${data}/page-network.osw`];
const pageWeights = bytes(readdirSync(resolve(site, 'weights')).map((f) => `weights/${f}`));
const downloads = {
  oursCpu: bytes(build('lite')),
  oursGpu: bytes(build('gpu')),
  ortWasm: bytes(['ort/ort.wasm.min.mjs', 'ort/ort-wasm-simd-threaded.mjs', 'ort/ort-wasm-simd-threaded.wasm', `${data}/query.onnx`]),
  ortGpu: bytes(['ort/ort.webgpu.min.mjs', 'ort/ort-wasm-simd-threaded.asyncify.mjs', 'ort/ort-wasm-simd-threaded.asyncify.wasm', `${data}/query.onnx`]),
  tfjsWasm: bytes(['tfjs/tf-core.min.js', 'tfjs/tf-backend-wasm.min.js', 'tfjs/tfjs-backend-wasm-simd.wasm', `${data}/weights.safetensors`]),
  tfjsGpu: bytes(['tfjs/tf-core.min.js', 'tfjs/tf-backend-webgpu.min.js', `${data}/weights.safetensors`]),
};
const native = Object.fromEntries(['web', 'koch'].map((preset) => {
  const ours = JSON.parse(readFileSync(resolve(dir, preset, 'ours.json'), 'utf8'));
  const peers = JSON.parse(readFileSync(resolve(dir, preset, 'peers.json'), 'utf8'));
  return [preset, { ours, peers }];
}));

// The table.
const find = (rows, key) => rows.find((r) => r.key === key);
const ms = (row) => row.timing.median;
const fmtMs = (v) => (v >= 100 ? `${v.toFixed(0)} ms` : v >= 10 ? `${v.toFixed(1)} ms` : `${v.toFixed(2)} ms`);
const fmtRatio = (v) => (v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2));
const fmtMB = (b) => `${(b / 1e6).toFixed(2)} MB`;
const lines = [];
const add = (where, what, ours, peerName, peer, ratio, better) => lines.push(`| ${where} | ${what} | ${ours} | ${peerName} | ${peer} | ${fmtRatio(ratio)} (${better}) |`);
for (const preset of ['web', 'koch']) {
  const { ours, peers } = native[preset];
  const [ort, torch] = peers.peers;
  for (const key of ['embed', 'query']) {
    const o = find(ours.rows, key), p = find(ort.rows, key);
    add(`native, ${preset}`, o.what, fmtMs(ms(o)), ort.stack, fmtMs(ms(p)), ms(o) / ms(p), 'lower is better');
  }
  const o = find(ours.rows, 'train'), p = find(torch.rows, 'train');
  add(`native, ${preset}`, `${o.what} (pairs/s)`, o.pairs_per_second.toFixed(1), torch.stack, p.pairs_per_second.toFixed(1), o.pairs_per_second / p.pairs_per_second, 'higher is better');
}
for (const [ours, peer] of [[page.oursCpu, page.ortWasm], [page.oursGpu, page.ortGpu], [page.oursCpu, page.tfjsWasm], [page.oursGpu, page.tfjsGpu]]) {
  for (const key of ['embed', 'query']) {
    const o = find(ours.rows, key), p = find(peer.rows, key);
    add('browser, web', `${o.what}: ${ours.stack}`, fmtMs(ms(o)), peer.stack, fmtMs(ms(p)), ms(o) / ms(p), 'lower is better');
  }
  add('browser, web', `navigation → first score: ${ours.stack}`, fmtMs(ours.firstScoreMs), peer.stack, fmtMs(peer.firstScoreMs), ours.firstScoreMs / peer.firstScoreMs, 'lower is better');
}
for (const [ours, name, peerBytes] of [
  ['lite (CPU)', 'onnxruntime-web (wasm)', downloads.ortWasm],
  ['gpu (WebGPU)', 'onnxruntime-web (webgpu)', downloads.ortGpu],
  ['lite (CPU)', 'TensorFlow.js (wasm)', downloads.tfjsWasm],
  ['gpu (WebGPU)', 'TensorFlow.js (webgpu)', downloads.tfjsGpu],
]) {
  const mine = ours.startsWith('lite') ? downloads.oursCpu : downloads.oursGpu;
  add('browser, web', `download, gzipped (runtime + network): ours ${ours}`, fmtMB(mine.gz), name, fmtMB(peerBytes.gz), mine.gz / peerBytes.gz, 'lower is better');
}

let chromiumVersion = '';
try {
  chromiumVersion = execFileSync(executablePath, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
} catch {}
const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores; ${chromiumVersion}`;
const date = new Date().toISOString().slice(0, 10);
console.log(`Benchmark ${date} on ${machine}; ${repsArg} repetitions (training: ${tuneArg} steps), medians.`);
console.log('WebGPU in headless Chromium is SwiftShader (a CPU emulation of a GPU).\n');
console.log('| where | what | ours | peer | peer\'s | ours / peer |');
console.log('|---|---|---:|---|---:|---:|');
for (const line of lines) console.log(line);
const tune = [page.oursGpu, page.oursCpu].map((r) => find(r.rows, 'train_episode')).filter(Boolean);
if (tune.length) {
  console.log(`\nFine-tuning in the page (no peer: onnxruntime-web does not train, and a TensorFlow.js training loop is not written): ${[page.oursGpu, page.oursCpu].map((r) => { const t = find(r.rows, 'train_episode'); return t ? `${r.stack} ${t.pairs_per_second.toFixed(0)} scored pairs/s (${fmtMs(ms(t))} per 20-way step)` : ''; }).filter(Boolean).join('; ')}.`);
}
console.log(`Downloads, raw / gzipped: ours lite ${fmtMB(downloads.oursCpu.raw)} / ${fmtMB(downloads.oursCpu.gz)}, gpu ${fmtMB(downloads.oursGpu.raw)} / ${fmtMB(downloads.oursGpu.gz)}; onnxruntime-web wasm ${fmtMB(downloads.ortWasm.raw)} / ${fmtMB(downloads.ortWasm.gz)}, webgpu ${fmtMB(downloads.ortGpu.raw)} / ${fmtMB(downloads.ortGpu.gz)}; TensorFlow.js wasm ${fmtMB(downloads.tfjsWasm.raw)} / ${fmtMB(downloads.tfjsWasm.gz)}, webgpu ${fmtMB(downloads.tfjsGpu.raw)} / ${fmtMB(downloads.tfjsGpu.gz)}. The page's own weights file (site/weights/, every network of its committee) adds ${fmtMB(pageWeights.raw)} / ${fmtMB(pageWeights.gz)} in place of the one network above.`);
const agreement = { native: Object.fromEntries(Object.entries(native).map(([p, n]) => [p, n.peers.agreement])), page: Object.fromEntries(Object.entries(page).map(([k, r]) => [k, r.agreement])) };
console.log(`Largest difference from our reference outputs (checked ≤ 1e-4 before timing): ${Math.max(...Object.values(agreement).flatMap((o) => Object.values(o).flatMap((a) => Object.values(a)))).toExponential(1)}.`);
writeFileSync(resolve(dir, 'results.json'), JSON.stringify({ date, machine, repetitions: Number(repsArg), native, page, downloads, pageWeights, agreement }, null, 2));
