// The page in headless Chromium (Debian's), on WebGPU (SwiftShader, a CPU emulation of a GPU)
// and on the CPU fallback: drawing with real pointer events, agreement with the native
// pipeline, and bad input. Needs site/ (scripts/build-web) and the native binary.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binary, networksOf, openPage as open, root, startServer, stopServer } from './harness.mjs';

const weights = join(root, 'weights/web.osw');
const work = mkdtempSync(join(tmpdir(), 'oneshot-browser-'));
const scoresByBackend = {};

before(startServer);
after(stopServer);

/** The page on WebGPU (once switched to it) or on the CPU. */
const openPage = (webgpu) => open({ webgpu });

/** Draws strokes (lists of [x, y] in 0..1) with the mouse, i.e. real pointer events. */
async function draw(page, canvas, strokes) {
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  for (const stroke of strokes) {
    const [x0, y0] = stroke[0];
    await page.mouse.move(box.x + x0 * box.width, box.y + y0 * box.height);
    await page.mouse.down();
    for (const [x, y] of stroke.slice(1)) await page.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps: 4 });
    await page.mouse.up();
  }
}

const transform = (strokes, scale, dx, dy) => strokes.map((s) => s.map(([x, y]) => [0.5 + (x - 0.5) * scale + dx, 0.5 + (y - 0.5) * scale + dy]));
const circle = [Array.from({ length: 25 }, (_, i) => [0.5 + 0.3 * Math.cos((i / 24) * 2 * Math.PI), 0.5 + 0.3 * Math.sin((i / 24) * 2 * Math.PI)])];
const zigzag = [[[0.2, 0.25], [0.8, 0.25], [0.2, 0.75], [0.8, 0.75]], [[0.35, 0.5], [0.65, 0.5]]];
const cross = [[[0.5, 0.15], [0.5, 0.85]], [[0.15, 0.5], [0.85, 0.5]]];

async function waitFor(page, predicate, arg) {
  await page.evaluate(() => window.oneshot.idle());
  await page.waitForFunction(predicate, arg, { timeout: 60_000 });
  await page.evaluate(() => window.oneshot.idle());
}

// Three characters the shipped network tells apart with certainty: fine-tuning on them has
// nothing left to learn (its loss starts at 0.000).
const distinctSet = { supports: [circle, zigzag, cross], query: transform(zigzag, 0.8, 0.06, -0.04) };
// Three it confuses — a bar, the bar with a hook, the bar with a serif — so that fine-tuning has
// something to learn (a loss near 2.7 at the start on the CPU, 1.5 after 16 steps).
const bar = [[[0.5, 0.15], [0.5, 0.85]]];
const confusableSet = {
  supports: [bar, [[[0.5, 0.15], [0.5, 0.85], [0.4, 0.8]]], [...bar, [[0.45, 0.2], [0.55, 0.2]]]],
  query: transform([[[0.5, 0.15], [0.5, 0.85], [0.4, 0.8]]], 0.8, 0.04, -0.03),
};

async function drawSupportSetAndQuery(page, { supports, query } = distinctSet) {
  const canvases = page.locator('#slots canvas:not(.view)');
  for (const [i, strokes] of supports.entries()) await draw(page, canvases.nth(i), strokes);
  await draw(page, page.locator('#query-pad canvas:not(.view)'), query);
  await page.evaluate(() => window.oneshot.idle());
  return page.evaluate(() => window.oneshot.lastScores.map((s) => ({ slot: s.slot, score: s.score })));
}

/** The native command line's scores for the pads' strokes (supports, then the query). */
function nativeScores(drawings) {
  const files = drawings.map((strokes, i) => {
    const path = join(work, `pad${i}.json`);
    writeFileSync(path, JSON.stringify(strokes));
    return path;
  });
  const supports = files.slice(0, -1).flatMap((f) => ['--support', f]);
  const out = execFileSync(binary, ['score', '--weights', weights, ...supports, '--query', files.at(-1)], { encoding: 'utf8' });
  return JSON.parse(out).scores[0];
}

for (const webgpu of [true, false]) {
  const name = webgpu ? 'WebGPU (SwiftShader)' : 'CPU fallback';
  test(`${name}: the redrawn character matches its support, as natively`, async () => {
    const { browser, page, problems } = await openPage(webgpu);
    try {
      const backend = await page.evaluate(() => window.oneshot.backend);
      assert.equal(backend.kind, webgpu ? 'webgpu' : 'cpu', JSON.stringify(backend));
      assert.match(await page.locator('#status-text').innerText(), webgpu ? /WebGPU/ : /CPU/);

      const scores = await drawSupportSetAndQuery(page);
      const best = scores.reduce((a, b) => (b.score > a.score ? b : a));
      assert.equal(best.slot, 1, `scores ${JSON.stringify(scores)}`);
      assert.match(await page.locator('#verdict').innerText(), /#2/);

      const drawings = await page.evaluate(() => [...window.oneshot.slots.slice(0, 3).map((s) => s.pad), window.oneshot.query].map((p) => p.strokes));
      const native = nativeScores(drawings);
      const bySlot = [0, 1, 2].map((i) => scores.find((s) => s.slot === i).score);
      bySlot.forEach((s, i) => assert.ok(Math.abs(s - native[i]) < 1e-4, `slot ${i}: page ${s}, native ${native[i]}`));
      scoresByBackend[name] = bySlot;

      // The page scored the query in the call that embedded it; the two calls it makes when a
      // support changes (embed, then score) give the same numbers.
      const twoCalls = await page.evaluate(async () => {
        const app = window.oneshot;
        const { points, lengths } = app.query.strokeData();
        const supports = app.slots.slice(0, 3).map((slot) => slot.drawings[0].embedding);
        return app.network.run(async (engine) => {
          const embedding = await engine.embedStrokes(points, lengths);
          const flat = new Float32Array(embedding.length * supports.length);
          supports.forEach((e, i) => flat.set(e, i * embedding.length));
          return Array.from(await engine.scores(embedding, flat));
        });
      });
      twoCalls.forEach((s, i) => assert.ok(Math.abs(s - bySlot[i]) < 1e-6, `slot ${i}: one call ${bySlot[i]}, two calls ${s}`));

      const timing = await page.locator('#timing').innerText();
      const startup = await page.evaluate(() => window.oneshot.startupMs);
      console.log(`# ${name}: startup ${startup.toFixed(0)} ms; ${timing}`);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
}

test('WebGPU and CPU agree', { skip: false }, () => {
  const [gpu, cpu] = [scoresByBackend['WebGPU (SwiftShader)'], scoresByBackend['CPU fallback']];
  assert.ok(gpu && cpu, 'both backends ran');
  gpu.forEach((g, i) => assert.ok(Math.abs(g - cpu[i]) < 1e-4, `slot ${i}: WebGPU ${g}, CPU ${cpu[i]}`));
});

test('bad input gives messages, no panics, and the page stays usable', async () => {
  const { browser, page, problems } = await openPage(false);
  try {
    await drawSupportSetAndQuery(page);
    const query = page.locator('#query-pad');

    // An empty query: no scores, a hint.
    await query.getByRole('button', { name: 'Clear' }).click();
    await waitFor(page, () => window.oneshot.lastScores.length === 0);
    assert.match(await page.locator('#verdict').innerText(), /draw a character here/i);

    // A single dot still gets scores.
    await draw(page, query.locator('canvas:not(.view)'), [[[0.5, 0.5]]]);
    await waitFor(page, () => window.oneshot.lastScores.length === 3);

    // A drawing with more points than a hand draws: refused with a message, no scores.
    await page.evaluate(() => {
      const points = Array.from({ length: 100_001 }, (_, i) => [(i % 1000) / 1000, Math.floor(i / 1000) / 101]);
      window.oneshot.query.setStrokes([points]);
    });
    await waitFor(page, () => window.oneshot.lastScores.length === 0);
    assert.match(await query.locator('.error').innerText(), /more than a drawing can have/);

    // Weights that are truncated, or of another preset, are refused; the old network stays.
    const bytes = readFileSync(weights);
    const setWeights = async (name, buffer) => {
      await page.locator('#weights-file').setInputFiles({ name, mimeType: 'application/octet-stream', buffer });
      await waitFor(page, (n) => document.getElementById('model-message').textContent.includes(n), name);
      return page.locator('#model-message').innerText();
    };
    assert.match(await setWeights('half.osw', bytes.subarray(0, bytes.length >> 1)), /truncated/);
    const network = networksOf(bytes)[0];
    const headerLength = network.readUInt32LE(8);
    const header = JSON.parse(network.subarray(12, 12 + headerLength).toString());
    header.config.preset = 'Koch';
    const json = Buffer.from(JSON.stringify(header));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.length);
    const koch = Buffer.concat([network.subarray(0, 8), length, json, network.subarray(12 + headerLength)]);
    assert.match(await setWeights('koch.osw', koch), /Koch/);

    // Still usable: a real drawing is scored again.
    await query.getByRole('button', { name: 'Clear' }).click();
    await draw(page, query.locator('canvas:not(.view)'), cross);
    await waitFor(page, () => window.oneshot.lastScores.length === 3);
    const best = await page.evaluate(() => window.oneshot.lastScores.reduce((a, b) => (b.score > a.score ? b : a)).slot);
    assert.equal(best, 2);
    assert.deepEqual(problems, [], 'no console errors at all');
  } finally {
    await browser.close();
  }
});

test('a support set exported as JSON imports back with the same scores', async () => {
  const { browser, page, problems } = await openPage(false);
  try {
    await page.locator('#slots input').nth(1).fill('zed');
    const before = await drawSupportSetAndQuery(page);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#export').click()]);
    const file = join(work, 'set.json');
    await download.saveAs(file);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(saved.slots.length, 5);
    assert.equal(saved.slots[1].label, 'zed');

    // Change the page, then import: labels, drawings and scores come back.
    await page.locator('#add-slot').click();
    await page.locator('#slots').getByRole('button', { name: 'Clear' }).first().click();
    await page.locator('#import').setInputFiles(file);
    await waitFor(page, () => window.oneshot.slots.length === 5 && window.oneshot.lastScores.length === 3);
    const after = await page.evaluate(() => window.oneshot.lastScores.map((s) => ({ slot: s.slot, score: s.score })));
    assert.deepEqual(after, before);
    assert.equal(await page.locator('#slots input').nth(1).inputValue(), 'zed');

    // A file that is not a support set is refused with a message.
    await page.locator('#import').setInputFiles({ name: 'bad.json', mimeType: 'application/json', buffer: Buffer.from('{"slots": 3}') });
    await waitFor(page, () => document.getElementById('model-message').textContent.includes('bad.json'));
    assert.match(await page.locator('#model-message').innerText(), /not a oneshot support set/);
    assert.equal(await page.evaluate(() => window.oneshot.slots.length), 5);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

/** Runs the page's fine-tuning with the given scope and steps; resolves to the run's state. */
async function fineTune(page, scope, steps) {
  await page.locator(`#tune-form input[value="${scope}"]`).check();
  await page.locator('#tune-steps').fill(String(steps));
  const runs = await page.evaluate(() => window.oneshot.tune.runs);
  await page.locator('#tune-start').click();
  await page.waitForFunction((n) => window.oneshot.tune.runs > n || window.oneshot.tune.error, runs, { timeout: 300_000 });
  await page.evaluate(() => window.oneshot.idle());
  return page.evaluate(() => ({ ...window.oneshot.tune }));
}

const scoresOf = (page) => page.evaluate(() => window.oneshot.lastScores.map((s) => s.score));
const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;

for (const webgpu of [true, false]) {
  const name = webgpu ? 'WebGPU (SwiftShader)' : 'CPU fallback';
  test(`${name}: fine-tuning lowers the loss; its weights download and load back to the same scores`, async () => {
    const { browser, page, problems } = await openPage(webgpu);
    try {
      // Watch the main thread while the network trains (in a worker): it must stay free.
      await page.evaluate(() => {
        const tasks = [];
        new PerformanceObserver((list) => tasks.push(...list.getEntries())).observe({ type: 'longtask' });
        window.longestTaskWhileTraining = () => {
          const { startedAt, trainedAt } = window.oneshot.tune;
          return Math.max(0, ...tasks.filter((t) => t.startTime >= startedAt && t.startTime < trainedAt).map((t) => t.duration));
        };
      });
      await drawSupportSetAndQuery(page, confusableSet);
      // A second drawing of the first character, through "+ drawing".
      await page.locator('#slots .slot').first().getByRole('button', { name: '+ drawing' }).click();
      await draw(page, page.locator('#slots .slot').first().locator('.extra canvas:not(.view)'), transform(bar, 0.7, 0.05, 0.03));
      await waitFor(page, () => window.oneshot.slots[0].drawings[1].embedding !== null);
      const shipped = await scoresOf(page);

      // SwiftShader emulates the GPU on the CPU: a step takes seconds there, so fewer of them.
      const [steps, window] = webgpu ? [10, 3] : [16, 5];
      const run = await fineTune(page, 'whole', steps);
      assert.equal(run.error, null);
      assert.equal(run.losses.length, steps);
      assert.ok(run.losses.every(Number.isFinite), `losses ${run.losses}`);
      const [first, last] = [mean(run.losses.slice(0, window)), mean(run.losses.slice(-window))];
      assert.ok(last < first, `loss did not go down: ${run.losses.map((l) => l.toFixed(3)).join(' ')}`);
      assert.equal(run.backend.kind, webgpu ? 'webgpu' : 'cpu');
      assert.match(await page.locator('#tune-status').innerText(), /Fine-tuned the whole network/);
      assert.match(await page.locator('#model-message').innerText(), /fine-tuned/);
      const tuned = await scoresOf(page);
      assert.ok(tuned.some((s, i) => Math.abs(s - shipped[i]) > 1e-4), `scores did not change: ${tuned} vs ${shipped}`);

      // Download the fine-tuned weights, go back to the shipped ones, then load the file.
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#weights-download').click()]);
      const file = join(work, `finetuned-${webgpu ? 'gpu' : 'cpu'}.osw`);
      await download.saveAs(file);
      // Both networks of the shipped committee were tuned: a committee file of two weights files.
      const networks = networksOf(readFileSync(file));
      assert.equal(networks.length, 2);
      networks.forEach((n) => assert.equal(n.subarray(0, 8).toString(), 'ONESHOTW'));
      await page.locator('#weights-reset').click();
      await waitFor(page, () => document.getElementById('model-message').textContent.includes('shipped'));
      (await scoresOf(page)).forEach((s, i) => assert.ok(Math.abs(s - shipped[i]) < 1e-6, `reset: ${s} vs ${shipped[i]}`));
      await page.locator('#weights-file').setInputFiles(file);
      await waitFor(page, (n) => document.getElementById('model-message').textContent.includes(n), 'finetuned');
      (await scoresOf(page)).forEach((s, i) => assert.ok(Math.abs(s - tuned[i]) < 1e-6, `reloaded: ${s} vs ${tuned[i]}`));

      const longest = await page.evaluate(() => window.longestTaskWhileTraining());
      console.log(`# ${name}: whole network ${run.stepsPerSecond.toFixed(2)} steps/s; loss ${first.toFixed(3)} → ${last.toFixed(3)}; longest main-thread task ${longest.toFixed(0)} ms`);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
}

test('fine-tuning can be cancelled, trains the head alone, and needs two characters', async () => {
  const { browser, page, problems } = await openPage(false);
  try {
    // One character only: a message, no run.
    await draw(page, page.locator('#slots canvas:not(.view)').first(), bar);
    await page.locator('#tune-start').click();
    assert.match(await page.locator('#tune-status').innerText(), /at least two characters/);

    await drawSupportSetAndQuery(page, confusableSet);
    const shipped = await scoresOf(page);
    await page.locator('#tune-steps').fill('500');
    await page.locator('#tune-start').click();
    await page.waitForFunction(() => window.oneshot.tune.losses.length >= 2 || window.oneshot.tune.error, null, { timeout: 60_000 }).catch(async (e) => {
      throw new Error(`${e.message}; status: ${await page.locator('#tune-status').innerText()}`);
    });
    await page.locator('#tune-cancel').click();
    assert.equal(await page.evaluate(() => window.oneshot.tune.running), false);
    assert.match(await page.locator('#tune-status').innerText(), /Cancelled/);
    assert.ok(await page.locator('#tune-start').isVisible());
    await page.evaluate(() => window.oneshot.idle());
    assert.deepEqual(await scoresOf(page), shipped);

    const embeddingsOf = () => page.evaluate(() => window.oneshot.slots.flatMap((s) => s.drawings.map((d) => (d.embedding ? [...d.embedding] : null))));
    const twinBefore = await embeddingsOf();
    const run = await fineTune(page, 'head', 8);
    assert.equal(run.losses.length, 8);
    assert.match(await page.locator('#tune-status').innerText(), /similarity head/);
    const tuned = await scoresOf(page);
    assert.ok(tuned.some((s, i) => Math.abs(s - shipped[i]) > 1e-5), 'the head changed');
    // …and only the head: the twin embeds every drawing exactly as before.
    const twinAfter = await embeddingsOf();
    twinBefore.forEach((e, i) => {
      assert.equal(e === null, twinAfter[i] === null);
      e?.forEach((v, j) => assert.ok(Math.abs(v - twinAfter[i][j]) < 1e-6, `drawing ${i}, value ${j}: ${v} vs ${twinAfter[i][j]}`));
    });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
