// The operator terminal: login, then four screens (receive, sort, bag,
// handover) switched by the tabs, Alt+1..4 or the URL hash. The scan
// field of the visible screen keeps the focus so a keyboard-wedge scanner
// always types into it.

import {API, roleLabel} from './api.js';
import {ScanQueue} from './queue.js';
import {$} from './dom.js';
import {setupLogin, showLogin} from './login.js';
import {ScanScreen} from './scan.js';
import {BagScreen} from './bag.js';
import {HandoverScreen} from './handover.js';

const views = ['receive', 'sort', 'bag', 'handover'];

const api = new API({
  sessionKey: 'station.session.terminal.v1',
  onUnauthenticated: () => loggedOut('Your session ended. Log in again; queued scans are kept.'),
  onNetwork: (ok) => setNet(ok),
});
const queue = new ScanQueue(showQueue);
const scan = new ScanScreen(api, queue);
const screens = {receive: scan, sort: scan, bag: new BagScreen(api), handover: new HandoverScreen(api)};
let current = '';

function setNet(ok) {
  const n = $('net');
  const online = ok && navigator.onLine !== false;
  n.textContent = online ? 'online' : 'offline';
  n.className = 'chip ' + (online ? 'online' : 'offline');
}

function showQueue(len) {
  const q = $('queue');
  q.textContent = `queue ${len}`;
  q.classList.toggle('empty', len === 0);
  q.dataset.length = String(len);
  const lq = $('login-queue');
  lq.hidden = len === 0;
  lq.textContent = `${len} scan${len === 1 ? '' : 's'} waiting to be sent. Log in to send them.`;
}

function loggedOut(message) {
  current = '';
  showLogin(message);
}

function loggedIn(session) {
  const op = session.operator;
  $('who').textContent = op.name || op.id;
  $('station').textContent = op.station_id;
  $('role').textContent = roleLabel(op.role);
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  document.body.dataset.role = op.role;
  showQueue(queue.length);
  setNet(navigator.onLine !== false);
  go(viewFromHash());
  flush();
}

function viewFromHash() {
  const v = location.hash.replace(/^#\/?/, '');
  return views.includes(v) ? v : 'sort';
}

function go(view) {
  if (!api.session) return;
  current = view;
  if (location.hash !== '#' + view) history.replaceState(null, '', '#' + view);
  for (const b of document.querySelectorAll('nav.tabs button')) {
    if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  $('scan-view').hidden = !(view === 'receive' || view === 'sort');
  $('bag-view').hidden = view !== 'bag';
  $('handover-view').hidden = view !== 'handover';
  screens[view].activate(view);
  refocus();
}

// refocus puts the caret back into the screen's scan field unless the
// operator is in another field on purpose (weight, next hop, a button).
function refocus() {
  if (!current) return;
  const a = document.activeElement;
  if (a && a !== document.body && a.matches('input, select, textarea, button, a[href]') && !a.closest('[hidden]') && a.offsetParent !== null) return;
  const t = screens[current].focusTarget();
  if (t) t.focus();
}

function flush() {
  if (queue.length && api.session) queue.flush(api, (item, answer) => scan.replayed(item, answer));
}

setupLogin(api, {onLoggedIn: loggedIn});

$('logout').addEventListener('click', async () => {
  await api.logout();
  loggedOut('');
});

for (const b of document.querySelectorAll('nav.tabs button')) {
  b.addEventListener('click', () => {
    go(b.dataset.view);
    const t = screens[current].focusTarget();
    if (t) t.focus();
  });
}

document.addEventListener('keydown', (ev) => {
  if (ev.altKey && !ev.ctrlKey && !ev.metaKey && /^[1-4]$/.test(ev.key) && api.session) {
    ev.preventDefault();
    go(views[Number(ev.key) - 1]);
    const t = screens[current].focusTarget();
    if (t) t.focus();
    return;
  }
  // A scanner typing while nothing has focus: send its keys to the field.
  if (current && (document.activeElement === document.body || !document.activeElement) && ev.key.length === 1) {
    const t = screens[current].focusTarget();
    if (t) t.focus();
  }
});
document.addEventListener('focusout', () => setTimeout(refocus, 0));
document.addEventListener('click', () => setTimeout(refocus, 0));
window.addEventListener('hashchange', () => go(viewFromHash()));
window.addEventListener('online', () => {
  setNet(true);
  flush();
});
window.addEventListener('offline', () => setNet(false));
// The queue is also retried on a timer: "online" is not fired for every
// kind of outage (a Wi-Fi that is up with a server that is not).
setInterval(flush, 3000);

showQueue(queue.length);
if (api.session) loggedIn(api.session);
else showLogin('');
