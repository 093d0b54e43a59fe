// Navigation → ready to score on the CPU path, as a first visit sees it: seven cold loads
// (Debian's headless Chromium, empty cache, ?backend=cpu), on localhost or, with a latency
// argument, over an emulated link of that round-trip time in ms and 9 Mbit/s down (a mobile
// network). Prints the median and every run. Needs site/ (scripts/build-web).
//
// By default each load starts a fresh browser, so the figure includes the browser's own first
// navigation (a new renderer process and its caches). With --running-browser the loads share one
// browser that is already running, as a visitor's is, each in a new context (empty cache, no
// service worker); one load first warms the browser and is not counted.
//
// Usage: node scripts/measure-startup.mjs [LATENCY_MS] [--running-browser]

import { launch, startServer, stopServer, base } from '../tests/browser/harness.mjs';

const args = process.argv.slice(2);
const running = args.includes('--running-browser');
const latency = Number(args.find((a) => !a.startsWith('--')) ?? 0);

async function load(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  if (latency > 0) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency, downloadThroughput: 9e6 / 8, uploadThroughput: 1.5e6 / 8 });
  }
  await page.goto(`${base}/index.html?backend=cpu`);
  // performance.now() in the page counts from the start of the navigation.
  const ms = await page.evaluate(async () => {
    await window.oneshot.ready;
    return Math.round(window.oneshot.readyMs);
  });
  await context.close();
  return ms;
}

await startServer();
const ready = [];
const shared = running ? await launch(false) : null;
if (shared) await load(shared);
for (let i = 0; i < 7; i++) {
  const browser = shared ?? (await launch(false));
  ready.push(await load(browser));
  if (!shared) await browser.close();
}
await shared?.close();
await stopServer();
ready.sort((a, b) => a - b);
const link = latency ? `${latency} ms round trip, 9 Mbit/s` : 'localhost';
const how = running ? 'a running browser' : 'a fresh browser each';
console.log(`navigation → ready (${link}, ${how}): median ${ready[3]} ms (${ready.join(', ')})`);
