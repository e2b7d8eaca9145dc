// What-if: replay the shown site's recorded window against a candidate
// chute map and/or flow version (POST /api/v1/ops/whatif, a dry run), and
// show per chute the fill over the window, actual beside candidate, the
// parcels that would move, and a CSV of the per-chute figures.

import {$, el, svg, clear, labelCells, blobLink, dateTime} from './dom.js';
import {pct} from './chart.js';
import {widthOf} from './waterfall.js';

export class WhatifView {
  constructor(ctx) {
    this.ctx = ctx;
    this.api = ctx.api;
    $('whatif-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.run();
    });
    $('whatif-load-map').addEventListener('click', () => this.loadMap());
  }

  async activate() {
    $('whatif-site').textContent = this.ctx.site();
    if (!$('whatif-to').value) {
      // The inputs hold minutes: the window ends at the next one, so the
      // sorts of this minute are in it.
      const end = new Date(Date.now() + 60e3);
      $('whatif-to').value = local(end);
      $('whatif-from').value = local(new Date(end.getTime() - 24 * 3600e3));
    }
    const flows = await this.api.get('/api/v1/flows');
    const sel = clear($('whatif-flow'));
    sel.append(el('option', {value: ''}, 'unchanged (the recorded answers)'));
    for (const f of (flows.ok && flows.data.flows) || []) sel.append(el('option', {value: `${f.name}@${f.version}`}, `${f.name} v${f.version}`));
  }

  async loadMap() {
    const a = await this.api.get(`/api/v1/stations/${encodeURIComponent(this.ctx.site())}/chutes`);
    if (!a.ok) return this.say('bad', a.error.message);
    const {next_hops, exception_chute, overflow_chute, reject_chute} = a.data;
    $('whatif-map').value = JSON.stringify({next_hops, exception_chute, overflow_chute, reject_chute}, null, 1);
  }

  say(kind, text) {
    const m = $('whatif-msg');
    m.hidden = !text;
    m.className = 'msg ' + kind;
    m.textContent = text || '';
  }

  body() {
    const b = {station: this.ctx.site(), from: new Date($('whatif-from').value).toISOString(), to: new Date($('whatif-to').value).toISOString()};
    const map = $('whatif-map').value.trim();
    if (map) b.chute_map = JSON.parse(map);
    const flow = $('whatif-flow').value;
    if (flow) {
      const [name, version] = flow.split('@');
      b.flow = {name, version: Number(version)};
    }
    if ($('whatif-swap').value.trim()) b.bag_swap = $('whatif-swap').value.trim();
    return b;
  }

  async run() {
    const view = $('whatif-view');
    let body;
    try {
      body = this.body();
    } catch (e) {
      return this.say('bad', 'The chute map is not valid JSON.');
    }
    view.dataset.run = 'running';
    this.say('', 'Replaying…');
    const [a, csv] = await Promise.all([this.api.post('/api/v1/ops/whatif', body),
      this.api.request('POST', '/api/v1/ops/whatif?format=csv', body, {as: 'blob'})]);
    if (!a.ok) {
      view.dataset.run = 'failed';
      $('whatif-result').hidden = true;
      return this.say('bad', `${a.error.message} (${a.error.code})`);
    }
    this.say('', '');
    if (csv.ok) blobLink($('whatif-csv'), csv.blob, `whatif-${body.station}.csv`);
    $('whatif-csv').hidden = !csv.ok;
    this.render(a.data);
    $('whatif-result').hidden = false;
    view.dataset.run = 'done';
  }

  render(r) {
    const stats = clear($('whatif-stats'));
    const stat = (k, v, cls) => el('div', {class: 'stat' + (cls ? ' ' + cls : '')}, el('div', {class: 'k'}, k), el('div', {class: 'v'}, v));
    const overflow = (side) => r.chutes.reduce((n, c) => n + (c.kind === 'overflow' ? c[side].parcels : 0), 0);
    stats.dataset.differences = String(r.difference_count);
    stats.append(
      stat('Parcels', String(r.parcels)),
      stat('Recorded answers', String(r.recorded)),
      stat('Rerun', String(r.rerun)),
      stat('Would move', String(r.difference_count), r.difference_count ? 'bad' : ''),
      stat('To overflow', `${overflow('actual')} → ${overflow('candidate')}`, overflow('candidate') > overflow('actual') ? 'bad' : ''));
    if (r.late) {
      // With no recorded traces of the flow (a new version, say) there is no
      // share to show: only the worst case, every step at its timeout.
      const l = r.late, path = `${l.critical_path_ms.toFixed(0)}/${l.deadline_ms.toFixed(0)} ms`;
      const [text, bad] = l.samples > 0 ? [`${pct(l.predicted_late)} · ${path}`, l.predicted_late > 0]
        : [`no recorded traces · worst case ${path}`, l.critical_past_line];
      stats.append(stat(`Late (${l.flow.name} v${l.flow.version})`, text, bad ? 'bad' : ''));
    }
    const tbody = clear($('whatif-chutes').tBodies[0]);
    const side = (f) => [el('td', {class: 'num'}, String(f.parcels)), el('td', {class: 'num'}, `${f.peak_parcels} / ${f.peak_kg.toFixed(1)} kg`),
      el('td', {class: 'num'}, String(f.bags)), el('td', {}, f.full_at ? dateTime(f.full_at) : '–'), el('td', {class: 'num'}, String(f.overflow))];
    const active = r.chutes.filter((c) => c.actual.parcels || c.candidate.parcels || c.actual.overflow || c.candidate.overflow);
    for (const c of active) {
      tbody.append(el('tr', {dataset: {chute: String(c.chute), candidateOverflow: String(c.candidate.overflow)}},
        el('td', {}, String(c.chute)), el('td', {}, c.kind), el('td', {}, c.next_hop || ''), ...side(c.actual), ...side(c.candidate)));
    }
    labelCells($('whatif-chutes'));
    drawFills($('whatif-chart'), active);

    const diffs = clear($('whatif-diffs').tBodies[0]);
    const where = (o) => `chute ${o.chute}` + (o.exception ? ` (${o.exception})` : o.next_hop ? ` (${o.next_hop})` : '');
    for (const d of r.differences.slice(0, 500)) {
      diffs.append(el('tr', {}, el('td', {class: 'mono'}, d.tracking_no), el('td', {}, dateTime(d.at)), el('td', {}, where(d.actual)), el('td', {}, where(d.candidate))));
    }
    if (!r.differences.length) diffs.append(el('tr', {}, el('td', {colspan: 4, class: 'hint'}, 'No parcel would go elsewhere.')));
    labelCells($('whatif-diffs'));
  }
}

// drawFills draws one small chart per chute: its bag's fill over the
// window (the fuller of parcels and kg against the bag limits), actual
// (grey) beside candidate (blue, dashed), full (100 %) as a red line.
function drawFills(box, chutes) {
  clear(box);
  const W = Math.min(widthOf(box), 360);
  const H = 90;
  const L = 34;
  for (const c of chutes.slice(0, 48)) {
    const n = c.actual.series.length;
    const top = Math.max(1, ...c.actual.series, ...c.candidate.series);
    const x = (i) => L + (i / Math.max(n - 1, 1)) * (W - L - 6);
    const y = (v) => 6 + (1 - v / top) * (H - 22);
    const line = (s, cls) => svg('polyline', {class: cls, points: s.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')});
    const root = svg('svg', {class: 'chart whatif-fill', viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-chute': String(c.chute),
      'aria-label': `Chute ${c.chute}: peak fill ${pct(Math.max(0, ...c.actual.series))} actual, ${pct(Math.max(0, ...c.candidate.series))} candidate`},
    svg('line', {class: 'axis', x1: L, x2: L, y1: 6, y2: H - 16}),
    svg('line', {class: 'axis', x1: L, x2: W - 6, y1: H - 16, y2: H - 16}),
    svg('line', {class: 'threshold', x1: L, x2: W - 6, y1: y(1), y2: y(1)}, svg('title', {}, 'a full bag')),
    svg('text', {x: L - 4, y: y(1) + 4, 'text-anchor': 'end'}, 'full'),
    line(c.actual.series, 'fill-actual'), line(c.candidate.series, 'fill-candidate'),
    svg('text', {x: L, y: H - 2}, `chute ${c.chute}${c.next_hop ? ' · ' + c.next_hop : ' · ' + c.kind}`));
    box.append(root);
  }
}

// local formats a date for a datetime-local input.
function local(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
