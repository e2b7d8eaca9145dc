// Reconciliation: a site's shadow comparisons since a time. The match rate
// over time, where mismatches first diverge, the mismatch list, and one
// mismatch drilled down: both answers side by side, the step blamed (and,
// for a step only one flow has, which flow), and both runs' waterfalls in
// one chart on one time scale.

import {unavailable} from './api.js';
import {$, el, clear, dateTime, labelCells} from './dom.js';
import {drawMatchRate, pct} from './chart.js';
import {drawWaterfalls, criticalPathText} from './waterfall.js';

const MAX_POINTS = 60;

export class ReconView {
  constructor(ctx) {
    this.ctx = ctx;
    $('recon-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.activate();
    });
  }

  async activate() {
    const site = this.ctx.site();
    const since = $('recon-since').value;
    const a = await this.ctx.api.get(`/api/v1/ops/reconciliation?site=${encodeURIComponent(site)}&since=${encodeURIComponent(since)}`);
    const un = $('recon-unavailable');
    if (!a.ok) {
      un.hidden = false;
      un.textContent = unavailable(a) ? 'The reconciliation API is not on this server yet.' : (a.error && a.error.message) || 'error';
      return;
    }
    un.hidden = true;
    this.render(a.data);
  }

  render(r) {
    const stats = clear($('recon-stats'));
    const stat = (k, v, cls) => el('div', {class: 'stat' + (cls ? ' ' + cls : '')}, el('div', {class: 'k'}, k), el('div', {class: 'v'}, v));
    const rate = r.match_rate;
    stats.dataset.comparisons = String(r.comparisons);
    stats.dataset.mismatches = String(r.mismatches);
    stats.append(
      stat('Match rate', rate === null || rate === undefined ? '–' : pct(rate), rate === null || rate === undefined ? '' : rate >= 0.999 ? 'ok' : 'bad'),
      stat('Comparisons', String(r.comparisons)),
      stat('Mismatches', String(r.mismatches)),
      stat('Dropped (budget)', String(r.drops)),
      stat('Noise (stable vs stable)', r.noise && r.noise.mismatch_rate !== null && r.noise.mismatch_rate !== undefined
        ? `${pct(r.noise.mismatch_rate)} of ${r.noise.comparisons}` : '–'));
    if (r.offline) stats.append(stat('Offline re-run', `${r.offline.mismatches} / ${r.offline.comparisons}`));

    drawMatchRate($('recon-chart'), series(r.series || []));

    const steps = clear($('recon-steps').tBodies[0]);
    const by = Object.entries(r.by_step || {}).sort((x, y) => y[1] - x[1]);
    if (!by.length) steps.append(el('tr', {}, el('td', {colspan: 2, class: 'hint'}, 'No mismatches.')));
    for (const [node, n] of by) steps.append(el('tr', {}, el('td', {class: 'mono'}, node), el('td', {class: 'num'}, String(n))));
    labelCells($('recon-steps'));

    const list = clear($('recon-list').tBodies[0]);
    const recent = r.recent_mismatches || [];
    if (!recent.length) list.append(el('tr', {}, el('td', {colspan: 5, class: 'hint'}, 'No mismatches in this period.')));
    for (const m of recent) {
      list.append(el('tr', {dataset: {id: m.id}},
        el('td', {}, dateTime(m.created_at)),
        el('td', {class: 'mono'}, m.tracking_no),
        el('td', {class: 'mono', dataset: {onlyIn: m.first_diff_only_in || ''}},
          ([m.first_diff_node, m.first_diff_key].filter(Boolean).join(' · ') || '–') +
          (m.first_diff_only_in ? ` (only in ${m.first_diff_only_in})` : '')),
        el('td', {}, m.source || ''),
        el('td', {}, el('button', {type: 'button', class: 'small', 'aria-label': `Open mismatch of ${m.tracking_no}`,
          onclick: () => this.open(m.id)}, 'Open'))));
    }
    labelCells($('recon-list'));
    $('recon-detail').hidden = true;
  }

  async open(id) {
    const a = await this.ctx.api.get(`/api/v1/ops/reconciliation/${encodeURIComponent(id)}`);
    const box = $('recon-detail');
    box.hidden = false;
    $('recon-detail-id').textContent = id;
    if (!a.ok) {
      $('recon-detail-summary').textContent = (a.error && a.error.message) || 'Not found.';
      clear($('recon-stable'));
      clear($('recon-candidate'));
      clear($('recon-waterfalls'));
      return;
    }
    const m = a.data;
    box.dataset.firstDiff = m.first_diff_node || '';
    box.dataset.onlyIn = m.first_diff_only_in || '';
    $('recon-detail-summary').textContent = `${m.tracking_no} at ${m.site_id}: the runs part ${blameText(m)}. Recorded ${dateTime(m.created_at)}.`;
    const stableName = `${m.stable_flow} v${m.stable_version}`;
    const candName = `${m.candidate_flow} v${m.candidate_version}`;
    $('recon-stable-title').textContent = `Stable: ${stableName}`;
    $('recon-candidate-title').textContent = `Candidate: ${candName}`;
    side($('recon-stable'), m.stable, m.stable_trace);
    side($('recon-candidate'), m.candidate, m.candidate_trace);
    const sNodes = nodeSet(m.stable_trace);
    const cNodes = nodeSet(m.candidate_trace);
    drawWaterfalls($('recon-waterfalls'), [
      {role: 'stable', title: `Stable: ${stableName}`, trace: m.stable_trace, highlight: m.first_diff_node, only: minus(sNodes, cNodes)},
      {role: 'candidate', title: `Candidate: ${candName}`, trace: m.candidate_trace, highlight: m.first_diff_node, only: minus(cNodes, sNodes)},
    ]);
    box.scrollIntoView({block: 'start'});
  }
}

// blameText says where a mismatch's runs part: a step both flows have and
// its output, or a step only one flow has and what it did there.
function blameText(m) {
  const node = m.first_diff_node;
  if (!node) return 'at no step the traces show';
  if (m.first_diff_only_in) {
    const stable = m.first_diff_only_in === 'stable';
    const flow = stable ? `${m.stable_flow} v${m.stable_version}` : `${m.candidate_flow} v${m.candidate_version}`;
    const n = ((stable ? m.stable_trace : m.candidate_trace) || {nodes: []}).nodes.find((x) => x.node === node) || {};
    const did = n.outcome === 'timed_out' ? 'timed out' : n.outcome || 'ran';
    return `at step ${node}, which only the ${m.first_diff_only_in} flow (${flow}) has: it ${did} there${n.error ? ` (${n.error})` : ''}`;
  }
  return `at step ${node}${m.first_diff_key ? ` (output ${m.first_diff_key})` : ''}, the first step both flows have whose result differs`;
}

function nodeSet(trace) {
  return new Set(((trace && trace.nodes) || []).map((n) => n.node));
}

function minus(a, b) {
  return new Set([...a].filter((x) => !b.has(x)));
}

function side(box, result, trace) {
  clear(box);
  const r = result || {};
  box.append(el('dl', {class: 'facts'},
    el('div', {}, el('dt', {}, 'Next hop'), el('dd', {}, r.next_hop || '–')),
    el('div', {}, el('dt', {}, 'Chute'), el('dd', {}, r.chute === undefined ? '–' : String(r.chute))),
    el('div', {}, el('dt', {}, 'Exception'), el('dd', {}, r.exception ? r.exception.code || String(r.exception) : '–'))));
  if (trace && trace.nodes) box.append(el('p', {class: 'hint'}, criticalPathText(trace)));
  else box.append(el('p', {class: 'hint'}, 'No trace stored.'));
}

// series folds per-minute counts into at most MAX_POINTS points so a week
// stays readable; a point without comparisons has no rate and is left out.
export function series(minutes) {
  if (!minutes.length) return [];
  const t0 = new Date(minutes[0].minute).getTime();
  const t1 = new Date(minutes[minutes.length - 1].minute).getTime();
  const width = Math.max(60e3, Math.ceil((t1 - t0 + 60e3) / MAX_POINTS / 60e3) * 60e3);
  const buckets = new Map();
  for (const m of minutes) {
    const t = new Date(m.minute).getTime();
    const k = t0 + Math.floor((t - t0) / width) * width;
    const b = buckets.get(k) || {t: new Date(k), n: 0, bad: 0};
    b.n += m.comparisons;
    b.bad += m.mismatches;
    buckets.set(k, b);
  }
  return [...buckets.values()].filter((b) => b.n > 0).map((b) => ({t: b.t, n: b.n, rate: (b.n - b.bad) / b.n}));
}
