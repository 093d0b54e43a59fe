// The network's engines and how the page gets them.
//
// Three builds of the same Rust code: `lite`, the small Burn-free CPU build the page starts and
// scores with at once; `gpu`, Burn on WebGPU, fetched in the background where the browser has an
// adapter, warmed up (its first pass compiles the shaders) and switched to; `cpu`, Burn on the
// CPU, fetched only to fine-tune without a GPU. The lite engine stays loaded: if the GPU device
// is lost, or a call traps, the page falls back to it (a trapped instance is replaced by a fresh
// one) instead of going dark. `?backend=cpu` keeps the page on the CPU.

import { WEIGHTS_PATH } from './build.js';

const FLAVOURS = { lite: '../pkg/lite/', cpu: '../pkg/cpu/', gpu: '../pkg/gpu/' };

/** Fetches bytes, reporting progress as a fraction in 0..1. */
async function fetchWithProgress(url, onProgress = () => {}) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`could not download ${url.pathname}: HTTP ${response.status}`);
  const total = Number(response.headers.get('Content-Length')) || 0;
  if (!response.body || !total) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    onProgress(Math.min(1, received / total));
  }
  const bytes = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

const compiled = {};
let shipped = null;
let instances = 0;

/** The compiled wasm of a flavour (`lite`, `cpu` or `gpu`), downloaded once; workers reuse it. */
export function wasmModule(flavour, onProgress) {
  compiled[flavour] ??= fetchWithProgress(new URL(`${FLAVOURS[flavour]}oneshot_bg.wasm`, import.meta.url), onProgress).then((bytes) =>
    WebAssembly.compile(bytes),
  );
  return compiled[flavour];
}

/** The shipped weights file, downloaded once (its name carries its content hash). */
export function shippedWeights() {
  shipped ??= fetchWithProgress(new URL(`../../${WEIGHTS_PATH}`, import.meta.url));
  return shipped;
}

/**
 * A fresh instance of a flavour's glue and wasm: its `Engine` class. Each call imports the glue
 * anew, so an instance that trapped is never reused. The first import is the plain URL, the one
 * the page preloads.
 */
export async function instantiate(flavour) {
  const instance = ++instances === 1 ? '' : `?instance=${instances}`;
  const glue = await import(new URL(`${FLAVOURS[flavour]}oneshot.js${instance}`, import.meta.url));
  const exports = await glue.default({ module_or_path: await wasmModule(flavour) });
  return { glue, memory: exports.memory };
}

/** Whether this page should try WebGPU. */
export function wantsGpu() {
  return new URLSearchParams(location.search).get('backend') !== 'cpu' && 'gpu' in navigator;
}

/** Why the page stays on the CPU, when it does before asking for an adapter. */
export function gpuAbsenceReason() {
  if (new URLSearchParams(location.search).get('backend') === 'cpu') return 'CPU forced by ?backend=cpu';
  return 'gpu' in navigator ? null : 'this browser has no WebGPU';
}

/** The WebGPU adapter's name as the browser reports it, or null without one. */
export async function gpuAdapter() {
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info;
    return [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(' ') || 'WebGPU adapter';
  } catch {
    return null;
  }
}

/**
 * Calls `onDevice(device)` for every WebGPU device this page creates from now on (Burn creates
 * its own; the page only listens to it for loss and errors).
 */
export function watchGpuDevices(onDevice) {
  const adapter = globalThis.GPUAdapter?.prototype;
  if (!adapter || adapter.requestDevice.watched) return;
  const original = adapter.requestDevice;
  adapter.requestDevice = async function (...args) {
    const device = await original.apply(this, args);
    onDevice(device);
    return device;
  };
  adapter.requestDevice.watched = true;
}

/**
 * An engine of one flavour on given weights: `{ engine, flavour, backend, memory, glue }`
 * (`memory` is its instance's WebAssembly memory, which the tests watch for leaks; `glue` its
 * module, whose other classes work with this engine). `pens` (an Int8Array) overrides the pens
 * every drawing is seen with; the page keeps the engine's default.
 */
export async function createEngine(flavour, weights, pens = undefined) {
  const { glue, memory } = await instantiate(flavour);
  const engine = await glue.Engine.create(flavour === 'gpu', weights, pens);
  return { engine, flavour, backend: engine.backend(), memory, glue };
}

/** Whether an error is a WebAssembly trap (a bug): the instance must not be used again. */
export function isTrap(error) {
  return error instanceof WebAssembly.RuntimeError || /unreachable|RuntimeError/.test(String(error?.name ?? ''));
}
