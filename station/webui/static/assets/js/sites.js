// All sites at a glance: each site's release mode, ramp step, shadow match
// rate and last change, one row per site.

import {unavailable} from './api.js';
import {$, el, clear, dateTime, labelCells} from './dom.js';
import {pct} from './chart.js';

export class SitesView {
  constructor(ctx) {
    this.ctx = ctx;
  }

  async activate() {
    const a = await this.ctx.api.get('/api/v1/ops/releases');
    const un = $('sites-unavailable');
    const tbody = clear($('sites-table').tBodies[0]);
    if (!a.ok) {
      un.hidden = false;
      un.textContent = unavailable(a) ? 'The sites overview is not on this server yet.' : (a.error && a.error.message) || 'error';
      return;
    }
    un.hidden = true;
    for (const s of (a.data && a.data.sites) || []) {
      const step = s.step ? `${s.step} of ${s.steps} (${s.ramp_state.replace('_', ' ')})` : '–';
      tbody.append(el('tr', {dataset: {site: s.site_id, mode: s.mode, rampState: s.ramp_state || ''}},
        el('td', {}, s.site_id),
        el('td', {}, s.mode),
        el('td', {class: 'num'}, `${(s.ratio_bp / 100).toFixed(2)} %`),
        el('td', {}, step),
        el('td', {}, s.candidate || '–'),
        el('td', {class: 'num'}, s.match_rate == null ? '–' : `${pct(s.match_rate)} (${s.comparisons})`),
        el('td', {}, s.last_change ? `${s.last_action} by ${s.last_change_by}, ${dateTime(s.last_change)}` : '–')));
    }
    labelCells($('sites-table'));
  }
}
