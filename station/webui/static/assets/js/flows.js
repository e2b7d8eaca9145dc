// Flows as runtime configuration: which flow each market sorts with
// (changed here, audited), a stored version with who published it, when,
// and its diff against the version before, and publishing a new version.

import {unavailable} from './api.js';
import {$, el, clear, msg, dateTime, facts, labelCells} from './dom.js';

export class FlowsView {
  constructor(ctx) {
    this.ctx = ctx;
    $('flows-pick').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.showVersion($('flows-version').value);
    });
    $('flows-assign').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.assign();
    });
    $('flows-publish').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.publish();
    });
  }

  get api() { return this.ctx.api; }

  async activate() {
    const [markets, flows] = await Promise.all([this.api.get('/api/v1/ops/markets'), this.api.get('/api/v1/flows')]);
    const un = $('flows-unavailable');
    if (!markets.ok) {
      un.hidden = false;
      un.textContent = unavailable(markets) ? 'Runtime flows are not on this server yet.' : (markets.error && markets.error.message) || 'error';
      return;
    }
    un.hidden = true;
    const tbody = clear($('flows-markets').tBodies[0]);
    for (const m of markets.data.markets || []) {
      tbody.append(el('tr', {dataset: {market: m.market}},
        el('td', {}, m.market), el('td', {}, m.flow), el('td', {}, m.version ? `v${m.version}` : 'newest'),
        el('td', {}, `${m.updated_by}, ${dateTime(m.updated_at)}`)));
    }
    labelCells($('flows-markets'));
    const audit = await this.api.get('/api/v1/ops/flow-audit');
    const atbody = clear($('flows-audit').tBodies[0]);
    for (const e of (audit.ok && audit.data.entries) || []) {
      const after = e.after || {};
      const what = e.action === 'publish' ? `${after.name} v${after.version}`
        : `${e.subject} → ${after.flow} ${after.version ? 'v' + after.version : '(newest)'}${e.before ? ` (was ${e.before.flow} ${e.before.version ? 'v' + e.before.version : 'newest'})` : ''}`;
      atbody.append(el('tr', {dataset: {action: e.action}}, el('td', {}, dateTime(e.created_at)), el('td', {}, e.actor),
        el('td', {}, e.action), el('td', {}, what), el('td', {}, e.reason || '–')));
    }
    labelCells($('flows-audit'));
    const list = flows.ok ? flows.data.flows || [] : [];
    const pick = clear($('flows-version'));
    const assign = clear($('flows-assign-flow'));
    for (const f of list) {
      pick.append(el('option', {value: `${f.name}@${f.version}`}, `${f.name} v${f.version}${f.latest ? ' (newest)' : ''}`));
      if (f.latest) assign.append(el('option', {value: `${f.name}@0`}, `${f.name}, following the newest`));
      assign.append(el('option', {value: `${f.name}@${f.version}`}, `${f.name} v${f.version}`));
    }
    const newest = list.filter((f) => f.latest).map((f) => `${f.name}@${f.version}`);
    if (!pick.value && newest.length) pick.value = newest[0];
    if (pick.value) await this.showVersion(pick.value);
  }

  async showVersion(v) {
    const [name, version] = split(v);
    const a = await this.api.get(`/api/v1/ops/flows/${encodeURIComponent(name)}?version=${version}`);
    const diff = clear($('flows-diff'));
    if (!a.ok) {
      clear($('flows-facts'));
      diff.append(el('span', {}, (a.error && a.error.message) || 'error'));
      return;
    }
    const d = a.data;
    facts($('flows-facts'), [
      ['Flow', `${d.name} v${d.version}`],
      ['Published by', d.created_by],
      ['When', dateTime(d.created_at)],
      ['Against', d.previous ? `v${d.previous}` : 'first version'],
    ]);
    diff.dataset.flow = `${d.name}@${d.version}`;
    for (const l of d.diff || []) {
      diff.append(el('span', {class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : ''}, `${l.op} ${l.line}`));
    }
  }

  async assign() {
    const out = clear($('flows-assign-result'));
    const market = $('flows-assign-market').value.trim().toUpperCase();
    const [flow, version] = split($('flows-assign-flow').value);
    const a = await this.api.put(`/api/v1/ops/markets/${encodeURIComponent(market)}/flow`,
      {flow, version, reason: $('flows-assign-reason').value.trim()});
    const box = el('div');
    if (a.ok) {
      msg(box, 'ok', `${a.data.market} now sorts with ${a.data.flow} ${a.data.version ? 'v' + a.data.version : '(newest)'}.`);
      out.append(box);
      $('flows-assign-reason').value = '';
      await this.activate();
      return;
    }
    msg(box, 'bad', (a.error && a.error.message) || 'not assigned', a.error && a.error.code);
    out.append(box);
  }

  async publish() {
    const out = clear($('flows-publish-result'));
    const name = $('flows-publish-name').value.trim();
    const a = await this.api.put(`/api/v1/ops/flows/${encodeURIComponent(name)}`, $('flows-publish-src').value, {raw: 'application/yaml'});
    const box = el('div');
    out.dataset.code = a.ok ? '' : (a.error && a.error.code) || '';
    if (a.ok) {
      msg(box, 'ok', a.data.unchanged ? `Unchanged: ${a.data.name} v${a.data.version} already holds this config.`
        : `Published ${a.data.name} v${a.data.version}; every instance picks it up.`);
      out.append(box);
      await this.activate();
      return;
    }
    const problems = (a.error && a.error.details && a.error.details.problems) || [];
    msg(box, 'bad', (a.error && a.error.code === 'invalid_flow') ? 'The flow has problems; nothing was stored:' : (a.error && a.error.message) || 'not published');
    out.append(box);
    if (problems.length) {
      out.append(el('ul', {id: 'flows-problems'}, ...problems.map((p) => el('li', {}, p.node ? `${p.node}: ${p.problem}` : p.problem))));
    }
  }
}

function split(v) {
  const i = v.lastIndexOf('@');
  return [v.slice(0, i), Number(v.slice(i + 1))];
}
