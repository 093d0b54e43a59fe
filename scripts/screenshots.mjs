// Screenshots of the page for the README (docs/screenshots/): the example loaded, the query
// scored, the network's view and "where it looks" shown — at a desktop width and a phone width.
// Needs site/ (scripts/build-web). Usage: node scripts/screenshots.mjs

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { base, openPage, root, startServer, stopServer } from '../tests/browser/harness.mjs';

const out = join(root, 'docs/screenshots');
mkdirSync(out, { recursive: true });
await startServer();
try {
  for (const [name, viewport] of [['desktop', { width: 1280, height: 900 }], ['phone', { width: 390, height: 844 }]]) {
    // Without ?backend=cpu: the status line reads as a visitor without a GPU sees it.
    const { browser, page } = await openPage({ viewport, query: '?' });
    await page.evaluate(() => localStorage.clear());
    await page.locator('#example').click();
    await page.evaluate(() => window.oneshot.idle());
    await page.locator('#heatmap-toggle').check();
    await page.evaluate(() => window.oneshot.idle());
    await page.waitForFunction(() => !document.getElementById('heatmap-figure').hidden);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(out, `page-${name}.png`), fullPage: false });
    await page.locator('#query-section').screenshot({ path: join(out, `query-${name}.png`) });
    console.log(`wrote page-${name}.png and query-${name}.png (${base})`);
    await browser.close();
  }
} finally {
  stopServer();
}
