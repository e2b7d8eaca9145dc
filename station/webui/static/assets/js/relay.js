// The tracking relay panel: how much is waiting, how old the oldest event
// is, and the dead letters with a re-drive button each. It refreshes itself
// while it is on screen.

import {unavailable} from './api.js';
import {$, el, clear, msg, dateTime, hhmmss, labelCells} from './dom.js';

const REFRESH_MS = 5000;

export class RelayView {
  constructor(ctx) {
    this.ctx = ctx;
    this.timer = 0;
    $('relay-refresh').addEventListener('click', () => this.load());
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
      stat('Dead letters', String(s.dead), s.dead > 0 ? 'bad' : 'ok'));
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
