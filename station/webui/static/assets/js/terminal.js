// The operator terminal: login, then four screens (receive, sort, bag,
// handover) and the command sheet, switched by the tabs, Alt+1..5, the URL
// hash or a scanned screen code (RECEIVE, SORT, BAG, HANDOVER). Every scan
// box feeds one scan line (scanline.js), and the scan box of the visible
// screen gets the focus back after every action, so a keyboard-wedge
// scanner always types into it. A service worker (sw.js) keeps the page on
// screen when it is reloaded without a connection.

import {API, roleLabel} from './api.js';
import {ScanQueue, ownerOf} from './queue.js';
import {$} from './dom.js';
import {setupLogin, showLogin} from './login.js';
import {ScanScreen} from './scan.js';
import {BagScreen} from './bag.js';
import {HandoverScreen} from './handover.js';
import {ScanLine, holdIn} from './scanline.js';
import {CodesScreen} from './commands.js';
import {BindScreen} from './bind.js';

// Sort-and-bag and bind have no tab: a scanned SORTBAG or BIND opens them.
const views = ['receive', 'sort', 'bag', 'handover', 'codes', 'sortbag', 'bind'];

const api = new API({
  sessionKey: 'station.session.terminal.v1',
  onUnauthenticated: () => loggedOut('Your session ended. Log in again; queued scans are kept.'),
  onNetwork: (ok) => setNet(ok),
});
const queue = new ScanQueue(showQueue);
queue.adoptLegacy(ownerOf(api.session && api.session.operator));
const line = new ScanLine({
  screen: () => screens[current],
  view: () => current,
  go: (view) => go(view),
  focus: () => refocus(true),
});
const scan = new ScanScreen(api, queue, line);
const screens = {receive: scan, sort: scan, sortbag: scan, bag: new BagScreen(api, line), handover: new HandoverScreen(api, line),
  codes: new CodesScreen(), bind: new BindScreen(api, line)};
for (const id of ['scan-input', 'bag-next-hop', 'bag-scan', 'ho-ref', 'ho-scan', 'codes-scan', 'bind-scan']) line.attach($(id));
// Holds kept on the device come back as what they were.
line.kind('answer', (d) => scan.heldAnswer(d.item, d.v));
line.kind('box', (d) => holdIn($(d.box), d.title, d.detail, d.code));
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
  line.setOwner(null);
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
  line.setOwner(ownerOf(op));
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
  $('scan-view').hidden = !(view === 'receive' || view === 'sort' || view === 'sortbag');
  $('bind-view').hidden = view !== 'bind';
  $('bag-view').hidden = view !== 'bag';
  $('handover-view').hidden = view !== 'handover';
  $('codes-view').hidden = view !== 'codes';
  document.body.dataset.view = view;
  screens[view].activate(view);
  refocus(true);
}

// refocus puts the caret back into the screen's scan box unless the
// operator is in another field on purpose (the weight, the carrier type).
// After an action (afterAction) a button or link does not keep the focus:
// a scanner's next code would be lost, and its Enter would press the
// button again. Without an action (the focus just moved), a button the
// keyboard reached keeps it.
function refocus(afterAction) {
  if (!current) return;
  const a = document.activeElement;
  const visible = a && a !== document.body && !a.closest('[hidden]') && a.offsetParent !== null;
  if (visible && a.matches('input, select, textarea')) return;
  if (visible && !afterAction && a.matches('button, a[href], summary')) return;
  const t = screens[current].focusTarget();
  if (t && !t.closest('[hidden]')) t.focus();
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
    const behind = line.waiting.length;
    if (!left && !behind) {
      await endSession();
      return;
    }
    const op = api.session.operator;
    const parts = [];
    if (left) {
      parts.push(`${left} scan${left === 1 ? ' is' : 's are'} not sent yet: no connection to the station server. ` +
        `If you log out, ${left === 1 ? 'it stays' : 'they stay'} on this terminal as yours (${op.id} at ${op.station_id}) and ` +
        `${left === 1 ? 'is' : 'are'} sent when you log in here again; nobody else can send ${left === 1 ? 'it' : 'them'}.`);
    }
    if (behind) {
      parts.push(`${behind} scan${behind === 1 ? ' waits' : 's wait'} behind the exception on screen. ` +
        `If you log out, ${behind === 1 ? 'it is' : 'they are'} kept for you and ${behind === 1 ? 'goes' : 'go'} on when you log in here again and acknowledge it.`);
    }
    $('logout-warn-text').textContent = parts.join(' ');
    $('logout-warn').dataset.count = String(left);
    $('logout-warn').hidden = false;
    $('logout-stay').focus();
  } finally {
    button.disabled = false;
  }
});
$('logout-stay').addEventListener('click', () => {
  $('logout-warn').hidden = true;
  refocus(true);
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
  if (ev.altKey && !ev.ctrlKey && !ev.metaKey && /^[1-5]$/.test(ev.key) && api.session) {
    ev.preventDefault();
    go(views[Number(ev.key) - 1]);
    const t = screens[current].focusTarget();
    if (t) t.focus();
    return;
  }
  // A scanner typing while nothing, a button, or a box just hidden (the
  // screen moved on) has the focus: send its keys to the scan box.
  const a = document.activeElement;
  if (current && ev.key.length === 1 && !ev.altKey && !ev.ctrlKey && !ev.metaKey &&
      (!a || a === document.body || a.matches('button, a[href], summary') || a.closest('[hidden]'))) {
    const t = screens[current].focusTarget();
    if (t) t.focus();
  }
});
document.addEventListener('focusout', () => setTimeout(() => refocus(false), 0));
document.addEventListener('click', () => setTimeout(() => refocus(true), 0));
window.addEventListener('hashchange', () => go(viewFromHash()));
window.addEventListener('online', () => {
  setNet(true);
  flush();
});
window.addEventListener('offline', () => setNet(false));
// The queue is also retried on a timer: "online" is not fired for every
// kind of outage (a Wi-Fi that is up with a server that is not).
setInterval(flush, 3000);

// The service worker serves the page and its files from its cache when the
// server cannot be reached, so a reload without a connection keeps the
// terminal and its queue on screen. It never touches /api/.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js', {scope: '/'}).then(
    () => { document.body.dataset.sw = 'registered'; },
    () => { document.body.dataset.sw = 'failed'; });
}

showQueue();
if (api.session) loggedIn(api.session);
else showLogin('');
