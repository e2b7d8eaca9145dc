// The bag screen: open a bag for a next hop, scan parcels in (or remove
// them), seal it with its weight, then show the label (PNG preview, ZPL
// file for the thermal printer). The bag being filled is remembered on the
// device, so a reload comes back to it. Sealed bags are listed for a
// label reprint, and a bag id scanned at the start opens that bag.
//
// Scanned (through the scan line): at the start a next hop opens a bag and
// a bag id opens that bag; into an open bag a tracking number adds the
// parcel, W1250 gives the weight, SEAL seals, DONE goes back to the start;
// after the seal DONE goes back, and any other code starts the next bag.

import {retryable, unavailable} from './api.js';
import {$, el, clear, msg, normalizeCode, grams, plural, blobLink, ScanIDs} from './dom.js';
import {printSheet} from './commands.js';
import {holdIn} from './scanline.js';
import {beep} from './sound.js';
import {explain} from './words.js';

const CURRENT_KEY = 'station.bag.current.v1';

export class BagScreen {
  constructor(api, line) {
    this.api = api;
    this.line = line;
    this.bag = null;
    this.ids = new ScanIDs('b');
    this.labelURL = '';

    $('bag-seal-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.seal($('bag-weight').value);
    });
    $('bag-done').addEventListener('click', () => this.done());
    $('bag-print').addEventListener('click', () => printSheet('label'));
  }

  // scan is the scan line's: what a code means depends on the bag's state.
  async scan(code, cmd) {
    const b = this.bag;
    if (!b) {
      if (cmd && cmd.name === 'DONE') return;
      if (cmd) {
        this.refuse($('bag-start-msg'), 'Open a bag first', 'Scan the next hop of the bag, e.g. SG-H02, or a bag id to find a bag.');
        return;
      }
      if (SITE.test(code)) await this.open(code);
      else await this.resume(code);
      return;
    }
    if (b.status === 'open') {
      if (!cmd) return this.add(code);
      switch (cmd.name) {
        case 'W':
          $('bag-weight').value = String(cmd.grams);
          msg($('bag-msg'), 'info', `Weight ${grams(cmd.grams)}`, 'Scan SEAL to seal the bag.');
          return;
        case 'SEAL':
          return this.seal($('bag-weight').value);
        case 'CANCEL':
          $('bag-weight').value = '';
          msg($('bag-msg'), 'info', 'Weight cleared');
          return;
        case 'DONE':
          return this.done();
      }
      this.refuse($('bag-msg'), `${code} does nothing here`, 'Scan parcels in, W and the weight, then SEAL.');
      return;
    }
    // Sealed: DONE goes back; any other code is for the next bag.
    if (cmd && cmd.name === 'DONE') return this.done();
    if (cmd) {
      this.refuse($('bag-msg'), 'This bag is sealed', 'Scan DONE, or the next hop of a new bag.');
      return;
    }
    this.done();
    await this.scan(code, cmd);
  }

  // refuse shows a refusal and holds the scan line until it is
  // acknowledged.
  refuse(box, title, detail, code) {
    beep('error');
    this.line.hold(holdIn(box, title, detail, code));
  }

  async activate() {
    const id = localStorage.getItem(CURRENT_KEY);
    if (id && (!this.bag || this.bag.bag_id !== id)) {
      const a = await this.api.get(`/api/v1/bags/${encodeURIComponent(id)}`);
      if (a.ok) {
        this.setBag(a.data);
        return;
      }
      if (!a.network) localStorage.removeItem(CURRENT_KEY);
    }
    if (this.bag) this.render();
    else this.showStart();
  }

  focusTarget() {
    if (!this.bag) return $('bag-next-hop');
    return $('bag-scan');
  }

  showStart() {
    this.bag = null;
    $('bag-start').hidden = false;
    $('bag-work').hidden = true;
    this.listOpen();
  }

  async listOpen() {
    this.listSealed();
    const ul = clear($('bag-open-list'));
    const a = await this.api.get('/api/v1/bags?status=open');
    if (!a.ok) {
      ul.append(el('li', {}, unavailable(a) ? 'Bags are not available on this server yet.' : explain(a.error).title));
      return;
    }
    const bags = (a.data && a.data.bags) || [];
    if (!bags.length) ul.append(el('li', {class: 'hint'}, 'No open bags.'));
    for (const b of bags) {
      ul.append(el('li', {dataset: {bagId: b.bag_id}},
        el('span', {class: 'tn'}, b.bag_id),
        el('span', {}, '→ ' + b.next_hop),
        el('span', {class: 'what'}, plural(b.item_count, 'parcel')),
        el('button', {type: 'button', class: 'small secondary', onclick: () => this.resume(b.bag_id)}, 'Continue')));
    }
  }

  // listSealed lists the station's sealed bags, newest first, each with a
  // button that opens it and its label for a reprint.
  async listSealed() {
    const ul = clear($('bag-sealed-list'));
    const a = await this.api.get('/api/v1/bags?status=sealed');
    if (!a.ok) {
      ul.append(el('li', {class: 'hint'}, a.network ? 'Not available offline.' : explain(a.error).title));
      return;
    }
    const bags = ((a.data && a.data.bags) || []).slice().reverse();
    if (!bags.length) ul.append(el('li', {class: 'hint'}, 'No sealed bags.'));
    for (const b of bags.slice(0, 30)) {
      ul.append(el('li', {dataset: {bagId: b.bag_id}},
        el('span', {class: 'tn'}, b.bag_id),
        el('span', {}, '→ ' + b.next_hop),
        el('span', {class: 'what'}, `${plural(b.item_count, 'parcel')} · ${grams(b.weight_g)}`),
        el('button', {type: 'button', class: 'small secondary', onclick: () => this.resume(b.bag_id)}, 'Label')));
    }
  }

  async resume(id) {
    const a = await this.api.get(`/api/v1/bags/${encodeURIComponent(id)}`);
    if (!a.ok) {
      const e = explain(a.error);
      this.refuse($('bag-start-msg'), e.title, e.detail, a.error && a.error.code);
      return;
    }
    this.setBag(a.data);
    if (a.data.status !== 'open') msg($('bag-msg'), 'info', `Bag ${a.data.bag_id} is ${a.data.status}`, 'Its label is below: print it again. Scan DONE when finished.');
  }

  async open(hop) {
    const box = $('bag-start-msg');
    if (!hop) {
      this.refuse(box, 'Enter the next hop of the bag, e.g. SG-H02.');
      return;
    }
    const scanID = this.ids.for('open:' + hop);
    const a = await this.api.post('/api/v1/bags', {next_hop: hop, scan_id: scanID});
    if (!retryable(a)) this.ids.done();
    if (!a.ok) {
      const e = unavailable(a) ? {title: 'Bags are not available on this server yet.', detail: ''} : explain(a.error);
      this.refuse(box, e.title, retryable(a) ? 'Scan the next hop again to retry; the bag is opened once.' : e.detail, a.error && a.error.code);
      return;
    }
    box.hidden = true;
    $('bag-next-hop').value = '';
    this.setBag(a.data);
    msg($('bag-msg'), 'ok', `Bag ${a.data.bag_id} open for ${a.data.next_hop}. Scan parcels in.`);
    beep('ok');
  }

  setBag(b) {
    this.bag = {...b, items: b.items || []};
    localStorage.setItem(CURRENT_KEY, b.bag_id);
    this.clearLabel();
    $('bag-msg').hidden = true;
    this.render();
    if (b.status !== 'open') this.loadLabel();
  }

  render() {
    const b = this.bag;
    $('bag-start').hidden = true;
    $('bag-work').hidden = false;
    $('bag-id').textContent = b.bag_id;
    $('bag-hop').textContent = b.next_hop;
    const st = $('bag-status');
    st.textContent = b.status;
    st.className = 'status-' + b.status;
    $('bag-count').textContent = String(b.item_count);
    $('bag-weight-shown').textContent = b.weight_g ? grams(b.weight_g) : '–';
    const open = b.status === 'open';
    $('bag-scan-label').textContent = open ? 'Scan a parcel into the bag' : 'Scan DONE, or the next hop of a new bag';
    $('bag-scan').placeholder = open ? 'Tracking number, then Enter' : 'DONE or a next hop';
    $('bag-seal-form').hidden = !open;
    document.body.dataset.bagStatus = b.status;
    const ol = clear($('bag-items'));
    for (const tn of [...b.items].reverse()) {
      ol.append(el('li', {dataset: {trackingNo: tn}},
        el('span', {class: 'tn'}, tn),
        open ? el('button', {type: 'button', class: 'small secondary', 'aria-label': 'Remove ' + tn,
          onclick: () => this.remove(tn)}, 'Remove') : null));
    }
  }

  async add(tn) {
    const b = this.bag;
    const scanID = this.ids.for(`add:${b.bag_id}:${tn}`);
    const a = await this.api.post(`/api/v1/bags/${encodeURIComponent(b.bag_id)}/items`, {tracking_no: tn, scan_id: scanID});
    if (!retryable(a)) this.ids.done();
    const box = $('bag-msg');
    if (!a.ok && a.error && a.error.code === 'parcel_departed') {
      msg(box, 'departed', `Already departed: ${tn}`, a.error.message || 'Receive it to start a new visit.');
      box.dataset.code = 'parcel_departed';
      beep('departed');
      return;
    }
    if (!a.ok) {
      const e = explain(a.error);
      this.refuse(box, e.title, retryable(a) ? 'Not saved. Scan the parcel again.' : e.detail, (a.error && a.error.code) || '');
      return;
    }
    if (!b.items.includes(a.data.tracking_no)) b.items.push(a.data.tracking_no);
    b.item_count = a.data.item_count;
    this.render();
    if (a.data.action === 'already_in_this_bag') {
      msg(box, 'repeat', `Already in this bag: ${a.data.tracking_no}`, `Nothing changed. ${plural(a.data.item_count, 'parcel')} in the bag`);
      box.dataset.code = 'already_in_this_bag';
      beep('repeat');
      return;
    }
    msg(box, 'ok', `Added ${a.data.tracking_no}`, `${plural(a.data.item_count, 'parcel')} in the bag`);
    box.dataset.code = '';
    beep('ok');
  }

  async remove(tn) {
    const b = this.bag;
    const scanID = this.ids.for(`remove:${b.bag_id}:${tn}`);
    const a = await this.api.del(`/api/v1/bags/${encodeURIComponent(b.bag_id)}/items/${encodeURIComponent(tn)}?scan_id=${encodeURIComponent(scanID)}`);
    if (!retryable(a)) this.ids.done();
    const box = $('bag-msg');
    if (!a.ok) {
      const e = explain(a.error);
      this.refuse(box, e.title, e.detail, a.error && a.error.code);
      return;
    }
    b.items = b.items.filter((x) => x !== tn);
    b.item_count = a.data.item_count;
    this.render();
    msg(box, 'info', `Removed ${tn}`, `${plural(a.data.item_count, 'parcel')} in the bag`);
  }

  async seal(weight) {
    const b = this.bag;
    const box = $('bag-msg');
    const g = Number(weight);
    if (!Number.isInteger(g) || g <= 0) {
      // No weight yet: the number pad, or a scale's W code.
      msg(box, 'warn', 'Weight needed', 'Scan the scale\'s W code (e.g. W1250), or type the grams and press Enter.');
      box.dataset.code = 'weight_needed';
      $('bag-weight').focus();
      return;
    }
    const scanID = this.ids.for(`seal:${b.bag_id}:${g}`);
    const a = await this.api.post(`/api/v1/bags/${encodeURIComponent(b.bag_id)}/seal`, {weight_g: g, scan_id: scanID});
    if (!retryable(a)) this.ids.done();
    if (!a.ok) {
      const e = explain(a.error);
      this.refuse(box, e.title, retryable(a) ? 'Not sealed. Scan SEAL again.' : e.detail, a.error && a.error.code);
      return;
    }
    $('bag-weight').value = '';
    this.setBag(a.data);
    msg(box, 'ok', `Bag ${a.data.bag_id} sealed`, `${plural(a.data.item_count, 'parcel')}, ${grams(a.data.weight_g)}. Stick the label on, then scan DONE.`);
    beep('ok');
    // The caret goes back to the scan box (never a button): the next
    // scan, DONE or a new bag's next hop, is not lost.
    $('bag-scan').focus();
  }

  clearLabel() {
    $('bag-label').hidden = true;
    const img = $('bag-label-img');
    img.removeAttribute('src');
    if (this.labelURL) URL.revokeObjectURL(this.labelURL);
    this.labelURL = '';
  }

  async loadLabel() {
    const b = this.bag;
    const base = `/api/v1/bags/${encodeURIComponent(b.bag_id)}/label`;
    // The label needs the bearer token, so it is fetched and shown from a
    // blob rather than linked directly.
    const [png, zpl] = await Promise.all([
      this.api.get(base + '?format=png', {as: 'blob'}),
      this.api.get(base + '?format=zpl', {as: 'blob'}),
    ]);
    if (!this.bag || this.bag.bag_id !== b.bag_id) return;
    if (png.ok) {
      this.labelURL = URL.createObjectURL(png.blob);
      const img = $('bag-label-img');
      img.alt = `Label of bag ${b.bag_id}`;
      img.src = this.labelURL;
    }
    if (zpl.ok) blobLink($('bag-zpl'), zpl.blob, `bag-${b.bag_id}.zpl`);
    $('bag-zpl').hidden = !zpl.ok;
    $('bag-label').hidden = !(png.ok || zpl.ok);
    if (!png.ok && !zpl.ok) {
      const e = explain(png.error);
      msg($('bag-msg'), 'warn', 'Label not available: ' + e.title, e.detail);
    }
  }

  done() {
    localStorage.removeItem(CURRENT_KEY);
    this.clearLabel();
    $('bag-msg').hidden = true;
    this.showStart();
    $('bag-next-hop').focus();
  }
}

// SITE: a site id (a next hop), e.g. SG-H02; anything else scanned at the
// start is taken as a bag id.
const SITE = /^[A-Z]{2}-[A-Z][0-9]{2,4}$/;
