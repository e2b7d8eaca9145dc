// The match-rate chart: a line over time in inline SVG, the guard's
// threshold dashed, points under it in red.

import {el, svg, clear} from './dom.js';
import {niceStep, widthOf, redrawOnResize} from './waterfall.js';

const H = 220;
const L = 56;
const R = 24;
const T = 12;
const B = 28;

// drawMatchRate draws points [{t: Date, rate: 0..1, n: comparisons}].
export function drawMatchRate(box, points, {threshold = 0.999} = {}) {
  clear(box);
  const pts = points.filter((p) => p.t instanceof Date && !Number.isNaN(p.t.getTime()) && Number.isFinite(p.rate))
    .sort((a, b) => a.t - b.t);
  if (!pts.length) {
    box.append(el('p', {class: 'hint'}, 'No comparisons in this period.'));
    return;
  }
  const minRate = Math.min(threshold, ...pts.map((p) => p.rate));
  // Zoom on the interesting band: a match rate lives near 100 %.
  let lo = Math.max(0, Math.floor((minRate - (1 - minRate) * 0.5) * 1000) / 1000);
  if (1 - lo < 0.002) lo = 0.998;
  const W = widthOf(box);
  const t0 = pts[0].t.getTime();
  const t1 = Math.max(pts[pts.length - 1].t.getTime(), t0 + 60_000);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (r) => T + ((1 - r) / (1 - lo)) * (H - T - B);

  const root = svg('svg', {class: 'chart matchrate', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `Match rate from ${pct(pts[0].rate)} to ${pct(pts[pts.length - 1].rate)} over ${pts.length} points`});
  const ystep = niceStep((1 - lo) * 100, 4) / 100;
  for (let r = 1; r >= lo - 1e-9; r -= ystep) {
    root.append(svg('line', {class: 'grid', x1: L, x2: W - R, y1: y(r), y2: y(r)}));
    root.append(svg('text', {x: L - 4, y: y(r) + 4, 'text-anchor': 'end'}, pct(r)));
  }
  const tstep = niceTime(t1 - t0, Math.max(2, Math.floor((W - L - R) / 70)));
  for (let t = Math.ceil(t0 / tstep) * tstep; t <= t1; t += tstep) {
    root.append(svg('line', {class: 'grid', x1: x(t), x2: x(t), y1: T, y2: H - B}));
    root.append(svg('text', {x: x(t), y: H - B + 16, 'text-anchor': 'middle'}, clock(new Date(t), t1 - t0)));
  }
  root.append(svg('line', {class: 'axis', x1: L, x2: L, y1: T, y2: H - B}));
  root.append(svg('line', {class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B}));
  root.append(svg('line', {class: 'threshold', x1: L, x2: W - R, y1: y(threshold), y2: y(threshold)},
    svg('title', {}, `guard threshold ${pct(threshold)}`)));
  root.append(svg('polyline', {class: 'line', points: pts.map((p) => `${x(p.t.getTime()).toFixed(1)},${y(p.rate).toFixed(1)}`).join(' ')}));
  for (const p of pts) {
    root.append(svg('circle', {class: 'dot' + (p.rate < threshold ? ' low' : ''), cx: x(p.t.getTime()), cy: y(p.rate), r: 3.5},
      svg('title', {}, `${p.t.toLocaleString([], {hour12: false})}: ${pct(p.rate)}${p.n ? ` of ${p.n} comparisons` : ''}`)));
  }
  box.append(root);
  redrawOnResize(box, W, () => drawMatchRate(box, points, {threshold}));
}

export function pct(r) {
  const v = r * 100;
  return v === 100 ? '100 %' : `${v.toFixed(v >= 99 ? 2 : 1)} %`;
}

function niceTime(span, ticks) {
  const steps = [60e3, 5 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3];
  for (const s of steps) if (span / s <= ticks) return s;
  return 86400e3 * Math.ceil(span / 86400e3 / ticks);
}

function clock(d, span) {
  if (span > 2 * 86400e3) return d.toLocaleDateString([], {month: 'short', day: 'numeric'});
  return d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', hour12: false});
}
