// The bind screen (BIND): scan a chute's label, then the bag hanging under
// it, and the bag is bound to the chute: from then on the sorter's
// confirms into that chute fill it. Scan-only, like every screen.

import {$, msg, ScanIDs} from './dom.js';
import {parseChuteLabel} from './chutelabel.js';
import {holdIn} from './scanline.js';
import {explain} from './words.js';
import {beep} from './sound.js';

export class BindScreen {
  constructor(api, line) {
    this.api = api;
    this.line = line;
    this.chute = 0;
    this.ids = new ScanIDs('b');
  }

  activate() {
    this.reset();
  }

  focusTarget() {
    return $('bind-scan');
  }

  reset() {
    this.chute = 0;
    $('bind-label').textContent = "Scan the chute's label";
    document.getElementById('bind-view').dataset.chute = '';
  }

  async scan(code, cmd) {
    if (cmd && (cmd.name === 'DONE' || cmd.name === 'CANCEL')) {
      this.reset();
      msg($('bind-msg'), 'info', 'Start again: scan a chute label.');
      return;
    }
    if (cmd) {
      this.line.hold(holdIn($('bind-msg'), `${code} means nothing here`, 'Scan a chute label, then a bag.', code));
      return;
    }
    const label = parseChuteLabel(code);
    const station = this.api.session ? this.api.session.operator.station_id : '';
    if (label) {
      if (label.station !== station) {
        beep('error');
        this.line.hold(holdIn($('bind-msg'), `Chute of ${label.station}`, `This terminal is at ${station}: scan a chute label of this station.`, 'wrong_station'));
        return;
      }
      this.chute = label.chute;
      document.getElementById('bind-view').dataset.chute = String(label.chute);
      $('bind-label').textContent = `Chute ${label.chute}: scan its bag`;
      msg($('bind-msg'), 'info', `Chute ${label.chute}`, 'Now scan the bag hanging under it.');
      return;
    }
    if (!this.chute) {
      beep('error');
      this.line.hold(holdIn($('bind-msg'), 'Scan the chute label first', `${code} is not a chute label.`, 'no_chute'));
      return;
    }
    const chute = this.chute;
    const what = `bind ${chute} ${code}`;
    const a = await this.api.put(`/api/v1/stations/${encodeURIComponent(station)}/chutes/${chute}/bag`,
      {bag_id: code, scan_id: this.ids.for(what)});
    if (!a.network) this.ids.done();
    if (!a.ok) {
      beep('error');
      const e = explain(a.error);
      this.line.hold(holdIn($('bind-msg'), `Chute ${chute}: ${e.title}`, e.detail, a.error && a.error.code));
      return;
    }
    beep('ok');
    const b = a.data || {};
    const added = (b.added || []).length;
    const box = $('bind-msg');
    msg(box, 'ok', `Bag ${b.bag_id || code} is under chute ${chute}`,
      `${b.next_hop || ''}${added ? ` · ${added} waiting parcel${added === 1 ? '' : 's'} put in` : ''}`);
    box.dataset.bagId = b.bag_id || code;
    box.dataset.chute = String(chute);
    this.reset();
  }
}
