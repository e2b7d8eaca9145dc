// The trace of a parcel's latest sort at the operator's station, as a
// waterfall with the critical path highlighted.

import {$, el, clear, msg, normalizeCode, dateTime, facts} from './dom.js';
import {explain} from './words.js';
import {drawWaterfall, criticalPathText, ms} from './waterfall.js';

export class TraceView {
  constructor(ctx) {
    this.ctx = ctx;
    $('trace-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.lookup(normalizeCode($('trace-tn').value));
    });
  }

  activate() {
    $('trace-tn').focus();
  }

  async lookup(tn) {
    const box = $('trace-msg');
    const out = $('trace-result');
    if (!tn) return;
    const a = await this.ctx.api.get(`/api/v1/sort/${encodeURIComponent(tn)}?trace=1`);
    if (!a.ok) {
      out.hidden = true;
      const e = a.status === 404 ? {title: `No sort of ${tn} at this station.`, detail: ''} : explain(a.error);
      msg(box, 'bad', e.title, e.detail);
      return;
    }
    box.hidden = true;
    const r = a.data;
    const t = r.trace;
    facts($('trace-facts'), [
      ['Parcel', r.tracking_no],
      ['Answer', r.exception ? `chute ${r.chute} · ${r.exception.code}` : `chute ${r.chute} → ${r.next_hop}`],
      ['Flow', `${r.flow} v${r.flow_version}`],
      ['Took', t ? ms(t.duration_ns) : '–'],
      ['Critical path', t ? ms(t.critical_path_ns) : '–'],
      ['Sorted', dateTime(r.sorted_at)],
    ]);
    out.hidden = false;
    const chart = $('trace-chart');
    if (!t || !t.nodes) {
      clear(chart).append(el('p', {class: 'hint'}, 'No trace was stored for this sort.'));
      $('trace-path').textContent = '';
      return;
    }
    drawWaterfall(chart, t);
    $('trace-path').textContent = criticalPathText(t) + (t.mode ? ` · ${t.mode} run` : '');
  }
}
