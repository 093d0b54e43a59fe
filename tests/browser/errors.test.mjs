// The page's own error paths: buttons pressed before the network is ready, a training engine
// that cannot be downloaded, two weight files loaded at once, a fine-tuning result that comes
// back after the drawings changed, a fine-tuned network that fails to load, and imported files
// over the limits. Each must leave a message and a usable page, never an unhandled rejection.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { base, launch, networksOf, openPage, root, startServer, stopServer } from './harness.mjs';

before(startServer);
after(stopServer);

const shipped = readFileSync(join(root, 'weights/web.osw'));

/** The shipped committee's first network with its head's bias (the last `f32` of the payload) moved by `delta`. */
function withHeadBias(delta) {
  const bytes = Buffer.from(networksOf(shipped)[0]);
  const headerEnd = 12 + bytes.readUInt32LE(8);
  const header = JSON.parse(bytes.subarray(12, headerEnd).toString());
  const payload = bytes.subarray(headerEnd);
  payload.writeFloatLE(payload.readFloatLE(payload.length - 4) + delta, payload.length - 4);
  header.payload_crc32 = crc32(payload);
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  return Buffer.concat([bytes.subarray(0, 8), length, json, payload]);
}

async function drawSet(page) {
  await page.evaluate(() => {
    const { slots, query } = window.oneshot;
    slots[0].pad.setStrokes([[[0.2, 0.25], [0.8, 0.25], [0.2, 0.75], [0.8, 0.75]]]);
    slots[1].pad.setStrokes([[[0.5, 0.15], [0.5, 0.85]], [[0.15, 0.5], [0.85, 0.5]]]);
    query.setStrokes([[[0.25, 0.3], [0.75, 0.3], [0.25, 0.7], [0.75, 0.7]]]);
  });
  await page.evaluate(() => window.oneshot.idle());
}

const scoresOf = (page) => page.evaluate(() => window.oneshot.lastScores.map((s) => s.score));

test('before the network is ready: fine-tuning says so, downloading is off', async () => {
  const browser = await launch(false);
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    // Hold the weights back so the page stays in its loading state.
    let release;
    const held = new Promise((r) => (release = r));
    await page.route('**/weights/*.osw', async (route) => {
      await held;
      await route.continue();
    });
    await page.goto(`${base}/index.html?backend=cpu`);
    await page.waitForSelector('#tune-start');
    assert.equal(await page.locator('#weights-download').isDisabled(), true);
    await page.locator('#tune-start').click();
    assert.match(await page.locator('#tune-status').innerText(), /still loading/);
    release();
    await page.evaluate(() => window.oneshot.ready);
    assert.equal(await page.locator('#weights-download').isDisabled(), false);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('a training engine that cannot be downloaded fails the run with a message; the panel stays usable', async () => {
  const { browser, page, problems } = await openPage({ serviceWorkers: 'block' });
  try {
    await page.route('**/pkg/cpu/oneshot_bg.wasm', (route) => route.abort());
    await drawSet(page);
    await page.locator('#tune-start').click();
    await page.waitForFunction(() => window.oneshot.tune.error, null, { timeout: 30_000 });
    assert.match(await page.locator('#tune-status').innerText(), /Fine-tuning failed: could not load the training engine/);
    assert.equal(await page.evaluate(() => window.oneshot.tune.running), false);
    assert.ok(await page.locator('#tune-start').isVisible());
    // The failed download is the only complaint; nothing unhandled.
    assert.ok(problems.every((p) => /Failed to load resource|net::ERR_FAILED/.test(p)), problems.join('\n'));
  } finally {
    await browser.close();
  }
});

test('two weight files loaded at once: the last one chosen wins', async () => {
  const { browser, page } = await openPage();
  try {
    await drawSet(page);
    const [a, b] = [withHeadBias(-3), withHeadBias(3)];
    // B's scores, on their own.
    await page.locator('#weights-file').setInputFiles({ name: 'b.osw', mimeType: 'application/octet-stream', buffer: b });
    await page.waitForFunction(() => document.getElementById('model-message').textContent.includes('b.osw'));
    await page.evaluate(() => window.oneshot.idle());
    const expected = await scoresOf(page);
    await page.locator('#weights-reset').click();
    await page.waitForFunction(() => document.getElementById('model-message').textContent.includes('shipped'));
    // A, then B at once.
    await page.locator('#weights-file').setInputFiles({ name: 'a.osw', mimeType: 'application/octet-stream', buffer: a });
    await page.locator('#weights-file').setInputFiles({ name: 'b.osw', mimeType: 'application/octet-stream', buffer: b });
    await page.evaluate(() => window.oneshot.idle());
    assert.match(await page.locator('#model-message').innerText(), /b\.osw/);
    (await scoresOf(page)).forEach((s, i) => assert.ok(Math.abs(s - expected[i]) < 1e-6, `${s} vs ${expected[i]}`));
  } finally {
    await browser.close();
  }
});

test('a fine-tuning result that arrives after the drawings changed is discarded', async () => {
  const { browser, page, problems } = await openPage();
  try {
    await drawSet(page);
    await page.locator('#tune-steps').fill('40');
    await page.locator('#tune-start').click();
    await page.waitForFunction(() => window.oneshot.tune.losses.length >= 1, null, { timeout: 60_000 });
    // A support is redrawn while the network trains on the old one.
    await page.evaluate(() => window.oneshot.slots[1].pad.setStrokes([[[0.2, 0.2], [0.8, 0.8]]]));
    await page.waitForFunction(() => !window.oneshot.tune.running, null, { timeout: 120_000 });
    await page.evaluate(() => window.oneshot.idle());
    assert.match(await page.locator('#tune-status').innerText(), /changed while fine-tuning.*discarded/);
    assert.equal(await page.evaluate(() => window.oneshot.weightsSource), 'the shipped weights');
    assert.equal(await page.evaluate(() => window.oneshot.tune.runs), 0);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('a fine-tuned network that fails to load says so and keeps the old one', async () => {
  const { browser, page } = await openPage();
  try {
    await drawSet(page);
    const before = await scoresOf(page);
    await page.evaluate(() => {
      window.oneshot.network.load = async () => {
        throw new Error('the weights do not fit the network (test)');
      };
    });
    await page.locator('#tune-steps').fill('2');
    await page.locator('#tune-start').click();
    await page.waitForFunction(() => !window.oneshot.tune.running && window.oneshot.tune.losses.length === 2, null, { timeout: 60_000 });
    await page.evaluate(() => window.oneshot.idle());
    assert.match(await page.locator('#tune-status').innerText(), /could not be loaded; the network is unchanged/);
    assert.doesNotMatch(await page.locator('#tune-status').innerText(), /now use it/);
    assert.match(await page.locator('#model-message').innerText(), /Could not load fine-tuned weights/);
    assert.deepEqual(await scoresOf(page), before);
  } finally {
    await browser.close();
  }
});

test('imported support sets over the limits are refused with a message', async () => {
  const { browser, page, problems } = await openPage();
  try {
    const huge = Array.from({ length: 30_000 }, (_, i) => [(i % 100) / 100, Math.floor(i / 100) / 300]);
    const file = { format: 'oneshot-support-set', version: 2, slots: [{ label: 'big', drawings: [[huge]] }] };
    await page.locator('#import').setInputFiles({ name: 'big.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(file)) });
    await page.waitForFunction(() => document.getElementById('model-message').textContent.includes('big.json'));
    assert.match(await page.locator('#model-message').innerText(), /30000 points \(at most 500 and 20000\)/);
    assert.equal(await page.evaluate(() => window.oneshot.slots.length), 5, 'the page is as it was');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
