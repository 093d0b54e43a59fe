// The service worker: after one visit the page works offline. scripts/assemble-site.mjs fills in
// the build's version (its content-hashed asset folder) and the files the CPU path needs.
//
// - Hashed assets (app-HASH/…, weights/web-HASH.osw) never change: cache first.
// - The page itself: network first, so a new deploy shows at once; the cache when offline.
// - Anything else (the benchmark page's data and onnxruntime-web): the network only.

const VERSION = '__VERSION__';
const PRECACHE = '__PRECACHE__';

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(VERSION)
      .then((cache) => cache.addAll(PRECACHE))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  // Older builds' caches go: their files are named for content this page no longer uses.
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== VERSION).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== location.origin) return;
  const path = url.pathname.slice(new URL(self.registration.scope).pathname.length);
  if (request.mode === 'navigate') {
    event.respondWith(networkFirst(request));
  } else if (/^(app-[0-9a-f]+|weights)\//.test(path)) {
    event.respondWith(cacheFirst(request));
  }
});

async function cacheFirst(request) {
  const cache = await caches.open(VERSION);
  // A trapped engine is re-imported with ?instance=N: the same file.
  const cached = await cache.match(request, { ignoreSearch: true });
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

async function networkFirst(request) {
  const cache = await caches.open(VERSION);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const cached = (await cache.match(request, { ignoreSearch: true })) ?? (await cache.match('index.html'));
    if (cached) return cached;
    throw error;
  }
}
