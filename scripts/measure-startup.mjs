// Navigation → ready to score on the CPU path, as a first visit sees it: seven fresh browsers
// (Debian's headless Chromium, cold cache, ?backend=cpu), on localhost or, with a latency
// argument, over an emulated link of that round-trip time in ms and 9 Mbit/s down (a mobile
// network). Prints the median and every run. Needs site/ (scripts/build-web).
//
// Usage: node scripts/measure-startup.mjs [LATENCY_MS]

import { launch, startServer, stopServer, base } from '../tests/browser/harness.mjs';

const latency = Number(process.argv[2] ?? 0);
await startServer();
const ready = [];
for (let i = 0; i < 7; i++) {
  const browser = await launch(false);
  const page = await (await browser.newContext()).newPage();
  if (latency > 0) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency, downloadThroughput: 9e6 / 8, uploadThroughput: 1.5e6 / 8 });
  }
  await page.goto(`${base}/index.html?backend=cpu`);
  // performance.now() in the page counts from the start of the navigation.
  ready.push(await page.evaluate(async () => {
    await window.oneshot.ready;
    return Math.round(window.oneshot.readyMs);
  }));
  await browser.close();
}
await stopServer();
ready.sort((a, b) => a - b);
console.log(`navigation → ready${latency ? ` (${latency} ms round trip, 9 Mbit/s)` : ' (localhost)'}: median ${ready[3]} ms (${ready.join(', ')})`);
