// The handover screen: start a handover for a trip, a rider or a partner
// carrier, scan sealed bags on, close it (the truck leaves), then view and
// download the manifest. Open handovers are listed to resume one, and the
// handover sheet carries the handover id as a barcode: scanning it at the
// start resumes that handover.
//
// Scanned (through the scan line): at the start a handover id resumes it
// and anything else is the trip id (rider, carrier) of a new one; on an
// open handover a bag id loads the bag, CLOSE asks and CLOSE again closes,
// CANCEL keeps it open, DONE goes back; after the close DONE goes back and
// any other code starts the next handover.

import {retryable, unavailable} from './api.js';
import {$, el, clear, msg, grams, plural, blobLink, ScanIDs, labelCells, dateTime} from './dom.js';
import {code128} from './barcode.js';
import {printSheet} from './commands.js';
import {holdIn} from './scanline.js';
import {beep} from './sound.js';
import {explain} from './words.js';

const CURRENT_KEY = 'station.handover.current.v1';

// UUID: a handover id (what the handover sheet's barcode holds).
const UUID = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/i;

const refs = {
  linehaul: {field: 'trip_id', label: 'Trip id', placeholder: 'e.g. TR-SG-H01-0001'},
  lastmile: {field: 'rider_id', label: 'Rider id', placeholder: 'Rider badge'},
  thirdparty: {field: 'carrier', label: 'Carrier', placeholder: 'Partner carrier'},
};

export class HandoverScreen {
  constructor(api, line) {
    this.api = api;
    this.line = line;
    this.ho = null;
    this.confirming = false;
    this.ids = new ScanIDs('h');

    $('ho-type').addEventListener('change', () => this.refLabel());
    $('ho-close').addEventListener('click', () => this.askClose(true));
    $('ho-close-cancel').addEventListener('click', () => this.askClose(false));
    $('ho-close-confirm').addEventListener('click', () => this.close());
    $('ho-done').addEventListener('click', () => this.done());
    $('ho-print').addEventListener('click', () => printSheet('handover'));
    this.refLabel();
  }

  // scan is the scan line's: what a code means depends on the handover's
  // state.
  async scan(code, cmd) {
    const h = this.ho;
    if (!h) {
      if (cmd && cmd.name === 'DONE') return;
      if (cmd) {
        this.refuse($('ho-start-msg'), 'Start a handover first', 'Scan the trip id, or the barcode of a handover sheet to resume it.');
        return;
      }
      if (UUID.test(code)) await this.load(code.toLowerCase(), $('ho-start-msg'));
      else await this.start($('ho-type').value, code);
      return;
    }
    if (h.status === 'open') {
      const name = cmd ? cmd.name : '';
      if (name === 'CLOSE') return this.confirming ? this.close() : this.askClose(true);
      if (name === 'CANCEL') {
        this.askClose(false);
        msg($('ho-msg'), 'info', 'Not closed', 'The handover stays open.');
        return;
      }
      if (name === 'DONE') return this.done();
      if (cmd) {
        this.refuse($('ho-msg'), `${code} does nothing here`, 'Scan sealed bags, then CLOSE.');
        return;
      }
      if (this.confirming) this.askClose(false);
      return this.addBag(code);
    }
    if (cmd && cmd.name === 'DONE') return this.done();
    if (cmd) {
      this.refuse($('ho-msg'), 'This handover is closed', 'Scan DONE, or the trip id of the next handover.');
      return;
    }
    this.done();
    await this.scan(code, cmd);
  }

  refuse(box, title, detail, code) {
    beep('error');
    this.line.hold(holdIn(box, title, detail, code));
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
    return $('ho-scan');
  }

  showStart() {
    this.ho = null;
    $('ho-start').hidden = false;
    $('ho-work').hidden = true;
    this.listOpen();
  }

  // listOpen lists the station's open handovers, newest first, to resume
  // one without typing its id.
  async listOpen() {
    const ul = clear($('ho-open-list'));
    const a = await this.api.get('/api/v1/handovers?status=open');
    if (!a.ok) {
      ul.append(el('li', {class: 'hint'}, a.network ? 'Not available offline.'
        : unavailable(a) ? 'Not available on this server yet.' : explain(a.error).title));
      return;
    }
    const list = (a.data && a.data.handovers) || [];
    if (!list.length) ul.append(el('li', {class: 'hint'}, 'No open handovers.'));
    for (const h of list) {
      ul.append(el('li', {dataset: {handoverId: h.handover_id}},
        el('span', {class: 'tn'}, h.trip_id || h.rider_id || h.carrier || h.type),
        el('span', {}, dateTime(h.created_at)),
        el('span', {class: 'what'}, `${plural(h.bag_count, 'bag')} · ${plural(h.parcel_count, 'parcel')}`),
        el('button', {type: 'button', class: 'small secondary', onclick: () => this.load(h.handover_id, $('ho-start-msg'))}, 'Resume')));
    }
  }

  async load(id, box) {
    if (!id) return false;
    const a = await this.api.get(`/api/v1/handovers/${encodeURIComponent(id)}`);
    if (!a.ok) {
      if (!a.network && !box) localStorage.removeItem(CURRENT_KEY);
      if (box) {
        const e = unavailable(a) ? {title: 'Handovers are not available on this server yet.'} : explain(a.error);
        this.refuse(box, e.title, e.detail, a.error && a.error.code);
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
      this.refuse(box, `Enter the ${r.label.toLowerCase()}.`);
      return;
    }
    const value = ref;
    const scanID = this.ids.for(`start:${type}:${value}`);
    const a = await this.api.post('/api/v1/handovers', {type, [r.field]: value, scan_id: scanID});
    if (!retryable(a)) this.ids.done();
    if (!a.ok) {
      const e = unavailable(a) ? {title: 'Handovers are not available on this server yet.', detail: ''} : explain(a.error);
      this.refuse(box, e.title, retryable(a) ? 'Scan it again to retry; it is started once.' : e.detail, a.error && a.error.code);
      return;
    }
    box.hidden = true;
    $('ho-ref').value = '';
    this.set(a.data);
    msg($('ho-msg'), 'ok', `Handover started for ${ref}. Scan sealed bags on.`);
    beep('ok');
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
    $('ho-scan-label').textContent = open ? 'Scan a sealed bag onto the handover' : 'Scan DONE, or the trip id of the next handover';
    $('ho-scan').placeholder = open ? 'Bag id, then Enter' : 'DONE or a trip id';
    $('ho-close').hidden = !open || this.confirming;
    this.sheet();
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
      this.refuse(box, e.title, retryable(a) ? 'Not saved. Scan the bag again.' : e.detail, (a.error && a.error.code) || '');
      return;
    }
    box.dataset.code = '';
    await this.load(h.handover_id, null);
    msg(box, 'ok', `Bag ${a.data.bag_id} loaded`, `${plural(a.data.bag_count, 'bag')}, ${plural(a.data.parcel_count, 'parcel')} on this handover`);
    beep('ok');
  }

  // askClose asks before closing (a closed handover has left): the
  // Confirm button, or CLOSE scanned again.
  askClose(on) {
    this.confirming = on;
    $('ho-close-confirm').hidden = !on;
    $('ho-close-cancel').hidden = !on;
    $('ho-close').hidden = on || !this.ho || this.ho.status !== 'open';
    document.body.dataset.confirmClose = String(on);
    if (on) msg($('ho-msg'), 'warn', 'Close this handover? The truck leaves.', 'Scan CLOSE again to close, CANCEL to keep it open.');
  }

  async close() {
    const h = this.ho;
    const box = $('ho-msg');
    const scanID = this.ids.for(`close:${h.handover_id}`);
    const a = await this.api.post(`/api/v1/handovers/${encodeURIComponent(h.handover_id)}/close`, {scan_id: scanID});
    if (!retryable(a)) this.ids.done();
    if (!a.ok) {
      const e = explain(a.error);
      this.askClose(false);
      this.refuse(box, e.title, retryable(a) ? 'Not closed. Scan CLOSE again.' : e.detail, a.error && a.error.code);
      return;
    }
    this.set(a.data);
    msg(box, 'ok', `Handover closed`, `${plural(a.data.bag_count, 'bag')}, ${plural(a.data.parcel_count, 'parcel')} departed. Scan DONE.`);
    beep('ok');
  }

  // sheet draws the handover sheet: its id as a barcode (scanned at the
  // start to resume it) with what it carries.
  sheet() {
    const h = this.ho;
    const box = clear($('ho-sheet-body'));
    box.append(code128(h.handover_id, {height: 50}),
      el('p', {}, el('strong', {}, `${h.type}: ${h.trip_id || h.rider_id || h.carrier || ''}`),
        ` · ${plural(h.bag_count || 0, 'bag')} · ${plural(h.parcel_count || 0, 'parcel')} · ${h.status}`),
      el('p', {class: 'hint'}, 'Scan this barcode at the handover screen to resume this handover.'));
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
    this.askClose(false);
    $('ho-msg').hidden = true;
    this.showStart();
    $('ho-ref').focus();
  }
}
