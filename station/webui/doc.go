// Package webui serves the people-facing web pages of a station from the
// binary: the terminal for operators and supervisors at / (login, receive
// and sort scans with an offline queue, bags, handovers, all of it workable
// by scanning alone: see the scan language in the README), its service
// worker at /sw.js (the page on screen when reloaded offline) and the ops console
// at /ops (gray release with its guarded ramp, all sites, flows and market
// assignments, audit, reconciliation, sort trace waterfall, tracking relay).
// The pages are plain HTML, CSS and JavaScript modules,
// embedded at build time: no build step, nothing fetched from elsewhere.
//
// It owns the static assets and the headers they are served with (a strict
// Content-Security-Policy among them). It must never hold business logic or
// talk to the database: the pages call the JSON API of station/httpapi like
// any other client, with the operator's bearer token, and every rule is
// enforced there.
package webui
