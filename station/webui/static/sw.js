// The terminal's service worker: it keeps the page and its files on the
// device, so a reload without a connection to the station server shows the
// terminal (and its offline queue, kept in localStorage) instead of the
// browser's error page.
//
// Network first: a connected terminal always gets the running binary's
// files (the server revalidates every one), and the copy is refreshed on
// the way. The cache is named after a hash of every embedded file, which
// the server writes in below when it serves this file; a new binary with
// changed files is a new service worker, which fills a new cache and
// deletes the old ones. The API (/api/) is never touched: scans go to the
// server or into the page's own queue.

const VERSION = '__STATION_ASSETS_VERSION__';
const FILES = __STATION_ASSETS__;
const PREFIX = 'station-terminal-';
const CACHE = PREFIX + VERSION;

self.addEventListener('install', (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith(PREFIX) && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (ev) => {
  const req = ev.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith('/api/') || url.pathname === '/sw.js') return;
  ev.respondWith(fromNetwork(req).catch(() => fromCache(req, url)));
});

async function fromNetwork(req) {
  const resp = await fetch(req);
  if (resp.ok) {
    const copy = resp.clone();
    caches.open(CACHE).then((c) => c.put(req, copy)).catch(() => {});
  }
  return resp;
}

async function fromCache(req, url) {
  const hit = await caches.match(req, {cacheName: CACHE, ignoreSearch: true});
  if (hit) return hit;
  // A page asked for by another name (/#bag, /index.html): the terminal.
  if (req.mode === 'navigate' && (url.pathname === '/' || url.pathname === '/index.html')) {
    const page = await caches.match('/', {cacheName: CACHE});
    if (page) return page;
  }
  return Response.error();
}
