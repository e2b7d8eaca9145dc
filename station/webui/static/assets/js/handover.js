// The handover screen: start a handover for a trip, a rider or a partner
// carrier, scan sealed bags on, close it (the truck leaves), then view and
// download the manifest.

import {retryable, unavailable} from './api.js';
import {$, el, clear, msg, grams, plural, blobLink, ScanIDs, labelCells} from './dom.js';
import {beep} from './sound.js';
import {explain} from './words.js';

const CURRENT_KEY = 'station.handover.current.v1';

const refs = {
  linehaul: {field: 'trip_id', label: 'Trip id', placeholder: 'e.g. TR-SG-H01-0001'},
  lastmile: {field: 'rider_id', label: 'Rider id', placeholder: 'Rider badge'},
  thirdparty: {field: 'carrier', label: 'Carrier', placeholder: 'Partner carrier'},
};

export class HandoverScreen {
  constructor(api) {
    this.api = api;
    this.ho = null;
    this.ids = new ScanIDs('h');

    $('ho-type').addEventListener('change', () => this.refLabel());
    $('ho-start-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.start($('ho-type').value, $('ho-ref').value.trim());
    });
    $('ho-resume-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.load($('ho-resume').value.trim(), $('ho-start-msg'));
    });
    $('ho-scan-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      // Bag ids are the container service's: sent as scanned, only trimmed.
      const id = $('ho-scan').value.trim();
      $('ho-scan').value = '';
      if (id) this.addBag(id);
    });
    $('ho-close').addEventListener('click', () => this.askClose(true));
    $('ho-close-cancel').addEventListener('click', () => this.askClose(false));
    $('ho-close-confirm').addEventListener('click', () => this.close());
    $('ho-done').addEventListener('click', () => this.done());
    this.refLabel();
  }

  refLabel() {
    const r = refs[$('ho-type').value];
    $('ho-ref-label').textContent = r.label;
    $('ho-ref').placeholder = r.placeholder;
  }

  async activate() {
    const id = localStorage.getItem(CURRENT_KEY);
    if (id && (!this.ho || this.ho.handover_id !== id)) {
      if (await this.load(id, null)) return;
    }
    if (this.ho) this.render();
    else this.showStart();
  }

  focusTarget() {
    if (!this.ho) return $('ho-ref');
    if (this.ho.status === 'open') return $('ho-scan');
    return $('ho-done');
  }

  showStart() {
    this.ho = null;
    $('ho-start').hidden = false;
    $('ho-work').hidden = true;
  }

  async load(id, box) {
    if (!id) return false;
    const a = await this.api.get(`/api/v1/handovers/${encodeURIComponent(id)}`);
    if (!a.ok) {
      if (!a.network && !box) localStorage.removeItem(CURRENT_KEY);
      if (box) {
        const e = unavailable(a) ? {title: 'Handovers are not available on this server yet.'} : explain(a.error);
        msg(box, 'bad', e.title, e.detail);
      }
      return false;
    }
    this.set(a.data);
    return true;
  }

  async start(type, ref) {
    const box = $('ho-start-msg');
    const r = refs[type];
    if (!ref) {
      msg(box, 'bad', `Enter the ${r.label.toLowerCase()}.`);
      $('ho-ref').focus();
      return;
    }
    const value = ref;
    const scanID = this.ids.for(`start:${type}:${value}`);
    const a = await this.api.post('/api/v1/handovers', {type, [r.field]: value, scan_id: scanID});
    if (!retryable(a)) this.ids.done();
    if (!a.ok) {
      const e = unavailable(a) ? {title: 'Handovers are not available on this server yet.', detail: ''} : explain(a.error);
      msg(box, 'bad', e.title, retryable(a) ? 'Press Start again to retry; it is started once.' : e.detail);
      beep('error');
      return;
    }
    box.hidden = true;
    $('ho-ref').value = '';
    this.set(a.data);
    msg($('ho-msg'), 'ok', `Handover ${a.data.handover_id} started. Scan sealed bags on.`);
    beep('ok');
    $('ho-scan').focus();
  }

  set(h) {
    this.ho = h;
    localStorage.setItem(CURRENT_KEY, h.handover_id);
    $('ho-msg').hidden = true;
    this.askClose(false);
    this.render();
    if (h.status === 'closed') this.loadManifest();
    else $('ho-manifest').hidden = true;
  }

  render() {
    const h = this.ho;
    $('ho-start').hidden = true;
    $('ho-work').hidden = false;
    $('ho-id').textContent = h.handover_id;
    $('ho-ref-shown').textContent = `${h.type}: ${h.trip_id || h.rider_id || h.carrier || ''}`;
    $('ho-stops').textContent = (h.trip_stops || []).join(', ') || '–';
    const st = $('ho-status');
    st.textContent = h.status;
    st.className = 'status-' + h.status;
    $('ho-bag-count').textContent = String(h.bag_count || 0);
    $('ho-parcels').textContent = String(h.parcel_count || 0);
    $('ho-weight').textContent = grams(h.weight_g || 0);
    const open = h.status === 'open';
    $('ho-scan-form').hidden = !open;
    $('ho-close').hidden = !open;
    document.body.dataset.handoverStatus = h.status;
    const ol = clear($('ho-bags'));
    for (const b of [...(h.bags || [])].reverse()) {
      ol.append(el('li', {dataset: {bagId: b.bag_id}},
        el('span', {class: 'tn'}, b.bag_id),
        el('span', {}, '→ ' + b.next_hop),
        el('span', {class: 'what'}, `${plural(b.item_count, 'parcel')} · ${grams(b.weight_g)}`)));
    }
  }

  async addBag(bagID) {
    const h = this.ho;
    const box = $('ho-msg');
    const scanID = this.ids.for(`add:${h.handover_id}:${bagID}`);
    const a = await this.api.post(`/api/v1/handovers/${encodeURIComponent(h.handover_id)}/bags`, {bag_id: bagID, scan_id: scanID});
    if (!retryable(a)) this.ids.done();
    if (!a.ok) {
      const e = explain(a.error);
      msg(box, 'bad', e.title, retryable(a) ? 'Not saved. Scan the bag again.' : e.detail);
      box.dataset.code = (a.error && a.error.code) || '';
      beep('error');
      return;
    }
    box.dataset.code = '';
    await this.load(h.handover_id, null);
    msg(box, 'ok', `Bag ${a.data.bag_id} loaded`, `${plural(a.data.bag_count, 'bag')}, ${plural(a.data.parcel_count, 'parcel')} on this handover`);
    beep('ok');
  }

  askClose(on) {
    $('ho-close-confirm').hidden = !on;
    $('ho-close-cancel').hidden = !on;
    $('ho-close').hidden = on || !this.ho || this.ho.status !== 'open';
    if (on) $('ho-close-confirm').focus();
  }

  async close() {
    const h = this.ho;
    const box = $('ho-msg');
    const scanID = this.ids.for(`close:${h.handover_id}`);
    const a = await this.api.post(`/api/v1/handovers/${encodeURIComponent(h.handover_id)}/close`, {scan_id: scanID});
    if (!retryable(a)) this.ids.done();
    if (!a.ok) {
      const e = explain(a.error);
      msg(box, 'bad', e.title, retryable(a) ? 'Not closed. Press Close again.' : e.detail);
      beep('error');
      this.askClose(false);
      return;
    }
    this.set(a.data);
    msg(box, 'ok', `Handover ${a.data.handover_id} closed`, `${plural(a.data.bag_count, 'bag')}, ${plural(a.data.parcel_count, 'parcel')} departed.`);
    beep('ok');
    $('ho-done').focus();
  }

  async loadManifest() {
    const h = this.ho;
    const base = `/api/v1/handovers/${encodeURIComponent(h.handover_id)}/manifest`;
    const [json, csv] = await Promise.all([this.api.get(base + '?format=json'), this.api.get(base + '?format=csv', {as: 'blob'})]);
    if (!this.ho || this.ho.handover_id !== h.handover_id) return;
    if (!json.ok) {
      const e = explain(json.error);
      msg($('ho-msg'), 'warn', 'Manifest not available: ' + e.title, e.detail);
      return;
    }
    const m = json.data;
    const tbody = clear($('ho-manifest-table').tBodies[0]);
    for (const b of m.bags || []) {
      tbody.append(el('tr', {},
        el('td', {class: 'mono'}, b.bag_id),
        el('td', {}, b.next_hop),
        el('td', {class: 'num'}, String(b.weight_g)),
        el('td', {class: 'num', title: (b.parcels || []).join(' ')}, String((b.parcels || []).length))));
    }
    tbody.append(el('tr', {},
      el('th', {}, 'Total'), el('th', {}, plural(m.bag_count, 'bag')),
      el('th', {class: 'num'}, String(m.weight_g)), el('th', {class: 'num'}, String(m.parcel_count))));
    labelCells($('ho-manifest-table'));
    blobLink($('ho-json'), new Blob([JSON.stringify(m, null, 2)], {type: 'application/json'}), `manifest-${h.handover_id}.json`);
    $('ho-csv').hidden = !csv.ok;
    if (csv.ok) blobLink($('ho-csv'), csv.blob, `manifest-${h.handover_id}.csv`);
    $('ho-manifest').hidden = false;
  }

  done() {
    localStorage.removeItem(CURRENT_KEY);
    $('ho-msg').hidden = true;
    this.showStart();
    $('ho-ref').focus();
  }
}
