// Gray release: a site's rule (stable and candidate flow, mode, ratio),
// changed with If-Match on the version read, and the kill switch. A raise
// the match-rate guard refuses is shown with the guard's figures. Save and
// Kill act on the site whose rule is on screen (this.site), whatever the
// site field holds meanwhile; Kill asks for its own reason.

import {unavailable} from './api.js';
import {$, el, clear, msg, dateTime, facts, labelCells} from './dom.js';
import {pct} from './chart.js';

export class ReleaseView {
  constructor(ctx) {
    this.ctx = ctx;
    this.rule = null;
    this.site = ''; // the site whose rule is shown
    $('rel-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.save();
    });
    $('rel-ratio').addEventListener('input', () => this.ratioHint());
    $('rel-kill').addEventListener('click', () => this.askKill(true));
    $('rel-kill-cancel').addEventListener('click', () => this.askKill(false));
    $('rel-kill-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.kill();
    });
  }

  get api() { return this.ctx.api; }

  async activate() {
    const site = this.ctx.site();
    this.site = '';
    $('rel-site').textContent = site ? `for ${site}` : '';
    clear($('rel-result'));
    clear($('rel-kill-result'));
    this.askKill(false);
    // No edits while the rule is loading: they would be overwritten.
    $('rel-form').inert = true;
    const [rule, flows] = await Promise.all([
      this.api.get(`/api/v1/ops/sites/${encodeURIComponent(site)}/release`),
      this.api.get('/api/v1/flows'),
    ]);
    const un = $('rel-unavailable');
    if (!rule.ok) {
      un.hidden = false;
      un.textContent = unavailable(rule) ? 'The release API is not on this server yet.'
        : `No release rule: ${(rule.error && rule.error.message) || 'error'}`;
      $('rel-form').hidden = true;
      clear($('rel-current'));
      return;
    }
    un.hidden = true;
    $('rel-form').hidden = false;
    this.fillFlows(flows.ok ? flows.data.flows || [] : []);
    this.site = site;
    this.show(rule.data);
    $('rel-form').inert = false;
    await this.loadRamp(site);
  }

  // loadRamp shows the rule's ramp: its schedule, the current step, each
  // guard against its threshold and the progress toward the next step.
  async loadRamp(site) {
    const box = clear($('rel-ramp'));
    box.className = '';
    if (!this.rule || !this.rule.ramp) return;
    const a = await this.api.get(`/api/v1/ops/sites/${encodeURIComponent(site)}/ramp`);
    if (!a.ok || this.site !== site || !a.data.ramp) return;
    const r = a.data;
    const steps = r.ramp.steps_bp;
    box.className = 'card';
    box.dataset.step = String(r.step);
    box.dataset.state = r.state || '';
    box.dataset.comparisons = String(r.comparisons);
    box.append(
      el('h3', {}, `Ramp: step ${r.step + 1} of ${steps.length} (${(r.state || 'stopped').replace('_', ' ')})`),
      el('p', {class: 'schedule'}, ...steps.map((bp, i) => el(i === r.step ? 'strong' : 'span', {},
        `${i ? ' → ' : ''}${bp / 100} %`))),
      el('p', {class: 'progress'}, r.next_ratio_bp
        ? `Toward ${r.next_ratio_bp / 100} %: ${r.comparisons.toLocaleString('en')} of ${r.ramp.min_comparisons.toLocaleString('en')} comparisons, ${r.on_step_for} of ${r.ramp.min_step_time} on this step.`
        : 'Last step.'),
      el('p', {class: 'hint'}, `On a breach: ${r.ramp.on_breach === 'previous' ? 'back one step and stop' : 'mode off'}.`));
    const tbody = el('tbody');
    for (const g of r.guards) {
      const status = !g.judged ? 'waiting for data' : g.holds ? 'holds' : 'breached';
      tbody.append(el('tr', {class: g.judged && !g.holds ? 'breach' : '', dataset: {guard: g.guard, holds: String(g.holds)}},
        el('td', {}, g.guard.replaceAll('_', ' ')),
        el('td', {class: 'num'}, !g.judged && g.value === 0 ? '–' : fmtGuard(g.guard, g.value)),
        el('td', {class: 'num'}, `${g.op} ${fmtGuard(g.guard, g.threshold)}`),
        el('td', {}, status),
        el('td', {class: 'hint'}, g.note || '')));
    }
    box.append(el('div', {class: 'scroll'}, el('table', {id: 'rel-guards', class: 'stack'},
      el('thead', {}, el('tr', {}, el('th', {}, 'Guard'), el('th', {class: 'num'}, 'Value'), el('th', {class: 'num'}, 'Threshold'),
        el('th', {}, 'Status'), el('th', {}, 'Basis'))), tbody)));
    labelCells($('rel-guards'));
  }

  fillFlows(flows) {
    for (const [id, none] of [['rel-stable', false], ['rel-candidate', true]]) {
      const sel = clear($(id));
      if (none) sel.append(el('option', {value: ''}, '(no candidate)'));
      for (const f of flows) {
        const extra = [f.latest ? 'latest' : '', (f.markets || []).join(' ')].filter(Boolean).join(', ');
        sel.append(el('option', {value: `${f.name}@${f.version}`}, `${f.name} v${f.version}${extra ? ` (${extra})` : ''}`));
      }
    }
  }

  show(rule) {
    this.rule = rule;
    const box = clear($('rel-current'));
    box.dataset.mode = rule.mode;
    box.dataset.ratioBp = String(rule.ratio_bp);
    box.dataset.version = String(rule.version);
    box.dataset.site = this.site;
    $('rel-kill').textContent = `Kill switch: ${this.site} to mode off now`;
    $('rel-kill-site').textContent = this.site;
    const stat = (k, v, cls) => el('div', {class: 'stat' + (cls ? ' ' + cls : '')}, el('div', {class: 'k'}, k), el('div', {class: 'v'}, v));
    box.append(
      el('div', {class: 'stats'},
        stat('Mode', rule.mode, rule.mode === 'off' ? '' : rule.mode === 'split' ? 'bad' : 'ok'),
        stat('Ratio', `${(rule.ratio_bp / 100).toFixed(2)} %`),
        rule.ramp ? stat('Ramp step', `${rule.ramp_step + 1} of ${rule.ramp.steps_bp.length}`, rule.ramp_state === 'rolled_back' ? 'bad' : '') : null),
      facts(el('dl', {class: 'facts'}), [
        ['Stable', `${rule.stable_flow} v${rule.stable_version}`],
        ['Candidate', rule.candidate_flow ? `${rule.candidate_flow} v${rule.candidate_version}` : '–'],
        ['Version', String(rule.version)],
        ['Updated', rule.updated_by ? `${rule.updated_by}, ${dateTime(rule.updated_at)}` : 'never (default rule)'],
      ]));
    setSelect($('rel-stable'), `${rule.stable_flow}@${rule.stable_version}`);
    setSelect($('rel-candidate'), rule.candidate_flow ? `${rule.candidate_flow}@${rule.candidate_version}` : '');
    for (const r of document.querySelectorAll('input[name="rel-mode"]')) r.checked = r.value === rule.mode;
    $('rel-ratio').value = String(rule.ratio_bp / 100);
    $('rel-force').checked = false;
    $('rel-ramp-on').checked = !!rule.ramp;
    if (rule.ramp) $('rel-ramp-steps').value = rule.ramp.steps_bp.map((bp) => bp / 100).join(', ');
    this.ratioHint();
  }

  ratioHint() {
    const bp = Math.round(Number($('rel-ratio').value || 0) * 100);
    $('rel-ratio-bp').textContent = `${bp} basis points of 10000 buckets. In shadow mode the candidate runs beside the stable flow for these parcels (all of them at 0); in split mode it serves them.`;
  }

  async save() {
    clear($('rel-kill-result'));
    const out = clear($('rel-result'));
    const [sf, sv] = splitFlow($('rel-stable').value);
    const [cf, cv] = splitFlow($('rel-candidate').value);
    const mode = (document.querySelector('input[name="rel-mode"]:checked') || {}).value || 'off';
    const ratio = Number($('rel-ratio').value || 0);
    if (!(ratio >= 0 && ratio <= 100)) {
      out.append(msgBox('bad', 'The ratio is a percentage from 0 to 100.'));
      return;
    }
    const body = {
      stable_flow: sf, stable_version: sv, candidate_flow: cf, candidate_version: cv, mode,
      ratio_bp: Math.round(ratio * 100), force: $('rel-force').checked, reason: $('rel-reason').value.trim(),
    };
    if ($('rel-ramp-on').checked) {
      body.ramp = {steps_bp: $('rel-ramp-steps').value.split(',').map((x) => Math.round(Number(x.trim()) * 100))};
    }
    const site = this.site;
    if (!site) return;
    const a = await this.api.put(`/api/v1/ops/sites/${encodeURIComponent(site)}/release`, body,
      {headers: {'If-Match': `"${this.rule ? this.rule.version : 0}"`}});
    if (this.site !== site) return;
    requestAnimationFrame(() => this.said());
    if (a.ok) {
      this.show(a.data);
      this.loadRamp(site);
      $('rel-reason').value = '';
      out.append(msgBox('ok', `Saved: ${site} is now ${a.data.mode} at ${(a.data.ratio_bp / 100).toFixed(2)} % (version ${a.data.version}).`));
      return;
    }
    const e = a.error || {};
    const d = e.details || {};
    out.dataset.code = e.code || '';
    if (e.code === 'match_rate_too_low') {
      out.append(el('div', {class: 'refusal', role: 'alert', dataset: {code: e.code}},
        el('strong', {}, 'Refused by the match-rate guard. '),
        `The recent shadow match rate is ${pct(d.match_rate || 0)} over ${d.comparisons || 0} comparisons; `,
        `raising the ratio needs at least ${pct(d.min_match_rate || 0.999)} over ${d.min_comparisons || 1000} comparisons. `,
        'Keep shadowing until it holds, or force it with a reason (audited).'));
      return;
    }
    if (e.code === 'version_conflict') {
      out.append(msgBox('warn', 'Someone else changed this rule meanwhile. It has been reloaded: check it and save again.'));
      const again = await this.api.get(`/api/v1/ops/sites/${encodeURIComponent(site)}/release`);
      if (again.ok) this.show(again.data);
      return;
    }
    if (e.code === 'invalid_release_rule' && Array.isArray(d.problems)) {
      out.append(msgBox('bad', 'The rule has problems:', d.problems.join('; ')));
      return;
    }
    if (e.code === 'reason_required') {
      out.append(msgBox('bad', 'Forcing past the guard needs a reason.'));
      $('rel-reason').focus();
      return;
    }
    out.append(msgBox('bad', e.message || 'The change was not saved.', e.code));
  }

  // said scrolls the answer to a save into view: on a phone it is below
  // the fold.
  said() {
    $('rel-result').scrollIntoView({block: 'nearest'});
  }

  // askKill shows or hides the kill's own form: its reason, confirm and
  // cancel. The rule form's reason is for rule changes and is not used.
  askKill(on) {
    $('rel-kill').hidden = on;
    $('rel-kill-form').hidden = !on;
    $('rel-kill-reason').value = '';
    if (on) $('rel-kill-reason').focus();
  }

  async kill() {
    const site = this.site;
    const reason = $('rel-kill-reason').value.trim();
    if (!site) return;
    if (!reason) {
      $('rel-kill-reason').focus();
      return;
    }
    this.askKill(false);
    clear($('rel-result'));
    const out = clear($('rel-kill-result'));
    const a = await this.api.post(`/api/v1/ops/sites/${encodeURIComponent(site)}/release/kill`, {reason});
    if (!a.ok) {
      out.append(msgBox('bad', (a.error && a.error.message) || 'The kill switch failed.', a.error && a.error.code));
      return;
    }
    // The console moved to another site meanwhile: its rule is on screen.
    if (this.site !== site) return;
    this.show(a.data);
    out.append(msgBox('ok', `Killed: ${site} is off; every parcel is served by ${a.data.stable_flow} v${a.data.stable_version}.`));
  }
}

function fmtGuard(guard, v) {
  return guard === 'sort_p99' ? `${v.toFixed(1)} ms` : pct(v);
}

function msgBox(kind, text, detail) {
  const box = el('div');
  msg(box, kind, text, detail);
  return box;
}

function splitFlow(v) {
  if (!v) return ['', 0];
  const i = v.lastIndexOf('@');
  return [v.slice(0, i), Number(v.slice(i + 1))];
}

function setSelect(sel, value) {
  if (![...sel.options].some((o) => o.value === value) && value) sel.append(el('option', {value}, value.replace('@', ' v')));
  sel.value = value;
}
