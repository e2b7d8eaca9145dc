// The scan line: every code a scanner (or a person) types into a scan box
// goes through here, one at a time and in order.
//
// - Enter and Tab both end a code: scanners configured to send Tab would
//   otherwise move the focus and glue the next code onto something else.
// - A code is handled only when the one before it is finished, so codes
//   are never reordered (a receive lands before its sort).
// - An exception or a refusal holds the line: it stays on screen until the
//   operator acknowledges it (scans ACK, or presses Enter on an empty box),
//   and the codes scanned meanwhile wait, in order, behind it. Nothing is
//   dropped and nothing paints over the exception.
// - Each waiting code goes to the screen it was scanned for (the one on
//   screen then, or the one a screen code before it opens), even if a tab
//   is touched meanwhile.
// - The held exceptions and the codes behind them belong to the operator
//   who scanned them, like the offline queue: they are kept on the device
//   (a reload or a logout loses none) and come back only to that operator.

import {$, el, clear, msg, normalizeCode} from './dom.js';
import {parse} from './commands.js';

const KEY = 'station.scanline.v1';

export class ScanLine {
  // screen() is the screen in front of the operator; go(view) switches
  // screens (a mode code); focus() puts the caret back into the scan box.
  // view() names the screen in front of the operator.
  constructor({screen, view, go, focus}) {
    this.screen = screen;
    this.view = view;
    this.go = go;
    this.focus = focus;
    this.waiting = []; // [{code, view}] not handled yet, oldest first
    this.holds = []; // [{show, acked, what, kind, data}]: the first is on screen
    this.kinds = {}; // kind → data → hold, to bring kept holds back
    this.owner = null;
    this.busy = false;
    this.handled = 0; // codes handled, for the page's data-handled
  }

  // kind names a sort of hold that is kept on the device: rebuild(data)
  // makes it again from its data.
  kind(name, rebuild) {
    this.kinds[name] = rebuild;
  }

  // setOwner switches to the operator logged in (or nobody): what the one
  // before left stays kept for them, and this one's comes back.
  setOwner(owner) {
    this.owner = owner;
    this.waiting = [];
    this.holds = [];
    const mine = owner ? (loadKept()[keyOf(owner)] || {}) : {};
    for (const h of mine.holds || []) {
      const rebuild = this.kinds[h.kind];
      if (rebuild) this.holds.push({...rebuild(h.data), kind: h.kind, data: h.data});
    }
    this.waiting = (mine.waiting || []).filter((w) => w && w.code);
    if (this.held) this.holds[0].show();
    this.render();
    this.pump();
  }

  // keep writes the operator's holds and waiting codes to the device.
  keep() {
    if (!this.owner) return;
    const all = loadKept();
    const holds = this.holds.filter((h) => h.kind).map((h) => ({kind: h.kind, data: h.data}));
    if (holds.length || this.waiting.length) all[keyOf(this.owner)] = {holds, waiting: this.waiting};
    else delete all[keyOf(this.owner)];
    try {
      localStorage.setItem(KEY, JSON.stringify(all));
    } catch {
      // storage full or off: the line still works, in memory
    }
  }

  get held() {
    return this.holds.length > 0;
  }

  // attach makes input a scan box of this line.
  attach(input) {
    input.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Tab' || ev.shiftKey || ev.altKey || ev.ctrlKey || ev.metaKey) return;
      // Tab on an empty box moves on as usual (keyboard users); with a
      // code in it, it ends the code like Enter.
      if (!input.value.trim()) return;
      ev.preventDefault();
      this.take(input);
    });
    input.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.take(input);
    });
  }

  take(input) {
    const raw = input.value;
    input.value = '';
    this.push(raw);
  }

  // push hands one scanned code to the line.
  push(raw) {
    const code = normalizeCode(raw);
    if (!code || code === 'ACK') {
      // Enter on an empty box, or ACK: acknowledge, never queued (it is
      // what the queue waits for).
      this.ack();
      return;
    }
    // The screen this code is for: the one a screen code waiting before it
    // opens, else the one on screen.
    let view = this.view();
    for (const w of this.waiting) {
      const c = parse(w.code);
      view = c && c.kind === 'mode' ? c.view : w.view;
    }
    this.waiting.push({code, view});
    this.keep();
    this.render();
    this.pump();
  }

  async pump() {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.waiting.length && !this.held) {
        const {code, view} = this.waiting[0];
        // Out of the kept list once it is handled: a reload in between
        // handles it again, with the same outcome the server's idempotency
        // gives a repeat, rather than losing it.
        await this.handle(code, view);
        this.waiting.shift();
        this.keep();
        this.render();
        this.handled++;
        document.body.dataset.handled = String(this.handled);
      }
    } finally {
      this.busy = false;
      this.render();
      this.focus();
    }
  }

  async handle(code, view) {
    const cmd = parse(code);
    if (cmd && cmd.kind === 'mode') {
      this.go(cmd.view);
      return;
    }
    if (view && view !== this.view()) this.go(view);
    try {
      await this.screen().scan(code, cmd);
    } catch (e) {
      // A screen's bug must not stop the line.
      console.error(e);
    }
  }

  // hold puts an exception on screen until it is acknowledged: show()
  // paints it, now if nothing else is held, else when the ones before it
  // are acknowledged; acked() (optional) runs when it is acknowledged;
  // what names it on the hold bar (seen from every screen).
  // kind and data (optional) keep it on the device; see kind().
  hold(h) {
    this.holds.push(h);
    this.keep();
    if (this.holds.length === 1) h.show();
    this.render();
  }

  ack() {
    if (!this.held) return;
    const h = this.holds.shift();
    this.keep();
    if (h.acked) h.acked();
    if (this.held) this.holds[0].show();
    this.render();
    this.pump();
  }

  render() {
    const bar = $('hold-bar');
    document.body.dataset.held = String(this.holds.length);
    bar.dataset.waiting = String(this.waiting.length);
    bar.hidden = !this.held;
    if (!this.held) return;
    const more = this.holds.length - 1;
    const what = this.holds[0].what;
    clear($('hold-text')).append(
      what ? el('span', {class: 'what'}, what + ': ') : '',
      el('strong', {}, 'Scan ACK or press Enter'), ' to go on',
      more ? ` · ${more} more exception${more === 1 ? '' : 's'}` : '');
    const w = $('hold-waiting');
    w.hidden = this.waiting.length === 0;
    w.textContent = this.waiting.length ? `Waiting: ${this.waiting.map((x) => x.code).join(', ')}` : '';
  }
}

function keyOf(owner) {
  return `${owner.operator_id}@${owner.station_id}`;
}

function loadKept() {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) || '{}');
    return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

// holdIn is a hold shown in a message box: the refusal, and until it is
// acknowledged, how to go on.
export function holdIn(box, title, detail, code) {
  return {
    what: title,
    kind: 'box',
    data: {box: box.id, title, detail: detail || '', code: code || ''},
    show: () => {
      msg(box, 'bad', title, detail);
      box.dataset.code = code || '';
      box.dataset.held = 'true';
      box.append(el('span', {class: 'ack'}, 'Scan ACK or press Enter to go on'));
    },
    acked: () => {
      box.dataset.held = 'false';
      for (const n of box.querySelectorAll('.ack')) n.remove();
    },
  };
}
