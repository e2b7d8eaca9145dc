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

import {$, el, clear, msg, normalizeCode} from './dom.js';
import {parse} from './commands.js';

export class ScanLine {
  // screen() is the screen in front of the operator; go(view) switches
  // screens (a mode code); focus() puts the caret back into the scan box.
  constructor({screen, go, focus}) {
    this.screen = screen;
    this.go = go;
    this.focus = focus;
    this.waiting = []; // codes not handled yet, oldest first
    this.holds = []; // [{show, what}]: the first is on screen
    this.busy = false;
    this.handled = 0; // codes handled, for the page's data-handled
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
    this.waiting.push(code);
    this.render();
    this.pump();
  }

  async pump() {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.waiting.length && !this.held) {
        const code = this.waiting.shift();
        this.render();
        await this.handle(code);
        this.handled++;
        document.body.dataset.handled = String(this.handled);
      }
    } finally {
      this.busy = false;
      this.render();
      this.focus();
    }
  }

  async handle(code) {
    const cmd = parse(code);
    if (cmd && cmd.kind === 'mode') {
      this.go(cmd.view);
      return;
    }
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
  hold({show, acked, what}) {
    this.holds.push({show, acked, what});
    if (this.holds.length === 1) show();
    this.render();
  }

  ack() {
    if (!this.held) return;
    const h = this.holds.shift();
    if (h.acked) h.acked();
    if (this.held) this.holds[0].show();
    this.render();
    this.pump();
  }

  // reset forgets everything (the operator logged out).
  reset() {
    this.waiting = [];
    this.holds = [];
    this.render();
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
    w.textContent = this.waiting.length ? `Waiting: ${this.waiting.join(', ')}` : '';
  }
}

// holdIn is a hold shown in a message box: the refusal, and until it is
// acknowledged, how to go on.
export function holdIn(box, title, detail, code) {
  return {
    what: title,
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
