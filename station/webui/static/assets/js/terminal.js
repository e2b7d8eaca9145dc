// The operator terminal: login, then four screens (receive, sort, bag,
// handover) switched by the tabs, Alt+1..4 or the URL hash. The scan
// field of the visible screen keeps the focus so a keyboard-wedge scanner
// always types into it.

import {API, roleLabel} from './api.js';
import {ScanQueue, ownerOf} from './queue.js';
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
queue.adoptLegacy(ownerOf(api.session && api.session.operator));
const scan = new ScanScreen(api, queue);
const screens = {receive: scan, sort: scan, bag: new BagScreen(api), handover: new HandoverScreen(api)};
let current = '';

function setNet(ok) {
  const n = $('net');
  const online = ok && navigator.onLine !== false;
  n.textContent = online ? 'online' : 'offline';
  n.className = 'chip ' + (online ? 'online' : 'offline');
}

// showQueue shows the logged-in operator's queue on the chip, and the scans
// other operators left queued on this terminal, which wait for them.
function showQueue() {
  const len = queue.length;
  const q = $('queue');
  q.textContent = `queue ${len}`;
  q.classList.toggle('empty', len === 0);
  q.dataset.length = String(len);
  document.body.dataset.flushes = String(queue.flushes);
  const waiting = queue.waiting();
  const total = waiting.reduce((n, w) => n + w.count, 0);
  for (const [id, lead] of [['queue-others', 'Kept on this terminal for others: '], ['login-queue', 'Waiting on this terminal: ']]) {
    const box = $(id);
    box.hidden = total === 0;
    box.dataset.count = String(total);
    box.textContent = total ? lead + waiting.map(waitingText).join('; ') +
      '. Each operator\'s scans are sent only when that operator logs in here again.' : '';
  }
}

function waitingText(w) {
  const n = `${w.count} scan${w.count === 1 ? '' : 's'}`;
  if (!w.operator_id) return `${n} queued before an update, operator unknown (not sent)`;
  return `${n} of ${w.operator_id} at ${w.station_id}`;
}

function loggedOut(message) {
  current = '';
  $('logout-warn').hidden = true;
  queue.setOwner(null);
  scan.reset();
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
  queue.setOwner(ownerOf(op));
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

// flush sends the logged-in operator's queued scans (never another
// operator's; see queue.js).
function flush() {
  if (api.session) queue.flush(api, (item, answer) => scan.replayed(item, answer));
}

setupLogin(api, {onLoggedIn: loggedIn});

// Logging out sends the operator's queued scans first. What cannot be sent
// (no connection) is said before the session ends: the scans stay on this
// terminal as the operator's, sent when they log in here again.
$('logout').addEventListener('click', async () => {
  const button = $('logout');
  button.disabled = true;
  try {
    if (queue.length) await queue.flush(api, (item, answer) => scan.replayed(item, answer));
    const left = queue.length;
    if (!left) {
      await endSession();
      return;
    }
    const op = api.session.operator;
    $('logout-warn-text').textContent = `${left} scan${left === 1 ? ' is' : 's are'} not sent yet: no connection to the station server. ` +
      `If you log out, ${left === 1 ? 'it stays' : 'they stay'} on this terminal as yours (${op.id} at ${op.station_id}) and ` +
      `${left === 1 ? 'is' : 'are'} sent when you log in here again; nobody else can send ${left === 1 ? 'it' : 'them'}.`;
    $('logout-warn').dataset.count = String(left);
    $('logout-warn').hidden = false;
    $('logout-stay').focus();
  } finally {
    button.disabled = false;
  }
});
$('logout-stay').addEventListener('click', () => {
  $('logout-warn').hidden = true;
  refocus();
});
$('logout-anyway').addEventListener('click', async () => {
  $('logout-warn').hidden = true;
  // The connection may be back meanwhile.
  if (queue.length) await queue.flush(api, (item, answer) => scan.replayed(item, answer));
  await endSession();
});

async function endSession() {
  await api.logout();
  loggedOut('');
}

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

showQueue();
if (api.session) loggedIn(api.session);
else showLogin('');
