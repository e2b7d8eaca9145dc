package webui_test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/station/stationtest"
)

// TestOfflineReplayAcrossALogout is issue 17's case: op1 at SG-H01 goes
// offline, receives a parcel (queued), and logs out; op2 of SG-H02 logs in
// on the same terminal, online. op1's scan must not be sent with op2's
// token (it would be recorded at SG-H02 as WRONG_STATION, and op1's receive
// would never exist): it waits for op1, and lands once, as op1's, at
// SG-H01 when op1 logs in again.
func TestOfflineReplayAcrossALogout(t *testing.T) {
	st := stationtest.Start(t, stationtest.Options{})
	b := startBrowser(t, st)
	tb := b.tab(t)
	tn := sim.ViaStation("SG-H01", 7)

	tb.login("/", "op1")
	tb.do(chromedp.KeyEvent("1", chromedp.KeyModifiers(chromedp.ModifierAlt)))
	tb.wait("the receive screen", `document.body.dataset.mode === 'receive'`)
	tb.offline(true)
	tb.scan("scan-input", tn)
	tb.wait("the queued receive", fmt.Sprintf(`document.getElementById('answer').dataset.trackingNo === %q && document.getElementById('answer').dataset.state === 'queued'`, tn))
	scanID := eval[string](tb, `JSON.parse(localStorage.getItem('station.queue.v2'))[0].scan_id`)
	owner := eval[string](tb, `(q => q[0].operator_id + '@' + q[0].station_id)(JSON.parse(localStorage.getItem('station.queue.v2')))`)
	if owner != "op1@SG-H01" {
		t.Fatalf("the queued scan belongs to %q, want op1@SG-H01", owner)
	}

	// Logging out with a scan still queued warns first; nothing is lost
	// by staying.
	tb.do(chromedp.Click(chromedp.ID("logout")))
	tb.wait("the logout warning", `!document.getElementById('logout-warn').hidden`)
	if eval[bool](tb, `document.getElementById('app-view').hidden`) {
		t.Fatal("logged out without waiting for an answer to the warning")
	}
	tb.shot("terminal-logout-warning")
	tb.do(chromedp.Click(chromedp.ID("logout-stay")))
	tb.wait("the warning gone, still logged in", `document.getElementById('logout-warn').hidden && !document.getElementById('app-view').hidden`)
	tb.do(chromedp.Click(chromedp.ID("logout")))
	tb.wait("the logout warning again", `!document.getElementById('logout-warn').hidden`)
	tb.do(chromedp.Click(chromedp.ID("logout-anyway")))
	tb.wait("the login screen", `!document.getElementById('login-view').hidden`)
	tb.wait("op1's scan shown as waiting", `document.getElementById('login-queue').dataset.count === '1' && document.getElementById('login-queue').textContent.includes('op1 at SG-H01')`)
	tb.shot("terminal-login-scans-waiting")

	// op2 of SG-H02, online, on the same terminal.
	tb.offline(false)
	tb.login("/", "op2")
	if got := tb.text("#station"); got != "SG-H02" {
		t.Fatalf("top bar shows station %q", got)
	}
	tb.wait("op1's scan kept for op1", `document.getElementById('queue-others').dataset.count === '1' && document.getElementById('queue').dataset.length === '0'`)
	// Let op2's terminal flush its queue on its timer, twice, and scan a
	// parcel of its own (a scan flushes the queue first): op1's scan must
	// still be waiting.
	flushes := eval[int](tb, `Number(document.body.dataset.flushes)`)
	tb.wait("two flushes as op2", fmt.Sprintf(`Number(document.body.dataset.flushes) >= %d`, flushes+2))
	own := sim.ViaStation("SG-H02", 3)
	tb.scan("scan-input", own)
	tb.wait("op2's own scan", fmt.Sprintf(`document.getElementById('answer').dataset.trackingNo === %q && document.getElementById('answer').dataset.state !== 'idle' && document.getElementById('answer').dataset.state !== 'queued'`, own))
	tb.shot("terminal-others-scans-kept")
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE scan_id = $1`, scanID); n != 0 {
		t.Fatalf("op1's queued scan was sent while op2 was logged in: %d work orders", n)
	}
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE tracking_no = $1 AND station_id = 'SG-H02'`, tn); n != 0 {
		t.Fatalf("op1's parcel recorded at SG-H02: %d work orders", n)
	}
	if n := eval[int](tb, `document.querySelectorAll('#recent li[data-scan-id="`+scanID+`"]').length`); n != 0 {
		t.Fatal("op2's screen lists op1's scan")
	}
	if got := eval[string](tb, `JSON.parse(localStorage.getItem('station.queue.v2')).map(x => x.scan_id).join(',')`); got != scanID {
		t.Fatalf("queue holds %q, want op1's scan %s", got, scanID)
	}

	op2Flushes := eval[int](tb, `Number(document.body.dataset.flushes)`) - flushes

	// op2 logs out (nothing of theirs queued: no warning); op1 comes back
	// and their receive lands, once, as theirs, at SG-H01.
	tb.do(chromedp.Click(chromedp.ID("logout")))
	tb.wait("the login screen", `!document.getElementById('login-view').hidden`)
	tb.login("/", "op1")
	tb.wait("op1's queue to drain", `document.getElementById('queue').dataset.length === '0' && (JSON.parse(localStorage.getItem('station.queue.v2')) || []).length === 0`)
	tb.wait("the replayed receive on screen", fmt.Sprintf(`document.querySelector('#recent li[data-scan-id=%q]') && document.querySelector('#recent li[data-scan-id=%q]').dataset.state !== 'queued'`, scanID, scanID))
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE scan_id = $1 AND station_id = 'SG-H01' AND actor_id = 'op1'`, scanID); n != 1 {
		t.Fatalf("op1's receive: %d work orders at SG-H01 by op1, want 1", n)
	}
	if n := st.Count(`SELECT count(*) FROM receipts WHERE tracking_no = $1 AND station_id = 'SG-H01'`, tn); n != 1 {
		t.Fatalf("%s: %d receipts at SG-H01, want 1", tn, n)
	}
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE tracking_no = $1 AND station_id <> 'SG-H01'`, tn); n != 0 {
		t.Fatalf("%s: %d work orders elsewhere", tn, n)
	}
	tb.shot("terminal-replayed-for-its-owner")

	// Logging out online with a scan still queued sends it first, as its
	// operator's, and then logs out without a warning: nothing is left.
	tn2 := sim.ViaStation("SG-H01", 8)
	tb.offline(true)
	tb.scan("scan-input", tn2)
	tb.wait("the second queued scan", fmt.Sprintf(`document.getElementById('answer').dataset.trackingNo === %q && document.getElementById('answer').dataset.state === 'queued'`, tn2))
	scanID2 := eval[string](tb, `JSON.parse(localStorage.getItem('station.queue.v2'))[0].scan_id`)
	tb.offline(false)
	tb.do(chromedp.Click(chromedp.ID("logout")))
	tb.wait("the login screen, no warning in the way", `!document.getElementById('login-view').hidden`)
	if got := eval[int](tb, `(JSON.parse(localStorage.getItem('station.queue.v2')) || []).length`); got != 0 {
		t.Fatalf("%d scans left queued after logging out online", got)
	}
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE scan_id = $1 AND station_id = 'SG-H01' AND actor_id = 'op1'`, scanID2); n != 1 {
		t.Fatalf("the scan queued before an online logout: %d work orders by op1 at SG-H01, want 1", n)
	}
	// Scans queued by the page before entries carried their owner: with no
	// session on the terminal their owner is unknown, and they are shown and
	// never sent as whoever logs in; with the session that queued them still
	// there, they are that operator's.
	legacy := func(tn, scanID string) string {
		return fmt.Sprintf(`localStorage.setItem('station.queue.v1', JSON.stringify([{kind: 'receive', path: '/api/v1/receive', `+
			`body: {tracking_no: %[1]q, scan_id: %[2]q}, scan_id: %[2]q, tracking_no: %[1]q}]))`, tn, scanID)
	}
	tb.do(chromedp.Evaluate[chromedp.Void](legacy(sim.ViaStation("SG-H02", 9), "legacy-unowned")), chromedp.Reload())
	tb.wait("the unowned scan shown", `document.getElementById('login-queue').textContent.includes('operator unknown')`)
	tb.login("/", "op2")
	flushes = eval[int](tb, `Number(document.body.dataset.flushes)`)
	tb.wait("two flushes as op2", fmt.Sprintf(`Number(document.body.dataset.flushes) >= %d`, flushes+2))
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE scan_id = 'legacy-unowned'`); n != 0 {
		t.Fatalf("a scan of unknown owner was sent as op2: %d work orders", n)
	}
	tb.do(chromedp.Evaluate[chromedp.Void](legacy(sim.ViaStation("SG-H02", 10), "legacy-op2")), chromedp.Reload())
	tb.wait("the adopted scan sent", `localStorage.getItem('station.queue.v1') === null && !(JSON.parse(localStorage.getItem('station.queue.v2')) || []).some(x => x.scan_id === 'legacy-op2')`)
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE scan_id = 'legacy-op2' AND station_id = 'SG-H02' AND actor_id = 'op2'`); n != 1 {
		t.Fatalf("the scan queued under op2's session: %d work orders by op2 at SG-H02, want 1", n)
	}

	report(t, "offline replay across a logout: 1 receive queued by op1@SG-H01, kept through op2@SG-H02's session (%d flushes, 0 sent), landed once as op1's at SG-H01; 1 scan queued at an online logout, sent first as op1's", op2Flushes)
}

// report logs a figure line for the reliability report (`make
// reliability`, station/reliability/report), which picks up lines that
// start with "REPORT ".
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("REPORT "+format, args...)
}
