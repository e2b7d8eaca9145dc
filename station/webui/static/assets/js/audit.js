// The audit trail of release rule changes: who, when, what changed, why.

import {unavailable} from './api.js';
import {$, el, clear, dateTime, labelCells} from './dom.js';

export class AuditView {
  constructor(ctx) {
    this.ctx = ctx;
  }

  async activate() {
    const site = this.ctx.site();
    const a = await this.ctx.api.get('/api/v1/ops/audit' + (site ? `?site=${encodeURIComponent(site)}` : ''));
    const un = $('audit-unavailable');
    const tbody = clear($('audit-table').tBodies[0]);
    if (!a.ok) {
      un.hidden = false;
      un.textContent = unavailable(a) ? 'The audit API is not on this server yet.' : (a.error && a.error.message) || 'error';
      return;
    }
    un.hidden = true;
    const entries = (a.data && a.data.entries) || [];
    if (!entries.length) tbody.append(el('tr', {}, el('td', {colspan: 6, class: 'hint'}, 'No changes yet.')));
    for (const e of entries) {
      tbody.append(el('tr', {dataset: {action: e.action, forced: String(!!e.forced)}},
        el('td', {}, dateTime(e.created_at)),
        el('td', {}, e.actor),
        el('td', {}, e.site_id),
        el('td', {}, e.action, e.forced ? [' ', el('span', {class: 'tag'}, 'forced')] : null),
        el('td', {}, change(e.before, e.after)),
        el('td', {}, e.reason || '–')));
    }
    labelCells($('audit-table'));
  }
}

// change says what differs between two rules, in a line.
export function change(before, after) {
  const b = before || {};
  const a = after || {};
  const flow = (r, k) => (r[k + '_flow'] ? `${r[k + '_flow']} v${r[k + '_version']}` : '–');
  const ratio = (r) => (r.ratio_bp === undefined ? '–' : `${(r.ratio_bp / 100).toFixed(2)} %`);
  const parts = [];
  const diff = (name, x, y) => {
    if (!before) parts.push(`${name} ${y}`);
    else if (x !== y) parts.push(`${name} ${x} → ${y}`);
  };
  diff('mode', b.mode || '–', a.mode || '–');
  diff('ratio', ratio(b), ratio(a));
  diff('stable', flow(b, 'stable'), flow(a, 'stable'));
  diff('candidate', flow(b, 'candidate'), flow(a, 'candidate'));
  if (before && b.salt !== a.salt) parts.push('new salt (buckets reshuffled)');
  return parts.join('; ') || 'no change';
}
