// The bag screen: open a bag for a next hop, scan parcels in (or remove
// them), seal it with its weight, then show the label (PNG preview, ZPL
// file for the thermal printer). The bag being filled is remembered on the
// device, so a reload comes back to it.

import {retryable, unavailable} from './api.js';
import {$, el, clear, msg, normalizeCode, grams, plural, blobLink, ScanIDs} from './dom.js';
import {beep} from './sound.js';
import {explain} from './words.js';

const CURRENT_KEY = 'station.bag.current.v1';

export class BagScreen {
  constructor(api) {
    this.api = api;
    this.bag = null;
    this.ids = new ScanIDs('b');
    this.labelURL = '';

    $('bag-open-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.open(normalizeCode($('bag-next-hop').value));
    });
    $('bag-scan-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const tn = normalizeCode($('bag-scan').value);
      $('bag-scan').value = '';
      if (tn) this.add(tn);
    });
    $('bag-seal-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.seal($('bag-weight').value);
    });
    $('bag-done').addEventListener('click', () => this.done());
    $('bag-print').addEventListener('click', () => window.print());
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
    if (this.bag.status === 'open') return $('bag-scan');
    return $('bag-done');
  }

  showStart() {
    this.bag = null;
    $('bag-start').hidden = false;
    $('bag-work').hidden = true;
    this.listOpen();
  }

  async listOpen() {
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

  async resume(id) {
    const a = await this.api.get(`/api/v1/bags/${encodeURIComponent(id)}`);
    if (!a.ok) {
      const e = explain(a.error);
      msg($('bag-start-msg'), 'bad', e.title, e.detail);
      return;
    }
    this.setBag(a.data);
    $('bag-scan').focus();
  }

  async open(hop) {
    const box = $('bag-start-msg');
    if (!hop) {
      msg(box, 'bad', 'Enter the next hop of the bag, e.g. SG-H02.');
      return;
    }
    const scanID = this.ids.for('open:' + hop);
    const a = await this.api.post('/api/v1/bags', {next_hop: hop, scan_id: scanID});
    if (!retryable(a)) this.ids.done();
    if (!a.ok) {
      const e = unavailable(a) ? {title: 'Bags are not available on this server yet.', detail: ''} : explain(a.error);
      msg(box, 'bad', e.title, retryable(a) ? 'Press Open again to retry; the bag is opened once.' : e.detail);
      beep('error');
      return;
    }
    box.hidden = true;
    $('bag-next-hop').value = '';
    this.setBag(a.data);
    msg($('bag-msg'), 'ok', `Bag ${a.data.bag_id} open for ${a.data.next_hop}. Scan parcels in.`);
    beep('ok');
    $('bag-scan').focus();
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
    $('bag-scan-form').hidden = !open;
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
    if (!a.ok) {
      const e = explain(a.error);
      msg(box, 'bad', e.title, retryable(a) ? 'Not saved. Scan the parcel again.' : e.detail);
      box.dataset.code = (a.error && a.error.code) || '';
      beep('error');
      return;
    }
    box.dataset.code = '';
    if (!b.items.includes(a.data.tracking_no)) b.items.push(a.data.tracking_no);
    b.item_count = a.data.item_count;
    this.render();
    msg(box, 'ok', `Added ${a.data.tracking_no}`, `${plural(a.data.item_count, 'parcel')} in the bag`);
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
      msg(box, 'bad', e.title, e.detail);
      beep('error');
      return;
    }
    b.items = b.items.filter((x) => x !== tn);
    b.item_count = a.data.item_count;
    this.render();
    msg(box, 'info', `Removed ${tn}`, `${plural(a.data.item_count, 'parcel')} in the bag`);
    $('bag-scan').focus();
  }

  async seal(weight) {
    const b = this.bag;
    const box = $('bag-msg');
    const g = Number(weight);
    if (!Number.isInteger(g) || g <= 0) {
      msg(box, 'bad', 'Enter the bag\'s gross weight in whole grams.');
      $('bag-weight').focus();
      return;
    }
    const scanID = this.ids.for(`seal:${b.bag_id}:${g}`);
    const a = await this.api.post(`/api/v1/bags/${encodeURIComponent(b.bag_id)}/seal`, {weight_g: g, scan_id: scanID});
    if (!retryable(a)) this.ids.done();
    if (!a.ok) {
      const e = explain(a.error);
      msg(box, 'bad', e.title, retryable(a) ? 'Not sealed. Press Seal again.' : e.detail);
      beep('error');
      return;
    }
    $('bag-weight').value = '';
    this.setBag(a.data);
    msg(box, 'ok', `Bag ${a.data.bag_id} sealed`, `${plural(a.data.item_count, 'parcel')}, ${grams(a.data.weight_g)}. Stick the label on.`);
    beep('ok');
    $('bag-done').focus();
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
