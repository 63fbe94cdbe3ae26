// Offline after the first visit: the app shell is fetched network-first (so updates show) and
// kept; models and the wasm binary are served from the cache first (they are large and versioned
// by path). Models fetched by the worker are stored by it in the 'wgpt-models' cache.
const SHELL = 'wgpt-shell-v2';
const FILES = [
  './',
  'index.html',
  'app.js',
  'protocol.js',
  'worker.js',
  'style.css',
  'pkg/wgpt.js',
  'pkg/wgpt_bg.wasm',
  'models/index.json',
  ...['page', 'models', 'chat', 'fewshot', 'next', 'attention'].map((m) => `ui/${m}.js`),
];

self.addEventListener('install', (e) => {
  e.waitUntil(
    caches
      .open(SHELL)
      .then((c) => c.addAll(FILES))
      .then(() => self.skipWaiting()),
  );
});
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== location.origin) return;
  if (url.pathname.includes('/models/') && !url.pathname.endsWith('index.json')) {
    e.respondWith(caches.open('wgpt-models').then(async (c) => (await c.match(e.request)) || fetch(e.request)));
    return;
  }
  e.respondWith(
    (async () => {
      const cache = await caches.open(SHELL);
      try {
        const res = await fetch(e.request);
        if (res.ok) cache.put(e.request, res.clone());
        return res;
      } catch (err) {
        const hit = await cache.match(e.request, { ignoreSearch: true });
        if (hit) return hit;
        throw err;
      }
    })(),
  );
});
