// The terminal's scan language: the command barcodes an operator scans
// instead of touching the screen. A scanned code is a command when it is
// one of the words below (or W and a weight); anything else is data for
// the screen in front of the operator (a tracking number, a next hop, a bag
// or handover id, a trip id). Commands win: no tracking number, site id,
// trip id or container-service bag id is one of these words.
//
// Modes are the screens a code switches to. A new mode (a "bind chute"
// screen, say) is one more entry in MODES and a screen object with
// activate, focusTarget and scan (see terminal.js); nothing else changes.

import {$, el, clear, msg} from './dom.js';
import {code128} from './barcode.js';

// MODES: scanned code → the screen it opens.
export const MODES = {
  RECEIVE: 'receive',
  SORT: 'sort',
  BAG: 'bag',
  HANDOVER: 'handover',
  SORTBAG: 'sortbag', // sort, then into the bag under the parcel's chute, in one scan
  BIND: 'bind', // scan a chute label, then a bag: the bag hangs under that chute
};

// ACTIONS: the commands a screen acts on, with what they do, for the
// printed sheet and the README.
export const ACTIONS = {
  ACK: 'Acknowledge the exception on screen; the scans waiting behind it go on',
  SEAL: 'Bag: seal the open bag (with the weight scanned as W…)',
  DONE: 'Bag or handover: finished with this one, back to the start',
  CLOSE: 'Handover: close it; scan CLOSE again to confirm, the truck leaves',
  CANCEL: 'Cancel what is being confirmed (a close) or the weight given',
};

// WEIGHT is a scale's reading as a code: W and whole grams, e.g. W1250.
const WEIGHT = /^W(\d{1,7})$/;

// parse names the command a code is, or null for data:
// {kind: 'mode', view}, {kind: 'action', name} or {kind: 'weight', grams}.
export function parse(code) {
  if (Object.hasOwn(MODES, code)) return {kind: 'mode', view: MODES[code], name: code};
  if (Object.hasOwn(ACTIONS, code)) return {kind: 'action', name: code};
  const w = WEIGHT.exec(code);
  if (w) return {kind: 'weight', grams: Number(w[1]), name: 'W'};
  return null;
}

// renderSheet fills the printable command sheet: one barcode per command,
// with a few weights for a terminal without a scale.
export function renderSheet(box) {
  clear(box);
  const card = (code, what) => el('figure', {class: 'code-card', dataset: {code}},
    code128(code, {height: 48}), el('figcaption', {}, el('strong', {}, code), ' ', what));
  box.append(el('h3', {}, 'Screens'));
  const modes = el('div', {class: 'code-grid'});
  const words = {sortbag: 'sort and bag', bind: 'bind a bag to a chute'};
  for (const code of Object.keys(MODES)) modes.append(card(code, `open the ${words[MODES[code]] || MODES[code]} screen`));
  box.append(modes);
  box.append(el('h3', {}, 'Actions'));
  const actions = el('div', {class: 'code-grid'});
  for (const [code, what] of Object.entries(ACTIONS)) actions.append(card(code, what));
  box.append(actions);
  box.append(el('h3', {}, 'Weights (a scale types W and grams)'));
  const weights = el('div', {class: 'code-grid'});
  for (const g of [500, 1000, 2000, 5000, 10000]) weights.append(card('W' + g, `${g} g`));
  box.append(weights);
}

// CodesScreen shows the sheet, to print and hang at the station.
export class CodesScreen {
  constructor() {
    this.drawn = false;
    $('codes-print').addEventListener('click', () => printSheet('codes'));
  }

  activate() {
    if (!this.drawn) renderSheet($('codes-sheet'));
    this.drawn = true;
  }

  focusTarget() {
    return $('codes-scan');
  }

  // scan: on this screen only screen codes (handled by the scan line)
  // mean something.
  async scan(code) {
    msg($('codes-msg'), 'warn', `${code}: scan a screen code to start work`, 'RECEIVE, SORT, BAG or HANDOVER.');
  }
}

// printSheet prints one part of the page (the stylesheet's @media print
// shows only body[data-print]'s part).
export function printSheet(part) {
  document.body.dataset.print = part;
  const done = () => {
    delete document.body.dataset.print;
    window.removeEventListener('afterprint', done);
  };
  window.addEventListener('afterprint', done);
  window.print();
}
