// Lays out site/ from www/, pkg/ (scripts/build-web) and weights/web.osw:
//
//   site/index.html, bench.html          the pages, pointing at one content-hashed folder
//   site/app-HASH/                       scripts, styles, the wasm builds (pkg/lite, pkg/cpu, pkg/gpu)
//   site/weights/web-HASH.osw            the shipped weights, fetched once and cached
//   site/sw.js                           the service worker: the page works offline after a visit
//   site/ort/                            onnxruntime-web, for bench.html only
//   site/tfjs/                           TensorFlow.js (core, wasm and WebGPU backends), for bench.html only
//
// A new deploy gets new folder and file names wherever content changed, so a browser never pairs
// old JS glue with new wasm, and the service worker's cache is versioned by the same hash.

import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const site = join(root, 'site');

/** Every file under `dir`, as paths relative to it, sorted. */
function files(dir) {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
}

/** The first 12 hex digits of the SHA-256 of `parts` (paths and contents). */
function hash(parts) {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return h.digest('hex').slice(0, 12);
}

// The app folder: www's scripts and styles and the wasm builds.
const www = join(root, 'www');
const appSources = [
  ...['js', 'examples', 'style.css', 'icon.svg'].flatMap((entry) => {
    const path = join(www, entry);
    return statSync(path).isDirectory() ? files(path).map((f) => join(path, f)) : [path];
  }),
  ...files(join(root, 'pkg')).map((f) => join(root, 'pkg', f)),
];
const weightsBytes = readFileSync(join(root, 'weights/web.osw'));
const weightsName = `weights/web-${hash([weightsBytes])}.osw`;
const buildModule = `// Written by scripts/assemble-site.mjs: where this build's assets are.\nexport const WEIGHTS_PATH = '${weightsName}';\n`;
const app = `app-${hash([...appSources.flatMap((p) => [relative(root, p), readFileSync(p)]), buildModule])}`;

rmSync(site, { recursive: true, force: true });
mkdirSync(join(site, app, 'js'), { recursive: true });
cpSync(join(www, 'js'), join(site, app, 'js'), { recursive: true });
cpSync(join(www, 'examples'), join(site, app, 'examples'), { recursive: true });
for (const file of ['style.css', 'icon.svg']) cpSync(join(www, file), join(site, app, file));
cpSync(join(root, 'pkg'), join(site, app, 'pkg'), { recursive: true });
writeFileSync(join(site, app, 'js/build.js'), buildModule);
mkdirSync(join(site, 'weights'));
writeFileSync(join(site, weightsName), weightsBytes);

// Nothing from other origins: scripts and wasm from this site only ('wasm-unsafe-eval' lets a
// page compile WebAssembly), workers from this site, no inline scripts or styles.
const csp = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
].join('; ');

/** The modules `js/<entry>` imports statically, itself included, as paths under js/. */
function moduleGraph(entry, seen = new Set()) {
  if (seen.has(entry)) return seen;
  seen.add(entry);
  const source = readFileSync(join(site, app, 'js', entry), 'utf8');
  for (const [, path] of source.matchAll(/^import\s[^;]*?['"]\.\/([^'"]+)['"]/gms)) moduleGraph(path, seen);
  return seen;
}

/**
 * What the main page needs before its first score, announced in its <head> so the browser
 * fetches it all at once instead of discovering it level by level: every module main.js
 * imports, the lite build's glue and wasm, and the weights.
 */
function preloads() {
  const links = [
    ...[...moduleGraph('main.js')].slice(1).map((m) => `<link rel="modulepreload" href="${app}/js/${m}">`),
    `<link rel="modulepreload" href="${app}/pkg/lite/oneshot.js">`,
    `<link rel="preload" href="${app}/pkg/lite/oneshot_bg.wasm" as="fetch" crossorigin>`,
    `<link rel="preload" href="${weightsName}" as="fetch" crossorigin>`,
  ];
  return links.map((link) => `\n  ${link}`).join('');
}

/** A page of www/ with its asset references moved into the app folder. */
function page(name, { withCsp, preload = '' }) {
  let html = readFileSync(join(www, name), 'utf8');
  html = html.replace(/(src|href)="((?:js\/|style\.css|icon\.svg)[^"]*)"/g, `$1="${app}/$2"`);
  if (withCsp) html = html.replace('<meta charset="utf-8">', `<meta charset="utf-8">\n  <meta http-equiv="Content-Security-Policy" content="${csp}">`);
  html = html.replace(/(<script type="module" src="[^"]*main\.js"><\/script>)/, `$1${preload}`);
  writeFileSync(join(site, name), html);
}
page('index.html', { withCsp: true, preload: preloads() });
// The benchmark page loads onnxruntime-web, whose wasm glue needs more than the main page allows.
page('bench.html', { withCsp: false });

// The service worker, versioned by the app folder. It precaches what the main page needs to
// score (the lite build); the fine-tuning and WebGPU builds are cached when first fetched.
const precache = [
  './',
  'index.html',
  weightsName,
  ...files(join(site, app)).filter((f) => !/^pkg\/(cpu|gpu)\//.test(f) && f !== 'js/bench.js').map((f) => `${app}/${f}`),
];
const worker = readFileSync(join(www, 'sw.js'), 'utf8')
  .replace("'__VERSION__'", JSON.stringify(app))
  .replace("'__PRECACHE__'", JSON.stringify(precache, null, 2));
writeFileSync(join(site, 'sw.js'), worker);

// onnxruntime-web for the benchmark page only: its wasm and WebGPU builds.
const ort = join(root, 'node_modules/onnxruntime-web/dist');
if (existsSync(ort)) {
  mkdirSync(join(site, 'ort'));
  for (const file of ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm', 'ort.webgpu.min.mjs', 'ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm']) {
    cpSync(join(ort, file), join(site, 'ort', file));
  }
}

// TensorFlow.js for the benchmark page only: its core and its wasm (XNNPACK) and WebGPU backends.
const tfjs = join(root, 'node_modules/@tensorflow');
if (existsSync(join(tfjs, 'tfjs-core'))) {
  mkdirSync(join(site, 'tfjs'));
  const files = {
    'tfjs-core': ['tf-core.min.js'],
    'tfjs-backend-wasm': ['tf-backend-wasm.min.js', 'tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'],
    'tfjs-backend-webgpu': ['tf-backend-webgpu.min.js'],
  };
  for (const [pkg, names] of Object.entries(files)) {
    for (const name of names) cpSync(join(tfjs, pkg, 'dist', name), join(site, 'tfjs', name));
  }
}

const size = (path) => statSync(path).size;
const kb = (n) => `${(n / 1024).toFixed(0)} KiB`;
const builds = ['lite', 'cpu', 'gpu'].map((f) => `${f} ${kb(size(join(site, app, `pkg/${f}/oneshot_bg.wasm`)))}`);
console.log(`site/ is ready: ${app}; wasm ${builds.join(', ')}; weights ${kb(weightsBytes.length)}`);
