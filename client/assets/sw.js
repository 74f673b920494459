// CAHAT's service worker: the app shell works offline, and a new version never mixes with
// the one running. Written into dist/ by scripts/service-worker.mjs, which fills in VERSION
// (a hash of every file below, so a new build is a new worker) and SHELL (the built files).
//
// Every file of a version is answered from that version's cache: the page (index.html, for
// any address of the app: ?room=, ?seed=), its code, styles and icons, fetched at install;
// the demo rooms' worker (mock-worker*, loaded only for mock:// rooms) when first asked for.
// A new version installs beside the running one and waits: the page offers "Reload", which
// lets it take over; every open tab then reloads into it (what was being written is kept
// across a reload). Nothing else is touched: WebSockets, other paths of a room server.
const VERSION = '__VERSION__';
const SHELL = __SHELL__;
const LATER = /^mock-worker/;
const CACHE = `cahat-${VERSION}`;
const ROOT = new URL('./', self.location).pathname;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)));
});

self.addEventListener('activate', (event) => {
  const old = (key) => key.startsWith('cahat-') && key !== CACHE;
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter(old).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('message', (event) => {
  if (event.data === 'take-over') self.skipWaiting();
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || !url.pathname.startsWith(ROOT)) return;
  const path = url.pathname.slice(ROOT.length);
  const page = request.mode === 'navigate' && (path === '' || path === 'index.html');
  const key = page ? 'index.html' : path;
  if (page || SHELL.includes(key) || LATER.test(key)) event.respondWith(answer(key, request));
});

async function answer(key, request) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(key);
  if (kept) return kept;
  const fetched = await fetch(request);
  if (fetched.ok && LATER.test(key)) await cache.put(key, fetched.clone());
  return fetched;
}
