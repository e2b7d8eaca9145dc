// The receive and sort screen: one field, Enter (or Tab) sends, the answer
// big. A scan that cannot reach the server goes into the offline queue with
// its scan id and is shown as queued until the queue delivers it. An
// exception or a refusal holds the scan line until acknowledged; a repeat
// (the parcel is already here) and a parcel that already departed have
// their own looks, not an error's.

import {retryable} from './api.js';
import {$, el, clear, hhmmss, normalizeCode, newScanID} from './dom.js';
import {beep} from './sound.js';
import {exceptionWords, explain} from './words.js';

const RECENT_KEY = 'station.recent.v1';
const RECENT_MAX = 25;

export class ScanScreen {
  constructor(api, queue, line) {
    this.api = api;
    this.queue = queue;
    this.line = line; // the scan line: codes come in through scan()
    this.mode = 'sort';
    this.latest = ''; // scan id of the newest scan: only it may fill the big answer
  }

  activate(mode) {
    this.mode = mode;
    const sort = mode === 'sort' || mode === 'sortbag';
    $('scan-title').textContent = mode === 'sortbag' ? 'Sort and bag' : sort ? 'Sort' : 'Receive';
    $('scan-label').textContent = mode === 'sortbag' ? 'Scan a parcel: sorted and put in its chute\'s bag'
      : sort ? 'Scan a parcel to sort' : 'Scan an arriving parcel';
    document.body.dataset.mode = mode;
    this.renderRecent();
  }

  focusTarget() {
    return $('scan-input');
  }

  // scan is the scan line's: a parcel's code, or a command this screen
  // does not take (said, not sent).
  async scan(code, cmd) {
    if (cmd) {
      this.paint({scan_id: '', tracking_no: ''}, {state: 'warn', label: 'Not here', main: code, text: true,
        detail: 'That code is for another screen. Scan BAG or HANDOVER first.'});
      return;
    }
    await this.submit(code);
  }

  async submit(raw) {
    const tn = normalizeCode(raw);
    if (!tn) return;
    // Sort and bag is a sort, then a bag add (see answered).
    const kind = this.mode === 'sortbag' ? 'sort' : this.mode;
    const scanID = newScanID(kind === 'sort' ? 's' : 'r');
    // The scan is its operator's from here on, queued or not.
    const item = {kind, path: `/api/v1/${kind}`, body: {tracking_no: tn, scan_id: scanID}, scan_id: scanID, tracking_no: tn,
      bag: this.mode === 'sortbag' || undefined, ...(this.queue.owner || {})};
    this.latest = scanID;
    this.pending(item);
    // Older queued scans go first, so a parcel's receive lands before its
    // sort; while they cannot get through, this one waits behind them.
    if (this.queue.length) {
      await this.queue.flush(this.api, (it, a) => this.replayed(it, a));
      if (this.queue.length) {
        this.enqueue(item);
        return;
      }
    }
    const a = await this.api.post(item.path, item.body);
    if (retryable(a)) {
      this.enqueue(item);
      return;
    }
    await this.answered(item, a, false);
  }

  // reset clears the answer of the operator who logged out: the next one
  // starts on an empty screen.
  reset() {
    this.latest = '';
    this.setAnswer({scan_id: '', tracking_no: ''}, {state: 'idle', label: 'Ready', main: 'Scan a parcel', text: true});
    this.renderRecent();
  }

  pending(item) {
    this.paint(item, {state: 'idle', label: item.kind === 'sort' ? 'Sorting' : 'Receiving', main: item.tracking_no, text: true});
  }

  enqueue(item) {
    this.queue.add(item);
    const n = this.queue.length;
    this.record(item, 'queued', 'queued');
    this.paint(item, {
      state: 'queued', label: 'Queued, not sent yet', main: 'QUEUED', text: true,
      detail: `No connection. It is sent by itself when the connection is back (${n} waiting).`,
    });
    beep('queued');
  }

  // replayed is the queue's report: a queued scan got its answer.
  replayed(item, a) {
    return this.answered(item, a, true);
  }

  async answered(item, a, fromQueue) {
    const v = view(item, a);
    if (item.kind === 'sort' && a.ok && a.data && !a.data.exception && a.data.chute) await this.chuteBag(item, a.data, v);
    if (fromQueue) v.label = 'From the queue: ' + v.label;
    this.record(item, v.state, v.what);
    beep(v.sound);
    // An exception stays on screen until acknowledged, a late one from the
    // queue too, even if newer scans followed.
    if (v.state === 'bad') {
      this.line.hold(this.heldAnswer(item, v));
      return;
    }
    if (this.latest === item.scan_id) this.paint(item, v);
  }

  // chuteBag adds to a sorted parcel's answer the bag under its chute, at
  // a station whose chutes have bags; in sort-and-bag mode it also puts
  // the parcel into that bag, with a scan id made from the sort's (a
  // repeat of the same scan adds it once). A parcel that cannot go in
  // (no bag under the chute, a bag refusing it) stays sorted, and the
  // answer says why: the sort itself stands either way.
  async chuteBag(item, r, v) {
    const station = (this.queue.owner || {}).station_id;
    if (!station) return;
    const f = await this.api.get(`/api/v1/stations/${encodeURIComponent(station)}/floor`);
    if (!f.ok) return;
    const chute = (f.data.chutes || []).find((c) => c.chute === r.chute);
    const bag = chute && chute.bag;
    v.bagId = bag ? bag.bag_id : '';
    if (!item.bag) {
      if (bag && !v.detail) v.detail = `Bag ${bag.bag_id} under chute ${r.chute}`;
      return;
    }
    if (!bag) {
      v.state = 'warn';
      v.label = 'Sorted, not bagged';
      v.detail = `No bag under chute ${r.chute}: put it in the chute, it goes into the next bag bound there.`;
      v.what = `chute ${r.chute} · no bag`;
      return;
    }
    const b = await this.api.post(`/api/v1/bags/${encodeURIComponent(bag.bag_id)}/items`,
      {tracking_no: item.tracking_no, scan_id: item.scan_id + '-bag'});
    if (b.ok) {
      v.label = 'Chute and bag';
      v.detail = `In bag ${bag.bag_id} (${bag.fill.parcels + 1}/${bag.fill.max_parcels})`;
      v.what = `chute ${r.chute} → ${r.next_hop} · bag ${bag.bag_id}`;
      v.bagged = true;
      return;
    }
    v.state = 'warn';
    v.label = 'Sorted, not bagged';
    v.detail = `Bag ${bag.bag_id}: ${explain(b.error).title}`;
    v.what = `chute ${r.chute} · not bagged`;
  }

  // heldAnswer is the hold of an exception's answer (kept on the device
  // as kind 'answer').
  heldAnswer(item, v) {
    return {
      what: `${item.tracking_no} ${v.sub || v.main || ''}`.trim(),
      kind: 'answer',
      data: {item: {scan_id: item.scan_id, tracking_no: item.tracking_no}, v},
      show: () => this.setAnswer(item, {...v, held: true}),
      acked: () => {
        $('answer').dataset.held = 'false';
        $('answer-ack').hidden = true;
      },
    };
  }

  // paint shows an answer unless an exception is held on screen.
  paint(item, v) {
    if (!this.line.held) this.setAnswer(item, v);
  }

  setAnswer(item, v) {
    const box = $('answer');
    box.className = 'answer ' + v.state;
    box.dataset.state = v.state;
    box.dataset.scanId = item.scan_id;
    box.dataset.trackingNo = item.tracking_no;
    box.dataset.chute = v.chute === undefined ? '' : String(v.chute);
    box.dataset.nextHop = v.nextHop || '';
    box.dataset.code = v.code || '';
    box.dataset.bagId = v.bagId || '';
    box.dataset.bagged = v.bagged ? 'true' : 'false';
    box.dataset.held = v.held ? 'true' : 'false';
    // The tracking number rides on the label line: with scans in flight
    // and queued ones landing late, the operator sees which parcel this is.
    $('answer-label').textContent = [v.label, v.state === 'idle' ? '' : item.tracking_no].filter(Boolean).join(' · ');
    const main = $('answer-main');
    main.textContent = v.main === undefined ? '' : String(v.main);
    main.className = 'main' + (v.text ? ' text' : '');
    $('answer-sub').textContent = v.sub || '';
    $('answer-detail').textContent = v.detail || '';
    $('answer-ack').hidden = !v.held;
  }

  // record keeps the last scans on the device, newest first; a queued
  // scan's line is updated in place when it is delivered.
  record(item, state, what) {
    const list = loadRecent();
    const i = list.findIndex((r) => r.scan_id === item.scan_id);
    const entry = {scan_id: item.scan_id, kind: item.kind, tn: item.tracking_no, state, what, op: item.operator_id,
      at: i >= 0 ? list[i].at : new Date().toISOString()};
    if (i >= 0) list[i] = entry;
    else list.unshift(entry);
    localStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, RECENT_MAX)));
    this.renderRecent();
  }

  renderRecent() {
    const ol = clear($('recent'));
    // Each operator sees their own scans only.
    const me = (this.queue.owner || {}).operator_id;
    for (const r of loadRecent().filter((x) => me && x.op === me)) {
      ol.append(el('li', {class: r.state, dataset: {scanId: r.scan_id, state: r.state}},
        el('span', {class: 'time'}, hhmmss(r.at)),
        el('span', {class: 'tag'}, r.kind === 'sort' ? 'sort' : 'recv'),
        el('span', {class: 'tn'}, r.tn),
        el('span', {class: 'what'}, r.what)));
    }
  }
}

function stateWords(state) {
  return {received: 'Received', sorted: 'Sorted', bagged: 'In a bag', sealed: 'In a sealed bag', exception: 'Put aside'}[state] ||
    (state ? String(state) : 'Received');
}

function loadRecent() {
  try {
    const v = JSON.parse(localStorage.getItem(RECENT_KEY) || '[]');
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

// view turns an answer into what the screen shows.
function view(item, a) {
  if (!a.ok && a.error && a.error.code === 'parcel_departed') {
    // Not an error of the operator's: the parcel left on a handover and
    // is back in a hand. Receiving it starts a new visit.
    return {state: 'departed', sound: 'departed', label: 'Already departed', main: 'DEPARTED', text: true,
      sub: 'It left this station', detail: a.error.message || 'Receive it to start a new visit.',
      code: 'parcel_departed', what: 'departed'};
  }
  if (!a.ok) {
    const e = explain(a.error);
    return {state: 'bad', sound: 'error', label: 'Not accepted', main: e.title, text: true,
      detail: e.detail, code: a.error && a.error.code, what: (a.error && a.error.code) || 'error'};
  }
  const r = a.data || {};
  if (item.kind === 'receive') {
    if (r.duplicate) {
      return {state: 'repeat', sound: 'repeat', label: 'Repeat scan', main: 'ALREADY HERE', text: true,
        sub: stateWords(r.state), detail: 'Nothing was recorded: the parcel was received before.', code: 'duplicate', what: 'repeat'};
    }
    if (r.accepted && !r.exception) {
      return {state: 'ok', sound: 'ok', label: 'Received', main: 'RECEIVED', text: true, what: 'received'};
    }
    const code = r.exception ? r.exception.code : 'REFUSED';
    return {state: 'bad', sound: 'exception', label: 'Exception: put aside', main: 'EXCEPTION', text: true,
      sub: exceptionWords(code), detail: r.exception ? `${code}: ${r.exception.reason}` : '', code, what: code};
  }
  if (r.exception) {
    const code = r.exception.code;
    return {state: 'bad', sound: 'exception', label: 'Exception chute', main: r.chute, chute: r.chute,
      sub: exceptionWords(code), detail: `${code}: ${r.exception.reason}`, code, what: `chute ${r.chute} · ${code}`};
  }
  const degraded = Array.isArray(r.degraded) && r.degraded.length > 0;
  return {
    state: degraded ? 'warn' : 'ok', sound: 'ok', label: degraded ? 'Chute (degraded check)' : 'Chute',
    main: r.chute, chute: r.chute, nextHop: r.next_hop || '', sub: '→ ' + (r.next_hop || ''),
    detail: degraded ? 'Checked with a fallback: ' + r.degraded.map((d) => d.node).join(', ') : '',
    what: `chute ${r.chute} → ${r.next_hop}`,
  };
}
