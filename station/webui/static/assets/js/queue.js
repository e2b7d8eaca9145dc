// The offline queue of scans. A scan that did not reach the server is kept
// in localStorage (it survives a reload or a dead battery swap) with its
// scan id, and is sent again with the same scan id when the connection is
// back: the server's idempotency turns a repeat into the original answer,
// so a scan lands exactly once however often it is replayed.
//
// A queued scan belongs to the operator and station that scanned it. The
// server takes the operator and the station from the bearer token, so a
// scan sent with another operator's token would be recorded as theirs, at
// their station (a receive of SG-H01 turned into a WRONG_STATION at
// SG-H02). Every entry therefore carries its owner, and only the owner's
// own session ever sends it: another operator logging in on the same
// terminal sees it as pending for its owner and cannot send it. It goes
// out when its owner logs in here again.

import {retryable} from './api.js';

const KEY = 'station.queue.v2';
// Before entries carried their owner they were kept here; see adoptLegacy.
const LEGACY_KEY = 'station.queue.v1';
const MAX_SERVER_FAILURES = 5;

// ownerOf names the operator of a session as the queue keeps it.
export function ownerOf(operator) {
  return operator ? {operator_id: operator.id, station_id: operator.station_id} : null;
}

function owns(owner, item) {
  return !!owner && !!item.operator_id && item.operator_id === owner.operator_id && item.station_id === owner.station_id;
}

export class ScanQueue {
  // onChange(queue) hears every change of the stored queue or its owner.
  constructor(onChange) {
    this.onChange = onChange || (() => {});
    this.flushing = null;
    this.flushes = 0; // finished flush runs, for the page's data-flushes
    this.owner = null;
  }

  // setOwner names the operator whose scans this terminal may send now (the
  // one logged in), or nobody (null).
  setOwner(owner) {
    this.owner = owner;
    this.onChange(this);
  }

  all() {
    try {
      const v = JSON.parse(localStorage.getItem(KEY) || '[]');
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  }

  // mine: the queued scans of the operator logged in, oldest first.
  mine() {
    return this.all().filter((x) => owns(this.owner, x));
  }

  // waiting lists the other owners' queued scans: [{operator_id,
  // station_id, count}], an entry without an owner (see adoptLegacy) under
  // operator_id ''.
  waiting() {
    const by = new Map();
    for (const x of this.all()) {
      if (owns(this.owner, x)) continue;
      const k = `${x.operator_id || ''}@${x.station_id || ''}`;
      const w = by.get(k) || {operator_id: x.operator_id || '', station_id: x.station_id || '', count: 0};
      w.count++;
      by.set(k, w);
    }
    return [...by.values()];
  }

  // length counts the scans of the operator logged in: the ones this
  // session sends and that its new scans wait behind.
  get length() {
    return this.mine().length;
  }

  save(items) {
    localStorage.setItem(KEY, JSON.stringify(items));
    this.onChange(this);
  }

  // add queues a scan. It belongs to the operator it names (the one who
  // scanned it, even if they logged out while it was in flight), else to
  // the operator logged in. One entry per scan id: queuing the same scan
  // twice is one scan.
  add(item) {
    const owner = item.operator_id ? {operator_id: item.operator_id, station_id: item.station_id} : this.owner;
    if (!owner) throw new Error('queue: a scan without an operator');
    const items = this.all();
    if (!items.some((x) => x.scan_id === item.scan_id)) {
      items.push({...item, ...owner, queued_at: new Date().toISOString()});
    }
    this.save(items);
  }

  remove(scanID) {
    this.save(this.all().filter((x) => x.scan_id !== scanID));
  }

  // adoptLegacy moves entries of the queue kept before owners were
  // recorded. They were scanned by the session this terminal still holds,
  // if it holds one (owner); without it their owner is unknown and they
  // are kept, shown and never sent, rather than sent as whoever logs in.
  adoptLegacy(owner) {
    let old;
    try {
      old = JSON.parse(localStorage.getItem(LEGACY_KEY) || '[]');
    } catch {
      old = [];
    }
    if (!Array.isArray(old) || !old.length) {
      localStorage.removeItem(LEGACY_KEY);
      return;
    }
    const items = this.all();
    for (const x of old) {
      if (!items.some((y) => y.scan_id === x.scan_id)) items.push({...x, ...(owner || {operator_id: '', station_id: ''})});
    }
    localStorage.removeItem(LEGACY_KEY);
    this.save(items);
  }

  // flush sends the logged-in operator's scans in order, one at a time, and
  // stops at the first scan that still cannot get through. onSent(item,
  // answer) is called for each scan the server answered (accepted or
  // refused). Concurrent calls share one run. Before each send it checks
  // that the session is still the scan's owner's: a logout and another
  // login may happen while a send is in flight.
  flush(api, onSent) {
    // The bookkeeping runs in .finally, always after this assignment: in
    // the async function's own finally it would run first when there is
    // nothing to send, and leave the queue flushing for good.
    if (!this.flushing) {
      this.flushing = this.send(api, onSent).finally(() => {
        this.flushing = null;
        this.flushes++;
        this.onChange(this);
      });
    }
    return this.flushing;
  }

  async send(api, onSent) {
    for (;;) {
      const [item] = this.mine();
      if (!item || !api.token || !owns(ownerOf(api.session && api.session.operator), item)) return;
      const a = await api.post(item.path, item.body);
      if (retryable(a) || a.status === 401) return;
      // A server error wrote nothing and may pass: try again later, but
      // only a few times, so one poisoned scan cannot block the rest.
      if (a.status >= 500 && (item.failures || 0) + 1 < MAX_SERVER_FAILURES) {
        this.save(this.all().map((x) => (x.scan_id === item.scan_id ? {...x, failures: (x.failures || 0) + 1} : x)));
        return;
      }
      // Answered: accepted, or refused for good (a bad code stays bad).
      this.remove(item.scan_id);
      // Its answer is shown only to its owner, still logged in.
      if (owns(this.owner, item)) onSent(item, a);
    }
  }
}
