// The page's features, used as a person would: the example, the support set kept across a
// reload and "Start over", what the network sees, "none of these", where it looks, a share
// link opened elsewhere, Lake's benchmark run in the page (against `oneshot eval`), and the
// keyboard.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { binary, launch, openPage, root, startServer, stopServer } from './harness.mjs';

before(startServer);
after(stopServer);

const labels = (page) => page.evaluate(() => window.oneshot.slots.map((s) => s.name.value));
const idle = (page) => page.evaluate(() => window.oneshot.idle());

test('the example fills the page and scores at once; the set survives a reload until "Start over"', async () => {
  const { browser, page, problems } = await openPage();
  try {
    await page.locator('#example').click();
    await idle(page);
    assert.deepEqual(await labels(page), ['alpha', 'beta', 'delta', 'iota', 'rho']);
    assert.match(await page.locator('#verdict').innerText(), /Looks like beta/);
    assert.match(await page.locator('#model-message').innerText(), /Omniglot .* MIT/);
    const scores = await page.evaluate(() => window.oneshot.lastScores.map((s) => s.score));

    await page.waitForTimeout(500); // the save is debounced
    await page.reload();
    await page.evaluate(() => window.oneshot.ready);
    await idle(page);
    assert.deepEqual(await labels(page), ['alpha', 'beta', 'delta', 'iota', 'rho'], 'kept in this browser');
    // The query is not kept; draw it again and the scores are the same.
    await page.locator('#example').click();
    await idle(page);
    assert.deepEqual(await page.evaluate(() => window.oneshot.lastScores.map((s) => s.score)), scores);

    await page.locator('#start-over').click();
    await idle(page);
    assert.deepEqual(await labels(page), ['#1', '#2', '#3', '#4', '#5']);
    await page.reload();
    await page.evaluate(() => window.oneshot.ready);
    assert.equal(await page.evaluate(() => window.oneshot.slots.every((s) => s.pad.isEmpty)), true, 'forgotten');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('each pad shows what the network sees, as the drawing changes', async () => {
  const { browser, page } = await openPage();
  try {
    const ink = () =>
      page.evaluate(() => {
        const view = window.oneshot.slots[0].pad.view;
        if (view.style.visibility === 'hidden') return null;
        const data = view.getContext('2d').getImageData(0, 0, view.width, view.height).data;
        let dark = 0;
        for (let i = 0; i < data.length; i += 4) dark += 255 - data[i];
        return dark;
      });
    assert.equal(await ink(), null, 'hidden while the pad is empty');
    const canvas = page.locator('#slots .main-drawing canvas:not(.view)').first();
    const box = await canvas.boundingBox();
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.5, { steps: 5 });
    await page.mouse.up();
    await idle(page);
    const line = await ink();
    assert.ok(line > 0, 'the view shows ink');
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.8, { steps: 5 });
    await page.mouse.up();
    await idle(page);
    assert.notEqual(await ink(), line, 'a second stroke changes the view');
    assert.equal(await page.evaluate(() => window.oneshot.network.active.engine.inputSize()), 32);
  } finally {
    await browser.close();
  }
});

test('"none of these" when no character is likely, and where it looks', async () => {
  const { browser, page } = await openPage();
  try {
    await page.locator('#example').click();
    await idle(page);
    await page.locator('#heatmap-toggle').check();
    await page.waitForFunction(() => !document.getElementById('heatmap-figure').hidden);
    const map = await page.evaluate(() => window.oneshot.heatmap);
    assert.equal(map.drops.length, 64, 'an 8×8 grid of 4-pixel patches');
    assert.ok(Math.max(...map.drops) > 0, 'covering some part lowers the match');
    // The page sees each drawing as drawn and one pixel narrower; other pens are refused past 3.
    const pens = await page.evaluate(async () => {
      const { engine, weights } = { engine: window.oneshot.network.active.engine, weights: window.oneshot.network.weights };
      const one = await engine.constructor.create(false, weights, Int8Array.of(0));
      const views = [engine.views(), one.views()];
      one.free();
      const refused = await engine.constructor.create(false, weights, Int8Array.of(4)).then((e) => (e.free(), ''), (error) => error.message);
      return { pens: Array.from(engine.pens()), views, refused };
    });
    assert.deepEqual(pens.pens, [0, -1]);
    assert.deepEqual(pens.views, [16, 8], 'eight symmetries for each pen');
    assert.match(pens.refused, /at most 3 either way/);
    // Uncovered, the query's renders (one per pen) must score as the query itself does.
    const best = await page.evaluate(() => Math.max(...window.oneshot.lastScores.map((e) => e.score)));
    assert.ok(Math.abs(map.score - best) < 1e-5, `the map's uncovered score ${map.score}, the query's ${best}`);
    // Remove beta: the β query matches nothing above the threshold.
    await page.getByRole('button', { name: 'Remove character 2' }).click();
    await idle(page);
    assert.equal(await page.evaluate(() => window.oneshot.verdict), 'none');
    assert.match(await page.locator('#verdict').innerText(), /None of these — the closest is/);
    assert.equal(await page.locator('.slot.best').count(), 0);
  } finally {
    await browser.close();
  }
});

test('a share link carries the drawings to another browser', async () => {
  const { browser, context, page } = await openPage();
  try {
    await context.grantPermissions(['clipboard-read', 'clipboard-write']);
    await page.locator('#example').click();
    await idle(page);
    await page.locator('#slots input').nth(0).fill('α');
    await idle(page);
    await page.locator('#share').click();
    await page.waitForFunction(() => window.oneshot.sharedLink);
    const link = await page.evaluate(() => window.oneshot.sharedLink);
    assert.match(link, /#set=[\w-]+$/);
    const before = await page.evaluate(() => window.oneshot.slots.map((s) => s.drawings[0].embedding && [...s.drawings[0].embedding]));

    // Another browser, nothing stored: the link alone brings the set.
    const other = await launch(false);
    const fresh = await other.newPage();
    await fresh.goto(link); // the page was opened with ?backend=cpu, so the link keeps it
    await fresh.evaluate(() => window.oneshot.ready);
    await fresh.evaluate(() => window.oneshot.idle());
    assert.deepEqual(await labels(fresh), ['α', 'beta', 'delta', 'iota', 'rho']);
    const after = await fresh.evaluate(() => window.oneshot.slots.map((s) => s.drawings[0].embedding && [...s.drawings[0].embedding]));
    after.forEach((e, i) => e.forEach((v, j) => assert.ok(Math.abs(v - before[i][j]) < 1e-6)));
    assert.match(await fresh.locator('#model-message').innerText(), /from the link/);
    await other.close();
  } finally {
    await browser.close();
  }
});

test("Lake's benchmark in the page gives eval's accuracy, to the trial", { timeout: 600_000 }, async () => {
  const dataDir = process.env.OMNIGLOT_DIR ?? [join(root, 'data/omniglot'), join(root, '../shared/data/omniglot')].find((d) => existsSync(d));
  const table = execFileSync(binary, ['eval', '--weights', join(root, 'weights/web.osw'), '--tasks', '0', '--data-dir', dataDir], { encoding: 'utf8' });
  const row = table.split('\n').find((l) => l.startsWith('| siamese') && l.includes('all_runs.zip'));
  const nativePercent = Number(row.match(/\| ([\d.]+) % \|$/)[1]);
  const nativeCorrect = Math.round((nativePercent * 400) / 100);

  const { browser, page, problems } = await openPage();
  try {
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.locator('#lake-choose').click()]);
    await chooser.setFiles(join(dataDir, 'all_runs.zip'));
    await page.waitForFunction(() => window.oneshot.lakeRun !== undefined);
    await page.evaluate(() => window.oneshot.lakeRun);
    const lake = await page.evaluate(() => ({ ...window.oneshot.lake }));
    assert.equal(lake.error, null);
    assert.equal(lake.trials, 400);
    assert.equal(lake.correct, nativeCorrect, `page ${lake.correct} of 400, eval ${nativePercent} %`);
    console.log(`# Lake's runs in the page (CPU): ${lake.correct}/400, ${lake.msPerTrial.toFixed(1)} ms per trial; eval: ${nativePercent} %`);
    assert.equal(await page.locator('#lake-grid li').count(), 400);
    assert.equal(await page.locator('#lake-grid li.wrong').count(), 400 - lake.correct);
    await page.locator('#lake-wrong-only').check();
    assert.equal(await page.locator('#lake-grid li.right').first().isVisible(), false);
    assert.match(await page.locator('#lake-summary').innerText(), /of 400 trials right/);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('the keyboard reaches every control, and shortcuts act only on a focused pad', async () => {
  const { browser, page } = await openPage();
  try {
    let choosers = 0;
    page.on('filechooser', () => choosers++);
    for (const [i, id] of ['import-button', 'weights-load', 'lake-choose'].entries()) {
      await page.locator(`#${id}`).focus();
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => true); // let the click's file chooser come through
      await page.waitForTimeout(300);
      assert.equal(choosers, i + 1, `${id} opens a file chooser from the keyboard`);
    }
    await page.locator('#example').click();
    await idle(page);
    // Typing "u" in a label undoes nothing.
    await page.locator('#slots input').nth(0).focus();
    await page.keyboard.type('u');
    assert.equal(await page.evaluate(() => window.oneshot.slots[0].pad.isEmpty), false);
    // On a focused pad, "c" clears it.
    await page.locator('#slots .main-drawing canvas:not(.view)').first().focus();
    await page.keyboard.press('c');
    assert.equal(await page.evaluate(() => window.oneshot.slots[0].pad.isEmpty), true);
    // Named for screen readers.
    assert.equal(await page.getByRole('button', { name: 'Remove character 3' }).count(), 1);
    assert.equal(await page.getByRole('textbox', { name: 'Label of character 3' }).count(), 1);
    assert.match(await page.locator('#verify-note').innerText(), /signatures/);
  } finally {
    await browser.close();
  }
});
