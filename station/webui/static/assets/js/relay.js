// The tracking relay panel: how much is waiting, how old the oldest event
// is, the pending events that failed with their last error ("retry now"),
// and the dead letters with a re-drive button each and one for all. Every
// action is audited with the reason typed in the panel. It refreshes
// itself while it is on screen.

import {unavailable} from './api.js';
import {$, el, clear, msg, dateTime, hhmmss, labelCells} from './dom.js';

const REFRESH_MS = 5000;

export class RelayView {
  constructor(ctx) {
    this.ctx = ctx;
    this.timer = 0;
    $('relay-refresh').addEventListener('click', () => this.load());
    $('relay-retry-now').addEventListener('click', () => this.bulk('/api/v1/ops/outbox/pending/retry', null,
      (d) => `${d.retried} pending event(s) will be sent now.`));
    $('relay-redrive-all').addEventListener('click', () => this.bulk('/api/v1/ops/outbox/dead/retry', null,
      (d) => `${d.redriven} dead letter(s) are pending again.`));
  }

  // bulk posts an audited outbox action (ids null: every eligible event).
  async bulk(path, ids, said) {
    const body = {reason: $('relay-reason').value.trim()};
    if (ids) body.ids = ids;
    const a = await this.ctx.api.post(path, body);
    const box = $('relay-msg');
    if (!a.ok) {
      msg(box, 'bad', (a.error && a.error.message) || 'The action failed.', a.error && a.error.code);
      return;
    }
    msg(box, 'ok', said(a.data));
    this.load();
  }

  activate() {
    $('relay-msg').hidden = true;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.load(), REFRESH_MS);
    return this.load();
  }

  deactivate() {
    clearInterval(this.timer);
    this.timer = 0;
  }

  async load() {
    const api = this.ctx.api;
    const [stats, dead] = await Promise.all([api.get('/api/v1/ops/outbox'), api.get('/api/v1/ops/outbox/dead?limit=100')]);
    const un = $('relay-unavailable');
    if (!stats.ok) {
      un.hidden = false;
      un.textContent = unavailable(stats) ? 'The relay API is not on this server yet.' : (stats.error && stats.error.message) || 'error';
      return;
    }
    un.hidden = true;
    const s = stats.data;
    const box = clear($('relay-stats'));
    box.dataset.pending = String(s.pending);
    box.dataset.dead = String(s.dead);
    const stat = (k, v, cls) => el('div', {class: 'stat' + (cls ? ' ' + cls : '')}, el('div', {class: 'k'}, k), el('div', {class: 'v'}, v));
    box.append(
      stat('Pending', String(s.pending)),
      stat('Oldest pending', s.pending ? age(s.oldest_pending_age_seconds) : '–', s.oldest_pending_age_seconds > 300 ? 'bad' : ''),
      stat('Failing', String(s.failing || 0), s.failing > 0 ? 'bad' : ''),
      stat('Dead letters', String(s.dead), s.dead > 0 ? 'bad' : 'ok'));
    const fbody = clear($('relay-failing').tBodies[0]);
    const failing = s.failing_events || [];
    if (!failing.length) fbody.append(el('tr', {}, el('td', {colspan: 8, class: 'hint'}, 'No failing events.')));
    for (const e of failing) {
      fbody.append(el('tr', {dataset: {id: String(e.id)}},
        el('td', {class: 'num'}, String(e.id)),
        el('td', {class: 'mono'}, e.tracking_no),
        el('td', {}, e.type),
        el('td', {}, e.station_id),
        el('td', {class: 'num'}, String(e.attempts)),
        el('td', {}, dateTime(e.next_attempt_at)),
        el('td', {}, e.last_error || ''),
        el('td', {}, el('button', {type: 'button', class: 'small', 'aria-label': `Retry event ${e.id} now`,
          onclick: () => this.bulk('/api/v1/ops/outbox/pending/retry', [e.id],
            (d) => d.retried ? `Event ${e.id} will be sent now.` : `Event ${e.id} was not waiting; nothing changed.`)}, 'Retry now'))));
    }
    labelCells($('relay-failing'));
    $('relay-updated').textContent = 'updated ' + hhmmss(new Date());
    const tbody = clear($('relay-dead').tBodies[0]);
    const events = dead.ok ? dead.data.events || [] : [];
    if (!events.length) tbody.append(el('tr', {}, el('td', {colspan: 8, class: 'hint'}, 'No dead letters.')));
    for (const e of events) {
      tbody.append(el('tr', {dataset: {id: String(e.id)}},
        el('td', {class: 'num'}, String(e.id)),
        el('td', {class: 'mono'}, e.tracking_no),
        el('td', {}, e.type),
        el('td', {}, e.station_id),
        el('td', {}, dateTime(e.occurred_at)),
        el('td', {class: 'num'}, String(e.attempts)),
        el('td', {}, e.last_error || ''),
        el('td', {}, el('button', {type: 'button', class: 'small', 'aria-label': `Re-drive event ${e.id}`,
          onclick: () => this.retry(e.id)}, 'Re-drive'))));
    }
    labelCells($('relay-dead'));
  }

  async retry(id) {
    const a = await this.ctx.api.post(`/api/v1/ops/outbox/dead/${id}/retry`);
    const box = $('relay-msg');
    if (!a.ok) {
      msg(box, 'bad', (a.error && a.error.message) || 'Re-drive failed.', a.error && a.error.code);
      return;
    }
    msg(box, a.data.redriven ? 'ok' : 'info', a.data.redriven
      ? `Event ${id} (${a.data.event.type} of ${a.data.event.tracking_no}) is pending again.`
      : `Event ${id} was no longer dead (${a.data.event.status}); nothing changed.`);
    this.load();
  }
}

function age(seconds) {
  const s = Math.round(Number(seconds || 0));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
