// Small DOM helpers. Text always goes in as text (textContent), never as
// HTML: everything shown comes from scans and servers.

export const $ = (id) => document.getElementById(id);

// el builds an element: el('li', {class: 'ok', dataset: {id: 1}}, 'text', child).
export function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k === 'dataset') Object.assign(n.dataset, v);
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? '' : String(v));
  }
  append(n, children);
  return n;
}

function append(n, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(n, c);
    else n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';

// svg builds an SVG element with attributes.
export function svg(tag, attrs = {}, ...children) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    n.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

export function clear(n) {
  while (n.firstChild) n.removeChild(n.firstChild);
  return n;
}

export function show(n, on = true) {
  n.hidden = !on;
  return n;
}

// msg fills a message box: kind is ok, bad, warn or info.
export function msg(box, kind, text, detail) {
  clear(box);
  box.className = 'msg ' + kind;
  box.append(document.createTextNode(text));
  if (detail) box.append(el('span', {class: 'detail'}, detail));
  box.hidden = false;
}

export function hhmmss(d) {
  const t = d instanceof Date ? d : new Date(d);
  if (Number.isNaN(t.getTime())) return '';
  return t.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false});
}

export function dateTime(d) {
  const t = d instanceof Date ? d : new Date(d);
  if (Number.isNaN(t.getTime())) return '';
  return t.toLocaleString([], {hour12: false});
}

// normalizeCode is what the server does to a tracking number or id:
// trimmed and upper-cased, so the screen shows what will be sent.
export function normalizeCode(s) {
  return String(s || '').trim().toUpperCase();
}

// plural: plural(1, 'bag') is "1 bag", plural(2, 'bag') "2 bags".
export function plural(n, word) {
  return `${n} ${word}${Number(n) === 1 ? '' : 's'}`;
}

export function grams(g) {
  if (g === undefined || g === null || g === '') return '–';
  return `${Number(g).toLocaleString()} g`;
}

// newScanID makes an idempotency key. crypto.getRandomValues works on
// plain http too (randomUUID needs a secure context, which a hall LAN
// often is not).
export function newScanID(prefix = 'w') {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${prefix}-${Date.now().toString(36)}-${hex}`;
}

// download offers a blob under a file name through a link element.
export function blobLink(a, blob, filename) {
  if (a.dataset.url) URL.revokeObjectURL(a.dataset.url);
  const url = URL.createObjectURL(blob);
  a.dataset.url = url;
  a.href = url;
  a.download = filename;
}

// ScanIDs hands out one scan id per intended action: asking again for the
// same action (the operator retries after a network failure) gives the same
// id, so the server applies it once; done() forgets it after an answer.
export class ScanIDs {
  constructor(prefix) {
    this.prefix = prefix;
    this.key = '';
    this.id = '';
  }

  for(key) {
    if (key !== this.key) {
      this.key = key;
      this.id = newScanID(this.prefix);
    }
    return this.id;
  }

  done() {
    this.key = '';
    this.id = '';
  }
}

// labelCells copies each column's header text onto its body cells
// (data-label), which the narrow-screen layout shows in front of the value.
export function labelCells(table) {
  const heads = Array.from(table.tHead ? table.tHead.rows[0].cells : [], (c) => c.textContent.trim());
  for (const row of table.tBodies[0].rows) {
    Array.from(row.cells).forEach((c, i) => {
      if (c.colSpan === 1 && heads[i] !== undefined) c.dataset.label = heads[i];
    });
  }
}

// facts fills a <dl class="facts"> with [term, value] pairs.
export function facts(dl, pairs) {
  clear(dl);
  for (const [k, v] of pairs) dl.append(el('div', {}, el('dt', {}, k), el('dd', {}, v)));
  return dl;
}
