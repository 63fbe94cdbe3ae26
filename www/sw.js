// Offline after the first visit: the app shell is fetched network-first (so updates show) and
// kept; models and the wasm binary are served from the cache first (they are large and versioned
// by path). Models fetched by the worker are stored by it in the 'wgpt-models' cache. The build
// with threads (pkg-threads/) is kept as it is fetched: a host without a nightly toolchain's
// build has none, and addAll would fail on it.
//
// Every response it serves carries COOP and COEP, so a static host that cannot send headers
// still gets a cross-origin-isolated page (the coi-serviceworker technique): app.js reloads
// once when this worker first takes the page, and the engine then runs with threads.
const SHELL = 'wgpt-shell-v3';
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

function isolated(res) {
  if (res.status === 0) return res; // opaque: its headers cannot be read or set
  const headers = new Headers(res.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== location.origin) return;
  if (url.pathname.includes('/models/') && !url.pathname.endsWith('index.json')) {
    e.respondWith(
      caches.open('wgpt-models').then(async (c) => isolated((await c.match(e.request)) || (await fetch(e.request)))),
    );
    return;
  }
  e.respondWith(
    (async () => {
      const cache = await caches.open(SHELL);
      try {
        const res = await fetch(e.request);
        if (res.ok) cache.put(e.request, res.clone());
        return isolated(res);
      } catch (err) {
        const hit = await cache.match(e.request, { ignoreSearch: true });
        if (hit) return isolated(hit);
        throw err;
      }
    })(),
  );
});
