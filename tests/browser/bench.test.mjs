// Smoke test of the benchmark (scripts/bench-compare) for one repetition: the exports, the
// native peers (ONNX Runtime, PyTorch) and the page's (onnxruntime-web and TensorFlow.js, each on
// wasm and WebGPU) all
// reproduce our reference outputs to 1e-4 — the script refuses to time a peer that does not —
// and the comparison table comes out whole. The real figures come from a full run (README).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');

test('the comparison runs once end to end and every peer agrees with us', { timeout: 30 * 60e3 }, () => {
  const run = spawnSync(resolve(root, 'scripts/bench-compare'), ['1', '1'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(run.status, 0, `bench-compare failed:\n${run.stdout}\n${run.stderr.slice(-4000)}`);
  const rows = run.stdout.split('\n').filter((line) => /^\| (native|browser), /.test(line));
  // native: 3 rows × 2 presets; browser: (embed, query, first score) × 4 pairs + 4 downloads.
  assert.equal(rows.length, 22, run.stdout);
  for (const row of rows) assert.match(row, /\| [\d.]+ \((lower|higher) is better\) \|$/, row);

  const results = JSON.parse(readFileSync(resolve(root, 'site/bench-data/results.json'), 'utf8'));
  const differences = Object.values(results.agreement).flatMap((byStack) => Object.values(byStack).flatMap((checks) => Object.values(checks)));
  assert.ok(differences.length >= 5 * 2 + 2 * 6, `agreement checks: ${JSON.stringify(results.agreement)}`);
  for (const stack of ['tfjsWasm', 'tfjsGpu']) assert.match(results.page[stack].stack, /TensorFlow\.js/);
  for (const difference of differences) assert.ok(difference <= 1e-4, JSON.stringify(results.agreement));
  // Ours fine-tunes in the page on both backends.
  for (const stack of [results.page.oursGpu, results.page.oursCpu]) {
    assert.ok(stack.rows.find((r) => r.key === 'train_episode')?.pairs_per_second > 0, stack.stack);
  }
});
