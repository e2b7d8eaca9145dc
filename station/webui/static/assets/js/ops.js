// The ops console: login (ops role only), a site picker, and eight views
// switched by the tabs or the URL hash.

import {API, roleLabel} from './api.js';
import {$, normalizeCode} from './dom.js';
import {setupLogin, showLogin} from './login.js';
import {ReleaseView} from './release.js';
import {AuditView} from './audit.js';
import {SitesView} from './sites.js';
import {FlowsView} from './flows.js';
import {ReconView} from './recon.js';
import {TraceView} from './traceview.js';
import {RelayView} from './relay.js';
import {WhatifView} from './whatif.js';

const SITE_KEY = 'station.ops.site.v1';
const api = new API({
  sessionKey: 'station.session.ops.v1',
  onUnauthenticated: () => loggedOut('Your session ended. Log in again.'),
});
// The site the console shows: set by logging in and by Show, never by
// typing alone. Every view loads it and every action acts on it, so an
// edit left in the field cannot turn Save or Kill onto another site.
let shownSite = '';
const ctx = {api, site: () => shownSite};
const views = {
  release: new ReleaseView(ctx),
  sites: new SitesView(ctx),
  flows: new FlowsView(ctx),
  audit: new AuditView(ctx),
  recon: new ReconView(ctx),
  trace: new TraceView(ctx),
  relay: new RelayView(ctx),
  whatif: new WhatifView(ctx),
};
let current = '';

function loggedOut(message) {
  if (current) views[current].deactivate?.();
  current = '';
  showLogin(message);
}

function loggedIn(session) {
  const op = session.operator;
  $('who').textContent = op.name || op.id;
  $('station').textContent = op.station_id;
  $('role').textContent = roleLabel(op.role);
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  shownSite = localStorage.getItem(SITE_KEY) || op.station_id;
  $('site').value = shownSite;
  go(viewFromHash());
}

function viewFromHash() {
  const v = location.hash.replace(/^#\/?/, '');
  return v in views ? v : 'release';
}

function go(view) {
  if (!api.session) return;
  if (current && current !== view) views[current].deactivate?.();
  current = view;
  if (location.hash !== '#' + view) history.replaceState(null, '', '#' + view);
  for (const b of document.querySelectorAll('nav.tabs button')) {
    if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  for (const name of Object.keys(views)) $(name + '-view').hidden = name !== view;
  // The trace, relay, sites and flows views do not depend on the site.
  $('site-form').hidden = ['trace', 'relay', 'sites', 'flows'].includes(view);
  load(view);
}

// load (re)fills a view. Its section says whether it is loading or ready,
// and counts its loads, so a test (or a slow eye) knows the figures on
// screen are the fresh ones.
async function load(view) {
  const section = $(view + '-view');
  section.dataset.state = 'loading';
  section.dataset.loads = String(Number(section.dataset.loads || 0) + 1);
  try {
    await views[view].activate();
  } finally {
    section.dataset.state = 'ready';
  }
}

setupLogin(api, {
  onLoggedIn: loggedIn,
  check: (s) => (s.operator.role === 'ops' ? '' : `The ops console needs the ops role; ${s.operator.id} is ${roleLabel(s.operator.role).toLowerCase()}.` +
    (s.operator.role === 'supervisor' ? ' Supervisors run the floor at /floor.' : '')),
});

$('logout').addEventListener('click', async () => {
  await api.logout();
  loggedOut('');
});
for (const b of document.querySelectorAll('nav.tabs button')) {
  b.addEventListener('click', () => go(b.dataset.view));
}
$('site-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const site = normalizeCode($('site').value);
  $('site').value = site;
  shownSite = site;
  localStorage.setItem(SITE_KEY, site);
  if (current) load(current);
});
window.addEventListener('hashchange', () => go(viewFromHash()));

if (api.session && api.session.operator.role === 'ops') loggedIn(api.session);
else showLogin('');
