// The page under stress: random and hostile calls into every exported function of the engine
// (no call may panic, every refusal is an Error with a message, and a reference drawing keeps
// embedding to the same values); 10,000 queries with flat memory; a trapped engine replaced; a
// lost GPU device falling back to the CPU; offline use after one visit; no request to another
// origin during a full visit. ONESHOT_FUZZ_CALLS sets the fuzz length (default 10,000).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base, openPage, startServer, stopServer } from './harness.mjs';

const CALLS = Number(process.env.ONESHOT_FUZZ_CALLS ?? 10_000);
const work = mkdtempSync(join(tmpdir(), 'oneshot-resilience-'));

before(startServer);
after(stopServer);

/** Runs `calls` seeded random calls against the page's answering engine; returns a report. */
function fuzzInPage(page, calls, seed) {
  return page.evaluate(
    async ({ calls, seed }) => {
      let state = seed >>> 0;
      const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
      const int = (n) => Math.floor(random() * n);
      const pick = (items) => items[int(items.length)];
      const { network } = window.oneshot;
      const engine = () => network.active.engine;
      const size = engine().inputSize();
      const width = engine().embeddingWidth();
      const views = engine().views();
      const weights = network.weights;
      const floats = (n, bad = false) =>
        Float32Array.from({ length: n }, () => (bad && random() < 0.05 ? pick([NaN, Infinity, -Infinity, 1e38]) : random() * 2 - 0.5));
      const stroke = () => {
        const n = 1 + int(30);
        return { points: floats(2 * n), lengths: Uint32Array.of(n) };
      };
      const reference = { points: Float32Array.of(0.2, 0.2, 0.8, 0.8, 0.8, 0.2, 0.2, 0.8), lengths: Uint32Array.of(2, 2) };
      const expected = await engine().embedStrokes(reference.points, reference.lengths);
      const odd = () => pick([0, 1, 3, 2 ** 31, 2 ** 32 - 1, 65536, 16385, -1, 4097]);
      const damaged = () => {
        const bytes = Uint8Array.from(weights.subarray(0, pick([0, 8, 12, 100, weights.length >> 1, weights.length])));
        for (let i = 0; i < int(4); i++) if (bytes.length) bytes[int(bytes.length)] ^= 1 << int(8);
        return bytes;
      };
      const kinds = [
        () => engine().embedStrokes(...Object.values(stroke())),
        () => engine().embedStrokes(floats(int(40), true), Uint32Array.of(int(30), odd())),
        () => engine().embedStrokes(new Float32Array(0), new Uint32Array(0)),
        () => engine().embedStrokes(floats(8), Uint32Array.of(2 ** 32 - 1, 5)),
        () => engine().preprocessStrokes(floats(2 * 10, true), Uint32Array.of(10)),
        () => { const { points, lengths } = stroke(); return engine().queryStrokes(points, lengths, floats(width * int(21) + pick([0, 0, 1]), true)); },
        () => engine().embed(odd(), odd(), new Uint8Array(int(5000))),
        () => engine().embed(65536, 16385, new Uint8Array(64)),
        () => { const s = 8 + int(40); return engine().embed(s, s, Uint8Array.from({ length: s * s * 4 }, () => int(256))); },
        () => engine().preprocess(odd(), 2, new Uint8Array(16)),
        () => engine().scores(floats(pick([width, width + 1, 257, 0, 2 * width]), true), floats(width * int(25), true)),
        () => engine().scores(floats(width), floats(width * (1 + int(20)))),
        () => engine().embedImages(floats(size * size * int(4) + pick([0, 0, 1]), true)),
        () => engine().embedInputs(floats(size * size * int(4) + pick([0, 0, 1]), true)),
        () => engine().queryViews(floats(size * size * pick([views, views - 1, 1])), floats(width * int(5) + pick([0, 3]))),
        () => network.active.engine.constructor.create(false, damaged()).then((e) => e.free()),
        () => network.active.engine.constructor.create(false, weights, Int8Array.of(pick([0, -1, 3, -3, 4, -4, 127, -128]))).then((e) => e.free()),
      ];
      const report = { calls: 0, rejected: 0, accepted: 0, badErrors: [], drift: 0, kinds: kinds.length };
      for (let i = 0; i < calls; i++) {
        report.calls++;
        try {
          await kinds[int(kinds.length)]();
          report.accepted++;
        } catch (error) {
          report.rejected++;
          if (!(error instanceof Error) || !error.message) report.badErrors.push(String(error));
        }
        if (i % 100 === 99) {
          const again = await engine().embedStrokes(reference.points, reference.lengths);
          report.drift = Math.max(report.drift, ...again.map((v, j) => Math.abs(v - expected[j])));
        }
      }
      return report;
    },
    { calls, seed },
  );
}

/** Runs `queries` 20-way queries as the page does; the instance's memory before and after. */
function queriesInPage(page, queries) {
  return page.evaluate(async (queries) => {
    const { network } = window.oneshot;
    const { engine, memory } = network.active;
    const supports = new Float32Array(20 * engine.embeddingWidth()).fill(0.5);
    const run = async (n) => {
      for (let i = 0; i < n; i++) {
        const t = i / n;
        await engine.queryStrokes(Float32Array.of(0.1, 0.2 + t / 2, 0.9, 0.5, 0.5, 0.9), Uint32Array.of(3), supports);
      }
    };
    await run(200); // warm-up: scratch buffers reach their size
    const before = memory.buffer.byteLength;
    const started = performance.now();
    await run(queries);
    return { before, after: memory.buffer.byteLength, msPerQuery: (performance.now() - started) / queries };
  }, queries);
}

test(`fuzzing the CPU engine: ${CALLS} calls, no panic, every refusal explained; memory flat over 10,000 queries`, { timeout: 1_800_000 }, async () => {
  const { browser, page, problems } = await openPage();
  try {
    const report = await fuzzInPage(page, CALLS, 20261202);
    const memory = await queriesInPage(page, 10_000);
    console.log(`# CPU fuzz: ${report.calls} calls (${report.kinds} kinds), ${report.rejected} refused, ${report.accepted} accepted, reference drift ${report.drift}`);
    console.log(`# CPU: 10,000 queries: wasm memory ${memory.before} → ${memory.after} bytes, ${memory.msPerQuery.toFixed(2)} ms per query`);
    writeFileSync(join(work, 'fuzz-cpu.json'), JSON.stringify({ report, memory }));
    assert.deepEqual(report.badErrors, []);
    assert.ok(report.rejected > report.calls / 3 && report.accepted > report.calls / 10, JSON.stringify(report));
    assert.equal(report.drift, 0, 'the reference drawing embeds to the same values throughout');
    assert.equal(memory.after, memory.before, 'wasm memory grew');
    assert.deepEqual(problems, [], 'nothing reached the console: no panic');
  } finally {
    await browser.close();
  }
});

test('fuzzing the WebGPU engine (shorter)', { timeout: 1_800_000 }, async () => {
  const { browser, page, problems } = await openPage({ webgpu: true });
  try {
    const report = await fuzzInPage(page, Math.min(CALLS, 600), 7);
    console.log(`# WebGPU fuzz: ${report.calls} calls, ${report.rejected} refused, ${report.accepted} accepted, reference drift ${report.drift}`);
    assert.deepEqual(report.badErrors, []);
    assert.ok(report.drift < 1e-6, `reference drift ${report.drift}`);
    assert.equal(await page.evaluate(() => window.oneshot.backend.kind), 'webgpu', 'still on WebGPU');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

/** Draws a zigzag and a cross as supports and the zigzag again as the query. */
async function drawSmallSet(page) {
  await page.evaluate(() => {
    const { slots, query } = window.oneshot;
    slots[0].pad.setStrokes([[[0.2, 0.25], [0.8, 0.25], [0.2, 0.75], [0.8, 0.75]]]);
    slots[1].pad.setStrokes([[[0.5, 0.15], [0.5, 0.85]], [[0.15, 0.5], [0.85, 0.5]]]);
    query.setStrokes([[[0.25, 0.3], [0.75, 0.3], [0.25, 0.7], [0.75, 0.7]]]);
  });
  await page.evaluate(() => window.oneshot.idle());
  return page.evaluate(() => window.oneshot.lastScores.map((s) => s.score));
}

test('the fine-tuning build refuses class numbers it cannot index, and keeps working', async () => {
  const { browser, page, problems } = await openPage();
  try {
    const outcome = await page.evaluate(async () => {
      const main = [...document.scripts].find((s) => s.type === 'module').src;
      const { createEngine } = await import(new URL('engine.js', main));
      const { engine } = await createEngine('cpu', window.oneshot.network.weights);
      // Each drawing one stroke of two points; `classes` names each drawing's character.
      const attempt = (classes) => {
        const n = classes.length;
        try {
          const run = engine.fineTuneStrokes('whole', Uint32Array.from(classes), new Uint32Array(n).fill(1), new Uint32Array(n).fill(2),
            Float32Array.from({ length: 4 * n }, (_, i) => [0.2, 0.2 + (i >> 2) * 0.1, 0.8, 0.7][i & 3]));
          run.free();
          return 'accepted';
        } catch (error) {
          return error instanceof Error ? error.message : `not an Error: ${error}`;
        }
      };
      // u32::MAX + 1 wrapped to 0 on wasm32 and then indexed an empty list: a trap.
      const refused = [[0, 2 ** 32 - 1], [0, 1e9], [0, 2]].map(attempt);
      const accepted = attempt([0, 1]);
      engine.free();
      return { refused, accepted };
    });
    for (const message of outcome.refused) assert.match(message, /class numbers must be below the number of drawings/);
    assert.equal(outcome.accepted, 'accepted');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('a trapped engine is replaced and the page keeps scoring', async () => {
  const { browser, page, problems } = await openPage();
  try {
    const before = await drawSmallSet(page);
    const message = await page.evaluate(() => window.oneshot.network.run((engine) => engine.debugTrap()).catch((e) => e.message));
    assert.match(message, /crashed .* restarted/);
    assert.match(await page.locator('#status-text').innerText(), /restarted/);
    // A new stroke is scored by the fresh engine, as before the crash.
    await page.evaluate(() => window.oneshot.query.setStrokes([[[0.25, 0.3], [0.75, 0.3], [0.25, 0.7], [0.75, 0.7]]]));
    await page.evaluate(() => window.oneshot.idle());
    const after = await page.evaluate(() => window.oneshot.lastScores.map((s) => s.score));
    after.forEach((s, i) => assert.ok(Math.abs(s - before[i]) < 1e-6, `${s} vs ${before[i]}`));
    // The deliberate panic is the only thing in the console.
    assert.ok(problems.every((p) => /debugTrap|unreachable|RuntimeError/.test(p)), problems.join('\n'));
  } finally {
    await browser.close();
  }
});

test('a lost GPU device falls back to the CPU, re-embeds and says so', async () => {
  const { browser, page } = await openPage({ webgpu: true });
  try {
    const onGpu = await drawSmallSet(page);
    await page.evaluate(() => window.oneshot.network.gpuDevice.destroy());
    await page.waitForFunction(() => window.oneshot.backend.kind === 'cpu', null, { timeout: 30_000 });
    await page.evaluate(() => window.oneshot.idle());
    assert.match(await page.locator('#status-text').innerText(), /GPU device was lost.*CPU/);
    const onCpu = await page.evaluate(() => window.oneshot.lastScores.map((s) => s.score));
    onCpu.forEach((s, i) => assert.ok(Math.abs(s - onGpu[i]) < 1e-4, `${s} vs ${onGpu[i]}`));
  } finally {
    await browser.close();
  }
});

test('after one visit the page works offline', async () => {
  const { browser, context, page, problems } = await openPage();
  try {
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
      // The worker caches the site while installing; wait for it to control the page.
      while (!navigator.serviceWorker.controller) await new Promise((r) => setTimeout(r, 50));
    });
    await context.setOffline(true);
    await page.reload();
    await page.evaluate(() => window.oneshot.ready);
    const scores = await drawSmallSet(page);
    assert.equal(scores.length, 2);
    assert.ok(scores[0] > scores[1], `the zigzag matches the zigzag: ${scores}`);
    assert.match(await page.locator('#status-text').innerText(), /Ready/);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('a full visit asks nothing of any other origin', { timeout: 600_000 }, async () => {
  const { browser, context, page } = await openPage({ webgpu: true });
  const origins = new Set();
  context.on('request', (request) => origins.add(new URL(request.url()).origin));
  try {
    await page.reload();
    await page.evaluate(() => window.oneshot.ready);
    await drawSmallSet(page);
    await page.locator('#tune-steps').fill('2');
    const runs = await page.evaluate(() => window.oneshot.tune.runs);
    await page.locator('#tune-start').click();
    await page.waitForFunction((n) => window.oneshot.tune.runs > n || window.oneshot.tune.error, runs, { timeout: 300_000 });
    await Promise.all([page.waitForEvent('download'), page.locator('#export').click()]);
    await Promise.all([page.waitForEvent('download'), page.locator('#weights-download').click()]);
    const csp = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
    assert.match(csp, /default-src 'self'/);
    origins.delete('null'); // blob: and data: URLs of the downloads
    assert.deepEqual([...origins].filter((o) => !o.startsWith('blob:')), [base]);
  } finally {
    await browser.close();
  }
});
