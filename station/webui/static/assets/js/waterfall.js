// The waterfall of a sorting run, drawn as inline SVG: one row per step
// on a shared timeline, bars coloured by outcome, the critical path in red,
// and optionally one step outlined (the first difference of a mismatch).
// Two runs of one parcel (stable and candidate) are drawn in one chart on
// one time axis.

import {el, svg, clear} from './dom.js';

const ROW = 22;
const TOP = 26;
const RIGHT = 96; // room for "12.3 ms timed_out" after the longest bar

// width draws at the box's own width, so text stays at its real size on a
// phone and on a desktop; a hidden box gets a desktop width.
export function widthOf(box) {
  const w = Math.round(box.getBoundingClientRect().width);
  return w >= 300 ? w : 640;
}

// redrawOnResize draws a chart again when its box changes width (a phone
// turned, a window resized), so its text keeps its size.
const drawn = new WeakMap();
let observer = null;

export function redrawOnResize(box, width, redraw) {
  drawn.set(box, {width, redraw});
  if (!observer) {
    observer = new ResizeObserver((entries) => {
      for (const e of entries) {
        const d = drawn.get(e.target);
        const w = widthOf(e.target);
        if (d && Math.abs(w - d.width) > 4) {
          d.width = w;
          d.redraw();
        }
      }
    });
  }
  observer.observe(box);
}

export function ms(ns) {
  const v = Number(ns || 0) / 1e6;
  if (v >= 100) return `${v.toFixed(0)} ms`;
  if (v >= 10) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

// niceStep picks a tick spacing of 1, 2 or 5 times a power of ten.
export function niceStep(span, ticks) {
  const raw = span / Math.max(1, ticks);
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

// drawWaterfall replaces box's content with the trace's waterfall.
// opts.highlight names a node to outline.
export function drawWaterfall(box, trace, opts = {}) {
  drawWaterfalls(box, [{trace, highlight: opts.highlight}], {});
}

// drawWaterfalls draws several runs of one parcel (a mismatch's stable and
// candidate runs) in one chart, one block of rows each, on one time axis:
// a bar's length and place mean the same milliseconds in every block, so
// the two runs compare at a glance. Each run is {trace, title, highlight,
// only}: highlight names a node to outline, only is a set of nodes the
// other run does not have (their names are set in italics). The svg says
// its scale (data-x0, data-px-per-ms) for tests.
export function drawWaterfalls(box, runs, opts = {}) {
  clear(box);
  runs = runs.filter((r) => r.trace && (r.trace.nodes || []).length);
  if (!runs.length) {
    box.append(el('p', {class: 'hint'}, 'No steps in this trace.'));
    return;
  }
  const titled = runs.some((r) => r.title);
  const WIDTH = widthOf(box);
  const LABEL = Math.min(170, Math.round(WIDTH * 0.36));
  const total = Math.max(1, ...runs.map((r) => Math.max(Number(r.trace.duration_ns || 0),
    ...r.trace.nodes.map((n) => Number(n.start_ns || 0) + Number(n.duration_ns || 0)))));
  const plot = WIDTH - LABEL - RIGHT;
  const x = (ns) => LABEL + (Number(ns || 0) / total) * plot;
  const rows = runs.reduce((n, r) => n + r.trace.nodes.length + (titled ? 1 : 0), 0);
  const height = TOP + rows * ROW + 8;
  const label = runs.map((r) => `${r.title || `flow ${r.trace.flow} ${r.trace.version || ''}`}: ${r.trace.nodes.length} steps, ${ms(r.trace.duration_ns)}`);
  const root = svg('svg', {class: 'chart waterfall', viewBox: `0 0 ${WIDTH} ${height}`, role: 'img',
    'aria-label': `Waterfall of ${label.join('; ')}`, 'data-x0': LABEL, 'data-px-per-ms': (plot / total) * 1e6});

  // Time axis along the top, in milliseconds, with its grid through every
  // block.
  const totalMs = total / 1e6;
  const step = niceStep(totalMs, Math.max(2, Math.floor(plot / 80)));
  for (let t = 0; t <= totalMs + 1e-9; t += step) {
    const px = x(t * 1e6);
    root.append(svg('line', {class: 'grid', x1: px, x2: px, y1: TOP - 4, y2: height - 6}));
    root.append(svg('text', {x: px, y: TOP - 8, 'text-anchor': 'middle'}, `${+t.toFixed(3)} ms`));
  }
  root.append(svg('line', {class: 'axis', x1: LABEL, x2: LABEL, y1: TOP - 4, y2: height - 6}));

  let y = TOP;
  for (const r of runs) {
    const group = svg('g', {class: 'run', 'data-flow': r.trace.flow || '', 'data-role': r.role || ''});
    if (titled) {
      group.append(svg('rect', {class: 'run-head', x: 0, y: y + 1, width: WIDTH, height: ROW - 2}));
      group.append(svg('text', {class: 'run-title', x: 6, y: y + ROW / 2 + 4},
        `${r.title} · ${ms(r.trace.duration_ns)}${r.trace.outcome && r.trace.outcome !== 'ok' ? ' · ' + r.trace.outcome : ''}`));
      y += ROW;
    }
    for (const n of r.trace.nodes) {
      group.append(stepRow(n, y, x, {WIDTH, LABEL, highlight: r.highlight, only: r.only}));
      y += ROW;
    }
    root.append(group);
  }
  box.append(root);
  redrawOnResize(box, WIDTH, () => drawWaterfalls(box, runs, opts));
}

// stepRow draws one step's line: its name, its bar from start to end, and
// its time.
function stepRow(n, y, x, {WIDTH, LABEL, highlight, only}) {
  const crit = !!n.critical;
  const alone = !!(only && only.has(n.node));
  const g = svg('g', {class: 'step', 'data-node': n.node, 'data-critical': String(crit), 'data-outcome': n.outcome || '',
    'data-only': String(alone)});
  if (highlight && highlight === n.node) {
    g.append(svg('rect', {class: 'diff', x: 1, y: y + 1, width: WIDTH - 2, height: ROW - 2, rx: 3}));
  }
  // About 6.3 px a character at 11 px, more in bold: cut long names.
  const room = Math.floor((LABEL - 8) / (crit ? 7.4 : 6.3));
  const name = n.node.length > room ? n.node.slice(0, room - 1) + '…' : n.node;
  g.append(svg('title', {}, alone ? `${n.node} (only this flow has it)` : n.node));
  g.append(svg('text', {x: LABEL - 6, y: y + ROW / 2 + 4, 'text-anchor': 'end', class: [crit ? 'crit' : '', alone ? 'only' : ''].join(' ').trim()}, name));
  const start = Number(n.start_ns || 0);
  const end = start + Number(n.duration_ns || 0);
  const bx = x(start);
  const bw = Math.max(1.5, x(end) - bx);
  const cls = ['bar', n.outcome || 'ok', crit ? 'critical' : ''].join(' ').trim();
  const bar = svg('rect', {class: cls, x: bx, y: y + 4, width: bw, height: ROW - 8, rx: 2, 'data-start-ns': start, 'data-end-ns': end});
  const lines = [
    `${n.node}${n.step && n.step !== n.node ? ` (${n.step})` : ''}: ${n.outcome}`,
    `start +${ms(n.start_ns)}, took ${ms(n.duration_ns)}`,
    crit ? 'on the critical path' : `slack ${ms(n.slack_ns)}`,
  ];
  if (n.attempts > 1) lines.push(`${n.attempts} attempts`);
  if (n.depends_on && n.depends_on.length) lines.push('after ' + n.depends_on.join(', '));
  if (n.error) lines.push(n.error);
  bar.append(svg('title', {}, lines.join('\n')));
  g.append(bar);
  const text = n.outcome === 'ok' || !n.outcome ? ms(n.duration_ns) : `${ms(n.duration_ns)} ${n.outcome}`;
  g.append(svg('text', {x: Math.min(bx + bw + 4, WIDTH - RIGHT + 4), y: y + ROW / 2 + 4}, text));
  return g;
}

// criticalPathText says the critical path in words.
export function criticalPathText(trace) {
  const path = (trace && trace.critical_path) || [];
  if (!path.length) return '';
  return `Critical path (${ms(trace.critical_path_ns)} of ${ms(trace.duration_ns)}): ${path.join(' → ')}`;
}
