// Loads the wasm module (with download progress) and the network, on WebGPU when the browser
// has it, otherwise on the CPU. `?backend=cpu` in the address forces the CPU.

import init, { Engine } from '../pkg/oneshot.js';

const WASM_URL = new URL('../pkg/oneshot_bg.wasm', import.meta.url);

/** Fetches the wasm binary, reporting progress as a fraction in 0..1. */
async function fetchWithProgress(url, onProgress) {
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

let compiled = null;
let initialised = null;

/** Downloads and compiles the wasm module once (workers reuse the compiled module). */
export function wasmModule(onProgress = () => {}) {
  compiled ??= fetchWithProgress(WASM_URL, onProgress).then((bytes) => WebAssembly.compile(bytes));
  return compiled;
}

/** Downloads and instantiates the wasm module once. */
export function loadModule(onProgress = () => {}) {
  initialised ??= wasmModule(onProgress).then((module) => init({ module_or_path: module }));
  return initialised;
}

/** Whether this page should try WebGPU. */
export function wantsGpu() {
  const forced = new URLSearchParams(location.search).get('backend');
  return forced !== 'cpu' && 'gpu' in navigator;
}

/** Why WebGPU is not used, when it is not. */
export function gpuAbsenceReason() {
  if (new URLSearchParams(location.search).get('backend') === 'cpu') return 'CPU forced by ?backend=cpu';
  return 'gpu' in navigator ? null : 'this browser has no WebGPU (navigator.gpu is missing)';
}

/** The WebGPU adapter's vendor and architecture, as the browser reports them. */
async function adapterName() {
  try {
    const info = (await navigator.gpu.requestAdapter())?.info;
    const name = [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(' ');
    return name || null;
  } catch {
    return null;
  }
}

/**
 * Creates an engine: shipped weights when `weights` is null, otherwise the given bytes.
 * Rejects with a readable Error (wrong preset, corrupted file, …).
 */
export async function createEngine(weights = null) {
  await loadModule();
  const engine = await Engine.create(wantsGpu(), weights);
  const backend = engine.backend();
  if (backend.kind === 'cpu' && gpuAbsenceReason()) backend.detail = gpuAbsenceReason();
  if (backend.kind === 'webgpu') backend.detail = (await adapterName()) ?? backend.detail;
  return { engine, backend };
}
