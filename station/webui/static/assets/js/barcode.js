// Code 128 (code set B) drawn as SVG in the page: the command sheet and the
// handover sheet print their barcodes without asking the server, so they
// also print offline. Code set B covers printable ASCII, which is every
// command, site id, trip id and handover id the terminal prints. The widths
// below are the standard's (checked against github.com/boombuler/barcode,
// which prints the bag labels, by the browser tests).

import {svg} from './dom.js';

// WIDTHS[v]: bar, space, bar, ... widths in modules of symbol value v.
const WIDTHS = [
  '212222', '222122', '222221', '121223', '121322', '131222', '122213', '122312', '132212', '221213',
  '221312', '231212', '112232', '122132', '122231', '113222', '123122', '123221', '223211', '221132',
  '221231', '213212', '223112', '312131', '311222', '321122', '321221', '312212', '322112', '322211',
  '212123', '212321', '232121', '111323', '131123', '131321', '112313', '132113', '132311', '211313',
  '231113', '231311', '112133', '112331', '132131', '113123', '113321', '133121', '313121', '211331',
  '231131', '213113', '213311', '213131', '311123', '311321', '331121', '312113', '312311', '332111',
  '314111', '221411', '431111', '111224', '111422', '121124', '121421', '141122', '141221', '112214',
  '112412', '122114', '122411', '142112', '142211', '241211', '221114', '413111', '241112', '134111',
  '111242', '121142', '121241', '114212', '124112', '124211', '411212', '421112', '421211', '212141',
  '214121', '412121', '111143', '111341', '131141', '114113', '114311', '411113', '411311', '113141',
  '114131', '311141', '411131', '211412', '211214', '211232', '2331112',
];
const START_B = 104;
const STOP = 106;
const QUIET = 10; // modules of white on each side

// code128Modules returns the symbol as a string of 1 (bar) and 0 (space)
// modules, without the quiet zones. Only printable ASCII can be encoded.
export function code128Modules(text) {
  const values = [START_B];
  for (const ch of String(text)) {
    const c = ch.codePointAt(0);
    if (c < 32 || c > 126) throw new Error(`code 128 B cannot encode ${JSON.stringify(ch)}`);
    values.push(c - 32);
  }
  let sum = START_B;
  for (let i = 1; i < values.length; i++) sum += i * values[i];
  values.push(sum % 103, STOP);
  let out = '';
  for (const v of values) {
    let bar = true;
    for (const w of WIDTHS[v]) {
      out += (bar ? '1' : '0').repeat(Number(w));
      bar = !bar;
    }
  }
  return out;
}

// code128 draws text as an SVG barcode with the text under it.
export function code128(text, {height = 60, caption = text} = {}) {
  const mods = code128Modules(text);
  const width = mods.length + 2 * QUIET;
  const textH = caption ? 14 : 0;
  const root = svg('svg', {class: 'barcode', viewBox: `0 0 ${width} ${height + textH}`, role: 'img',
    'aria-label': `Barcode ${text}`, 'data-code': text, 'data-modules': mods,});
  root.append(svg('rect', {x: 0, y: 0, width, height: height + textH, fill: '#fff'}));
  let x = 0;
  while (x < mods.length) {
    if (mods[x] !== '1') {
      x++;
      continue;
    }
    let w = 1;
    while (mods[x + w] === '1') w++;
    root.append(svg('rect', {x: QUIET + x, y: 0, width: w, height, fill: '#000'}));
    x += w;
  }
  if (caption) {
    root.append(svg('text', {x: width / 2, y: height + textH - 2, 'text-anchor': 'middle', 'font-size': 12,
      'font-family': 'monospace'}, caption));
  }
  return root;
}
