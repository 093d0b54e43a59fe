// Shared by the browser tests: the static server for site/, headless Chromium (Debian's) with or
// without WebGPU, and where the native binary is.

import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

export const root = resolve(import.meta.dirname, '../..');
export const binary =
  process.env.ONESHOT_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, '.cache/oneshot/target'), 'release/oneshot');
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu-sandbox', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
];

let server = null;
/** The site's address once `startServer` resolved, e.g. `http://127.0.0.1:18123`. */
export let base = null;

/** Serves site/ on a free port of 127.0.0.1 (python3 -m http.server). */
export async function startServer() {
  const port = 18000 + Math.floor(Math.random() * 2000);
  server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', join(root, 'site')], { stdio: 'ignore' });
  base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/index.html`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the static server did not start');
}

export function stopServer() {
  server?.kill();
}

/** Launches Chromium; WebGPU (SwiftShader, a CPU emulation of a GPU) only when asked. */
export function launch(webgpu) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [...CHROMIUM_FLAGS, ...(webgpu ? ['--enable-unsafe-webgpu'] : [])],
  });
}

/**
 * Opens the page and waits until it scores — on WebGPU until it has switched to it. `problems`
 * collects console errors and uncaught exceptions. `serviceWorkers: 'block'` keeps the offline
 * cache out of the way of routed requests.
 */
export async function openPage({ webgpu = false, query = '', hasTouch = false, viewport = { width: 1200, height: 1400 }, serviceWorkers = 'allow' } = {}) {
  const browser = await launch(webgpu);
  const context = await browser.newContext({ viewport, hasTouch, serviceWorkers });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(String(e)));
  await page.goto(`${base}/index.html${query || (webgpu ? '' : '?backend=cpu')}`);
  await page.evaluate(() => window.oneshot.ready);
  if (webgpu) {
    const switched = await page.evaluate(() => window.oneshot.upgraded);
    if (!switched) throw new Error(`the page did not switch to WebGPU: ${await page.locator('#status-text').innerText()}`);
  }
  await page.evaluate(() => window.oneshot.idle());
  return { browser, context, page, problems };
}

/**
 * The networks of a weights file, each a plain weights file: the members of a committee file
 * (`ONESHOTC`, a u32 count, then a u32 length and the bytes of each; see
 * crates/core/src/weights/committee.rs), or the file itself.
 */
export function networksOf(bytes) {
  if (bytes.subarray(0, 8).toString() !== 'ONESHOTC') return [bytes];
  const networks = [];
  let at = 12;
  for (let i = 0; i < bytes.readUInt32LE(8); i++) {
    const length = bytes.readUInt32LE(at);
    networks.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return networks;
}
