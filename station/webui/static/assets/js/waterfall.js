// The waterfall of one sorting run, drawn as inline SVG: one row per step
// on a shared timeline, bars coloured by outcome, the critical path in red,
// and optionally one step outlined (the first difference of a mismatch).

import {el, svg, clear} from './dom.js';

const ROW = 22;
const TOP = 26;
const RIGHT = 70;

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
  clear(box);
  const nodes = (trace && trace.nodes) || [];
  if (!nodes.length) {
    box.append(el('p', {class: 'hint'}, 'No steps in this trace.'));
    return;
  }
  const WIDTH = widthOf(box);
  const LABEL = Math.min(170, Math.round(WIDTH * 0.36));
  const total = Math.max(Number(trace.duration_ns || 0),
    ...nodes.map((n) => Number(n.start_ns || 0) + Number(n.duration_ns || 0)), 1);
  const plot = WIDTH - LABEL - RIGHT;
  const x = (ns) => LABEL + (Number(ns || 0) / total) * plot;
  const height = TOP + nodes.length * ROW + 8;
  const root = svg('svg', {class: 'chart waterfall', viewBox: `0 0 ${WIDTH} ${height}`, role: 'img',
    'aria-label': `Waterfall of flow ${trace.flow} ${trace.version || ''}: ${nodes.length} steps, ${ms(trace.duration_ns)}`});

  // Time axis along the top, in milliseconds.
  const totalMs = total / 1e6;
  const step = niceStep(totalMs, Math.max(2, Math.floor(plot / 80)));
  for (let t = 0; t <= totalMs + 1e-9; t += step) {
    const px = x(t * 1e6);
    root.append(svg('line', {class: 'grid', x1: px, x2: px, y1: TOP - 4, y2: height - 6}));
    root.append(svg('text', {x: px, y: TOP - 8, 'text-anchor': 'middle'}, `${+t.toFixed(3)} ms`));
  }
  root.append(svg('line', {class: 'axis', x1: LABEL, x2: LABEL, y1: TOP - 4, y2: height - 6}));

  nodes.forEach((n, i) => {
    const y = TOP + i * ROW;
    const crit = !!n.critical;
    const g = svg('g', {class: 'step', 'data-node': n.node, 'data-critical': String(crit), 'data-outcome': n.outcome || ''});
    if (opts.highlight && opts.highlight === n.node) {
      g.append(svg('rect', {class: 'diff', x: 1, y: y + 1, width: WIDTH - 2, height: ROW - 2, rx: 3}));
    }
    // About 6.3 px a character at 11 px, more in bold: cut long names.
    const room = Math.floor((LABEL - 8) / (crit ? 7.4 : 6.3));
    const name = n.node.length > room ? n.node.slice(0, room - 1) + '…' : n.node;
    g.append(svg('title', {}, n.node));
    g.append(svg('text', {x: LABEL - 6, y: y + ROW / 2 + 4, 'text-anchor': 'end', class: crit ? 'crit' : ''}, name));
    const bx = x(n.start_ns);
    const bw = Math.max(1.5, x(Number(n.start_ns || 0) + Number(n.duration_ns || 0)) - bx);
    const cls = ['bar', n.outcome || 'ok', crit ? 'critical' : ''].join(' ').trim();
    const bar = svg('rect', {class: cls, x: bx, y: y + 4, width: bw, height: ROW - 8, rx: 2});
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
    const label = n.outcome === 'ok' || !n.outcome ? ms(n.duration_ns) : `${ms(n.duration_ns)} ${n.outcome}`;
    g.append(svg('text', {x: Math.min(bx + bw + 4, WIDTH - RIGHT + 4), y: y + ROW / 2 + 4}, label));
    root.append(g);
  });
  box.append(root);
  redrawOnResize(box, WIDTH, () => drawWaterfall(box, trace, opts));
}

// criticalPathText says the critical path in words.
export function criticalPathText(trace) {
  const path = (trace && trace.critical_path) || [];
  if (!path.length) return '';
  return `Critical path (${ms(trace.critical_path_ns)} of ${ms(trace.duration_ns)}): ${path.join(' → ')}`;
}
