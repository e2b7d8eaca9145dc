// The supervisor's floor: every chute with its next hop, bag, fill and
// state, the bags, open handovers and the put-aside queue, kept live by the
// station's floor stream (server-sent events read with fetch: EventSource
// cannot send the bearer token). Supervisors and ops also edit the chute
// map and take chutes out of use, and see each sorter's belt decisions
// (late answers, source mix); every role may watch.

import {API, roleLabel} from './api.js';
import {$, el, clear, msg, grams, blobLink} from './dom.js';
import {setupLogin, showLogin} from './login.js';
import {code128} from './barcode.js';
import {printSheet} from './commands.js';
import {chuteLabel} from './chutelabel.js';

const api = new API({
  sessionKey: 'station.session.floor.v1',
  onUnauthenticated: () => loggedOut('Your session ended. Log in again.'),
});

const STATUS_TEXT = {
  ready: 'Ready', seal_soon: 'Seal soon', seal_now: 'Seal now', full: 'Full', no_bag: 'No bag', disabled: 'Disabled',
};
const KIND_TEXT = {exception: 'Exception', overflow: 'Overflow', reject: 'Reject'};

let stream = null; // the AbortController of the running stream
let view = null; // the last floor pushed
let mapVersion = ''; // the chute map's ETag, for If-Match

function station() {
  return api.session ? api.session.operator.station_id : '';
}

function manages() {
  const role = api.session ? api.session.operator.role : '';
  return role === 'supervisor' || role === 'ops';
}

function loggedOut(message) {
  stop();
  showLogin(message);
}

function loggedIn(session) {
  const op = session.operator;
  $('who').textContent = `${op.name || op.id} · ${roleLabel(op.role)}`;
  $('station').textContent = op.station_id;
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  $('editor-section').hidden = !manages();
  $('decisions-section').hidden = !manages();
  if (manages()) {
    loadMap();
    loadDecisions();
  }
  start();
}

// start reads the floor stream until stopped; a dropped stream comes back
// after a pause, and the page says it is not live meanwhile.
function start() {
  stop();
  const ctl = new AbortController();
  stream = ctl;
  (async () => {
    let pause = 500;
    while (!ctl.signal.aborted) {
      try {
        await read(ctl.signal);
        pause = 500;
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      setLive(false);
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 10000);
    }
  })();
}

function stop() {
  if (stream) stream.abort();
  stream = null;
}

async function read(signal) {
  const resp = await fetch(`/api/v1/stations/${encodeURIComponent(station())}/floor/events`, {
    headers: {Authorization: 'Bearer ' + api.token, Accept: 'text/event-stream'}, cache: 'no-store', credentials: 'omit', signal,
  });
  if (resp.status === 401) {
    await api.logout();
    loggedOut('Your session ended. Log in again.');
    return;
  }
  if (!resp.ok) throw new Error('floor stream: HTTP ' + resp.status);
  setLive(true);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trimStart();
      }
      if (event === 'floor' && data) render(JSON.parse(data));
    }
  }
}

function setLive(on) {
  const c = $('live');
  c.textContent = on ? 'live' : 'not live';
  c.className = 'chip ' + (on ? 'online' : 'offline');
}

// render draws the whole floor. The main element counts the floors drawn,
// so a test (or a slow eye) knows a push arrived.
function render(v) {
  view = v;
  const main = $('floor');
  const l = v.limits || {};
  $('limits').textContent = `bags hold ${l.max_parcels} parcels or ${grams(l.max_grams)}; seal soon at ${Math.round((l.seal_soon || 0) * 100)}%`;
  drawChutes(v);
  drawPutAside(v.put_aside || []);
  drawBags($('open-bags'), v.open_bags || [], false);
  drawBags($('sealed-bags'), v.sealed_bags || [], true);
  drawHandovers(v.open_handovers || []);
  drawLabels(v);
  main.dataset.state = 'ready';
  main.dataset.updates = String(Number(main.dataset.updates || 0) + 1);
}

function drawChutes(v) {
  const box = clear($('chutes'));
  for (const c of v.chutes || []) {
    const bag = c.bag;
    const ratio = bag ? Math.min(bag.fill.ratio, 1) : 0;
    const card = el('article', {class: 'chute st-' + c.status, dataset: {chute: c.chute, status: c.status}},
      el('header', {},
        el('strong', {class: 'num'}, String(c.chute)),
        el('span', {class: 'hop'}, c.next_hop || KIND_TEXT[c.kind] || c.kind),
        el('span', {class: 'tag status'}, STATUS_TEXT[c.status] || c.status)),
      bag ? el('div', {class: 'bag'},
        el('span', {class: 'mono'}, bag.bag_id),
        el('span', {}, `${bag.fill.parcels}/${bag.fill.max_parcels} · ${grams(bag.fill.grams)}`)) : null,
      c.kind === 'next_hop' ? el('div', {class: 'fill', role: 'meter', 'aria-label': `chute ${c.chute} fill`,
        'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(ratio * 100)},
      el('span', {style: null, dataset: {pct: Math.round(ratio * 100)}})) : null,
      c.waiting && c.waiting.length ? el('p', {class: 'waiting'}, `${c.waiting.length} waiting, not bagged: `,
        el('span', {class: 'mono'}, c.waiting.slice(0, 5).map((p) => `${p.tracking_no} (${p.reason.replaceAll('_', ' ')})`).join(' ')),
        c.waiting.length > 5 ? ' …' : '') : null,
      // Only a next hop's chute can be taken out of use: the belt sends what
      // it cannot place elsewhere to the others whatever their state.
      manages() && (c.kind === 'next_hop' || c.status === 'disabled') ? el('button', {type: 'button', class: 'small secondary', dataset: {toggle: c.chute},
        onclick: () => setDisabled(c.chute, c.status !== 'disabled')}, c.status === 'disabled' ? 'Enable' : 'Disable') : null);
    // The CSP forbids inline styles in markup, not styles set from script.
    const bar = card.querySelector('.fill > span');
    if (bar) bar.style.width = `${Math.round(ratio * 100)}%`;
    box.append(card);
  }
  if (!box.firstChild) box.append(el('p', {class: 'hint'}, 'This station has no chute map yet.'));
}

function drawPutAside(list) {
  $('putaside-count').textContent = String(list.length);
  const box = clear($('putaside'));
  for (const p of list) {
    box.append(el('li', {class: 'bad', dataset: {trackingNo: p.tracking_no}},
      el('span', {class: 'tn mono'}, p.tracking_no),
      el('span', {class: 'what'}, p.exception_code || p.state),
      el('span', {class: 'time'}, new Date(p.updated_at).toLocaleTimeString())));
  }
  if (!list.length) box.append(el('li', {class: 'hint'}, 'Nothing put aside.'));
}

function drawBags(box, bags, sealed) {
  clear(box);
  for (const b of bags) {
    box.append(el('li', {dataset: {bagId: b.bag_id}},
      el('span', {class: 'tn mono'}, b.bag_id),
      el('span', {}, `→ ${b.next_hop}`),
      el('span', {}, `${b.item_count} parcels`),
      sealed && b.weight_g ? el('span', {}, grams(b.weight_g)) : null,
      el('button', {type: 'button', class: 'small secondary', dataset: {reprint: b.bag_id}, onclick: () => reprint(b.bag_id)},
        sealed ? 'Reprint label' : 'Label')));
  }
  if (!bags.length) box.append(el('li', {class: 'hint'}, sealed ? 'No sealed bags.' : 'No open bags.'));
}

// reprint fetches a bag's label with the token, shows it and prints it.
async function reprint(bagID) {
  const a = await api.get(`/api/v1/bags/${encodeURIComponent(bagID)}/label?format=png`, {as: 'blob'});
  if (!a.ok) {
    msg($('floor-msg'), 'bad', `Label of ${bagID}: ${(a.error && a.error.message) || 'failed'}`);
    return;
  }
  const box = clear($('bag-label'));
  const url = URL.createObjectURL(a.blob);
  const img = el('img', {src: url, alt: `Label of bag ${bagID}`, dataset: {bagId: bagID}});
  const link = el('a', {class: 'button'}, 'Save label');
  blobLink(link, a.blob, `${bagID}.png`);
  box.append(img, el('p', {class: 'row'},
    el('button', {type: 'button', onclick: () => printSheet('label')}, 'Print'), link,
    el('button', {type: 'button', class: 'secondary', onclick: () => { box.hidden = true; }}, 'Close')));
  box.hidden = false;
  box.scrollIntoView({block: 'nearest'});
}

function drawHandovers(list) {
  const box = clear($('handovers'));
  for (const h of list) {
    const who = h.trip_id ? `trip ${h.trip_id}` : h.rider_id ? `rider ${h.rider_id}` : h.carrier || h.type;
    box.append(el('figure', {class: 'code-card', dataset: {handoverId: h.handover_id}},
      code128(h.handover_id, {height: 40, caption: ''}),
      el('figcaption', {}, el('span', {class: 'mono'}, h.handover_id), el('br'),
        `${who} · ${h.bag_count} bags · ${h.parcel_count} parcels`)));
  }
  if (!list.length) box.append(el('p', {class: 'hint'}, 'No open handovers.'));
}

function drawLabels(v) {
  const box = clear($('chute-labels'));
  for (const c of v.chutes || []) {
    const code = chuteLabel(v.station_id, c.chute);
    box.append(el('figure', {class: 'code-card', dataset: {code}},
      code128(code, {height: 48}),
      el('figcaption', {}, el('strong', {}, `Chute ${c.chute}`), ' ', c.next_hop || KIND_TEXT[c.kind] || '')));
  }
}

async function setDisabled(chute, disabled) {
  const a = await api.put(`/api/v1/stations/${encodeURIComponent(station())}/chutes/${chute}/state`, {disabled});
  if (!a.ok) msg($('floor-msg'), 'bad', `Chute ${chute}: ${(a.error && a.error.message) || 'not changed'}`);
  else msg($('floor-msg'), 'ok', `Chute ${chute} ${disabled ? 'disabled' : 'enabled'}.`);
}

// The chute-map editor.

function mapRow(hop = '', chutes = []) {
  const tr = el('tr', {},
    el('td', {}, el('input', {class: 'hop', value: hop, size: 8, spellcheck: 'false', 'aria-label': 'next hop'})),
    el('td', {}, el('input', {class: 'chutes', value: chutes.join(' '), size: 10, inputmode: 'numeric', 'aria-label': 'chutes'})),
    el('td', {}, el('button', {type: 'button', class: 'small secondary', onclick: () => tr.remove()}, 'Remove')));
  return tr;
}

async function loadMap() {
  const a = await api.get(`/api/v1/stations/${encodeURIComponent(station())}/chutes`);
  const rows = clear($('map-rows'));
  if (!a.ok) {
    mapVersion = '';
    if (a.status !== 404) msg($('map-msg'), 'bad', (a.error && a.error.message) || 'The chute map did not load.');
    rows.append(mapRow());
    return;
  }
  mapVersion = a.headers.get('ETag') || '';
  const m = a.data;
  for (const hop of Object.keys(m.next_hops || {}).sort()) rows.append(mapRow(hop, m.next_hops[hop]));
  $('map-exception').value = m.exception_chute || '';
  $('map-overflow').value = m.overflow_chute || '';
  $('map-reject').value = m.reject_chute || '';
}

function pct(x) {
  return `${(100 * (x || 0)).toFixed(1)}%`;
}

// loadDecisions draws the per-sorter report of the belt's decisions over
// the chosen window.
async function loadDecisions() {
  const from = $('decisions-window').value;
  const a = await api.get(`/api/v1/stations/${encodeURIComponent(station())}/sorters/decisions?from=${encodeURIComponent(from)}`);
  const rows = clear($('decisions-rows'));
  if (!a.ok) {
    msg($('decisions-msg'), 'bad', (a.error && a.error.message) || 'The sorter decisions did not load.');
    return;
  }
  $('decisions-msg').hidden = true;
  const sorters = a.data.sorters || [];
  if (sorters.length === 0) {
    rows.append(el('tr', {}, el('td', {colspan: 9, class: 'hint'}, 'No belt decisions in this window.')));
    return;
  }
  for (const s of sorters) {
    rows.append(el('tr', {'data-sorter': s.sorter_id},
      el('td', {}, s.sorter_id),
      el('td', {}, String(s.decisions)),
      el('td', {class: s.late > 0 ? 'bad' : ''}, `${s.late} (${pct(s.late_rate)})`),
      el('td', {}, pct(s.presorted_share)),
      el('td', {}, pct(s.on_the_fly_share)),
      el('td', {}, pct(s.fallback_share)),
      el('td', {}, String(s.recirculated_after_late)),
      el('td', {}, s.latency_p50_ms.toFixed(2)),
      el('td', {}, s.latency_p99_ms.toFixed(2))));
  }
}

function numbers(s) {
  return s.split(/[\s,]+/).filter(Boolean).map(Number);
}

async function saveMap(ev) {
  ev.preventDefault();
  const m = {next_hops: {}, exception_chute: Number($('map-exception').value), overflow_chute: Number($('map-overflow').value),
    reject_chute: Number($('map-reject').value)};
  for (const tr of $('map-rows').children) {
    const hop = tr.querySelector('.hop').value.trim().toUpperCase();
    if (hop) m.next_hops[hop] = numbers(tr.querySelector('.chutes').value);
  }
  const headers = mapVersion ? {'If-Match': mapVersion} : {};
  const a = await api.put(`/api/v1/stations/${encodeURIComponent(station())}/chutes`, m, {headers});
  if (!a.ok) {
    const detail = a.status === 412 ? 'Someone changed the map since you loaded it: reload, then edit again.' : undefined;
    msg($('map-msg'), 'bad', (a.error && a.error.message) || 'Not saved.', detail);
    return;
  }
  msg($('map-msg'), 'ok', 'Chute map saved.');
  await loadMap();
}

setupLogin(api, {onLoggedIn: loggedIn});
$('logout').addEventListener('click', async () => {
  stop();
  await api.logout();
  loggedOut('');
});
$('map-add').addEventListener('click', () => $('map-rows').append(mapRow()));
$('map-reload').addEventListener('click', () => loadMap());
$('decisions-reload').addEventListener('click', () => loadDecisions());
$('decisions-window').addEventListener('change', () => loadDecisions());
$('map-form').addEventListener('submit', saveMap);
$('labels-print').addEventListener('click', () => printSheet('chutes'));

if (api.session) loggedIn(api.session);
else showLogin('');
