// The offline queue of scans. A scan that did not reach the server is kept
// in localStorage (it survives a reload or a dead battery swap) with its
// scan id, and is sent again with the same scan id when the connection is
// back: the server's idempotency turns a repeat into the original answer,
// so a scan lands exactly once however often it is replayed.

import {retryable} from './api.js';

const KEY = 'station.queue.v1';
const MAX_SERVER_FAILURES = 5;

export class ScanQueue {
  constructor(onChange) {
    this.onChange = onChange || (() => {});
    this.flushing = null;
  }

  items() {
    try {
      const v = JSON.parse(localStorage.getItem(KEY) || '[]');
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  }

  get length() {
    return this.items().length;
  }

  save(items) {
    localStorage.setItem(KEY, JSON.stringify(items));
    this.onChange(items.length);
  }

  // add keeps one entry per scan id: queuing the same scan twice is one scan.
  add(item) {
    const items = this.items();
    if (!items.some((x) => x.scan_id === item.scan_id)) items.push({...item, queued_at: new Date().toISOString()});
    this.save(items);
  }

  remove(scanID) {
    this.save(this.items().filter((x) => x.scan_id !== scanID));
  }

  // flush sends the queue in order, one at a time, and stops at the first
  // scan that still cannot get through. onSent(item, answer) is called for
  // each scan the server answered (accepted or refused). Concurrent calls
  // share one run.
  flush(api, onSent) {
    if (this.flushing) return this.flushing;
    this.flushing = (async () => {
      try {
        for (;;) {
          const [item] = this.items();
          if (!item || !api.token) return;
          const a = await api.post(item.path, item.body);
          if (retryable(a) || a.status === 401) return;
          // A server error wrote nothing and may pass: try again later, but
          // only a few times, so one poisoned scan cannot block the rest.
          if (a.status >= 500 && (item.failures || 0) + 1 < MAX_SERVER_FAILURES) {
            this.save(this.items().map((x) => (x.scan_id === item.scan_id ? {...x, failures: (x.failures || 0) + 1} : x)));
            return;
          }
          // Answered: accepted, or refused for good (a bad code stays bad).
          this.remove(item.scan_id);
          onSent(item, a);
        }
      } finally {
        this.flushing = null;
      }
    })();
    return this.flushing;
  }
}
