// Human pen strokes replayed into the page: Lake's recorded trajectories of real people drawing
// Omniglot characters (5 background alphabets, so this measures robustness to how people draw,
// not one-shot generalisation), as pointer events — supports with the mouse, queries in turn
// with the mouse, a pen and a finger — on 20-way within-alphabet tasks, with each drawing where
// it was drawn on Omniglot's canvas and scaled to span 30 %, 60 % and 90 % of the pad.
//
// The page must answer as the native pipeline does on the very same strokes (`oneshot strokes`,
// which also scores the scans of the same drawings), at every size.
//
// ONESHOT_STROKE_TASKS sets the tasks per size (default 2, the short run of the test command);
// ONESHOT_STROKE_REPORT=FILE writes the per-size table (the README's comes from 20 tasks);
// ONESHOT_STROKE_WEBGPU=1 adds a shorter run on WebGPU.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binary, openPage, root, startServer, stopServer } from './harness.mjs';

const TASKS = Number(process.env.ONESHOT_STROKE_TASKS ?? 2);
const SIZES = [0.3, 0.6, 0.9];
const PLACEMENTS = ['as-drawn', ...SIZES.map((s) => s.toFixed(2))];
const POINTERS = ['mouse', 'pen', 'touch'];
const work = mkdtempSync(join(tmpdir(), 'oneshot-strokes-'));
let replay;

before(async () => {
  await startServer();
  const file = join(work, 'tasks.json');
  const out = execFileSync(
    binary,
    ['strokes', '--weights', join(root, 'weights/web.osw'), '--tasks', String(TASKS), '--sizes', SIZES.join(','), '--export', file],
    { encoding: 'utf8' },
  );
  console.log(out.replace(/^/gm, '# '));
  replay = JSON.parse(readFileSync(file, 'utf8'));
});

after(stopServer);

/** Strokes (0..1 of Omniglot's canvas) placed on the pad: as drawn, or centred at a size. */
function place(strokes, placement) {
  if (placement === 'as-drawn') return strokes;
  const points = strokes.flat();
  const [xs, ys] = [points.map((p) => p[0]), points.map((p) => p[1])];
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const scale = Number(placement) / Math.max(x1 - x0, y1 - y0, 1e-6);
  const [cx, cy] = [(x0 + x1) / 2, (y0 + y1) / 2];
  return strokes.map((s) => s.map(([x, y]) => [0.5 + (x - cx) * scale, 0.5 + (y - cy) * scale]));
}

/**
 * Draws strokes on a canvas with trusted input events from the browser's own input pipeline
 * (Chrome DevTools Protocol): a mouse, a pen (mouse events with pointerType "pen") or a finger
 * (touch events).
 */
async function replay_(cdp, box, strokes, pointer) {
  // Points on the pad's edge stay on it (the pad clamps them there anyway).
  const inside = (v) => Math.min(0.995, Math.max(0.005, v));
  const at = ([x, y]) => ({ x: box.x + inside(x) * box.width, y: box.y + inside(y) * box.height });
  // Mouse and pen events are sent without waiting for each (the protocol keeps their order;
  // waiting would cost a frame per point). Touch moves are sent one at a time, at most one per
  // frame as a finger's arrive: sent all at once, the browser coalesces them and drops some.
  const sent = [];
  const send = (method, params) => sent.push(cdp.send(method, params));
  for (const stroke of strokes) {
    if (pointer === 'touch') {
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [at(stroke[0])] });
      for (const p of stroke.slice(1)) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [at(p)] });
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    } else {
      const base = { button: 'left', pointerType: pointer, clickCount: 1 };
      send('Input.dispatchMouseEvent', { type: 'mouseMoved', ...at(stroke[0]), pointerType: pointer });
      send('Input.dispatchMouseEvent', { type: 'mousePressed', ...at(stroke[0]), ...base });
      for (const p of stroke.slice(1)) send('Input.dispatchMouseEvent', { type: 'mouseMoved', ...at(p), ...base, buttons: 1 });
      send('Input.dispatchMouseEvent', { type: 'mouseReleased', ...at(stroke.at(-1)), ...base });
    }
  }
  await Promise.all(sent);
}

/** The element's box once it is scrolled into view and the page has settled. */
async function steadyBox(page, element) {
  await element.scrollIntoViewIfNeeded();
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  return element.boundingBox();
}

/** Replays every task at every placement; returns per placement the page's choices. */
async function runReplay(webgpu, tasks) {
  const { browser, page, problems } = await openPage({ webgpu, hasTouch: true });
  try {
    const cdp = await page.context().newCDPSession(page);
    const navigations = [];
    page.on('framenavigated', (frame) => frame === page.mainFrame() && navigations.push(frame.url()));
    const way = replay.way;
    // Twenty characters: the page starts with five.
    while ((await page.locator('#slots .slot').count()) < way) await page.click('#add-slot');
    const results = {};
    for (const placement of PLACEMENTS) {
      results[placement] = { choices: [], truth: [], pointers: [] };
      for (const task of tasks) {
        await page.evaluate(() => window.oneshot.slots.forEach((s) => s.pad.clear()));
        const canvases = page.locator('#slots .main-drawing canvas:not(.view)');
        for (const [i, strokes] of task.supports.entries()) {
          await replay_(cdp, await steadyBox(page, canvases.nth(i)), place(strokes, placement), 'mouse');
          const drawn = await page.evaluate((i) => window.oneshot.slots[i].pad.strokes.length, i);
          assert.equal(drawn, strokes.length, `support ${i} (${placement}) got its ${strokes.length} strokes`);
        }
        const queryCanvas = page.locator('#query-pad canvas:not(.view)');
        for (const [q, strokes] of task.queries.entries()) {
          const pointer = POINTERS[q % POINTERS.length];
          await page.evaluate(() => window.oneshot.query.clear());
          await replay_(cdp, await steadyBox(page, queryCanvas), place(strokes, placement), pointer);
          await page.evaluate(() => window.oneshot.idle());
          const scores = await page.evaluate(() => window.oneshot.lastScores.map((s) => ({ slot: s.slot, score: s.score })));
          if (scores.length !== way) {
            const pads = await page.evaluate(() => window.oneshot.slots.map((s, i) => `${i}: ${s.pad.strokes.length} strokes, embedded ${!!s.drawings[0].embedding}, "${s.pad.message.textContent}"`));
            assert.fail(`${placement}: ${scores.length} of ${way} characters scored:\n${pads.join('\n')}`);
          }
          const best = scores.reduce((a, b) => (b.score > a.score ? b : a));
          results[placement].choices.push(best.slot);
          results[placement].truth.push(task.truth[q]);
          results[placement].pointers.push(await page.evaluate(() => window.oneshot.query.lastPointerType));
        }
      }
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(navigations, [], 'the replay never navigates away');
    return results;
  } finally {
    await browser.close();
  }
}

const percent = (hits, n) => (100 * hits) / Math.max(1, n);
const accuracyOf = ({ choices, truth }) => percent(choices.filter((c, i) => c === truth[i]).length, truth.length);

function checkAgainstNative(results, tasks, label) {
  const native = Object.fromEntries(replay.native.map((r) => [r.key, r]));
  const rows = [];
  for (const placement of PLACEMENTS) {
    const page = results[placement];
    const nativeChoices = native[`${placement}/relative`].predictions.slice(0, tasks.length).flat();
    const agree = page.choices.filter((c, i) => c === nativeChoices[i]).length;
    rows.push({ placement, page: accuracyOf(page), native: percent(nativeChoices.filter((c, i) => c === page.truth[i]).length, page.truth.length), agree: percent(agree, page.choices.length), pointers: [...new Set(page.pointers)].join('/') });
    // The page answers what the native pipeline answers on the same strokes (pointer positions
    // are rounded to screen pixels, so a near tie may flip).
    assert.ok(agree >= 0.9 * page.choices.length, `${label} ${placement}: the page agrees with the native choices on ${agree} of ${page.choices.length}`);
  }
  const scans = percent(native.scans.predictions.slice(0, tasks.length).flat().filter((c, i) => c === results['as-drawn'].truth[i]).length, results['as-drawn'].truth.length);
  console.log(`# ${label}: scans of the same drawings (native) ${scans.toFixed(1)} %`);
  for (const r of rows) console.log(`# ${label}: ${r.placement}: page ${r.page.toFixed(1)} %, native strokes ${r.native.toFixed(1)} %, agreement ${r.agree.toFixed(0)} %, pointers ${r.pointers}`);
  // Per pointer kind, over every placement.
  for (const pointer of POINTERS) {
    let [hits, agree, n] = [0, 0, 0];
    for (const placement of PLACEMENTS) {
      const page = results[placement];
      const nativeChoices = native[`${placement}/relative`].predictions.slice(0, tasks.length).flat();
      page.pointers.forEach((p, i) => {
        if (p !== pointer) return;
        n++;
        hits += page.choices[i] === page.truth[i] ? 1 : 0;
        agree += page.choices[i] === nativeChoices[i] ? 1 : 0;
      });
    }
    console.log(`# ${label}: ${pointer}: page ${percent(hits, n).toFixed(1)} %, agreement with native ${percent(agree, n).toFixed(1)} % (${n} queries)`);
  }
  return { scans, rows };
}

test('human strokes replayed in the page (CPU): every size recognised as natively', { timeout: 3_600_000 }, async () => {
  const tasks = replay.tasks;
  const results = await runReplay(false, tasks);
  const report = checkAgainstNative(results, tasks, 'CPU');
  // Small drawings are no longer penalised: every size is as accurate as the drawing at
  // Omniglot's own size, within the noise of a short run (one query in 40 is 2.5 points).
  const asDrawn = report.rows[0].page;
  for (const row of report.rows) assert.ok(row.page >= asDrawn - 7.5, `${row.placement}: ${row.page} % vs ${asDrawn} % as drawn`);
  // Every pointer kind reached the pad.
  assert.deepEqual(new Set(results['as-drawn'].pointers), new Set(POINTERS));
  if (process.env.ONESHOT_STROKE_REPORT) writeFileSync(process.env.ONESHOT_STROKE_REPORT, JSON.stringify({ tasks: tasks.length, ...report }, null, 2));
});

test('human strokes replayed in the page (WebGPU, shorter)', { skip: process.env.ONESHOT_STROKE_WEBGPU !== '1', timeout: 3_600_000 }, async () => {
  const tasks = replay.tasks.slice(0, 1);
  const results = await runReplay(true, tasks);
  checkAgainstNative(results, tasks, 'WebGPU');
});
