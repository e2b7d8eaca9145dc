package webui_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/boombuler/barcode/code128"
	"github.com/chromedp/chromedp"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/station/stationtest"
)

// front stands between the browser and the station: while down, every
// connection is dropped, as with a server that is off or out of reach.
type front struct {
	*httptest.Server
	down atomic.Bool
}

func newFront(t *testing.T, target string) *front {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f := &front{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.down.Load() {
			proxy.ServeHTTP(w, r)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic("front: no hijacker")
		}
		conn, _, err := hj.Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// code types a code and its ending key (Enter or Tab) into whatever has
// the focus, as a keyboard-wedge scanner does, after checking that the
// focus is in a scan box: a scan-only operator never touches the screen.
func (tb *tab) code(code, end string) {
	tb.t.Helper()
	tb.wait("the focus in a visible scan box before scanning "+code,
		`document.activeElement && document.activeElement.classList.contains('scan') && !document.activeElement.closest('[hidden]') && document.activeElement.offsetParent !== null`)
	tb.do(chromedp.KeyEvent(code + end))
}

const answerJS = `document.getElementById('answer').dataset`

func TestScanOnlyTerminal(t *testing.T) {
	st := stationtest.Start(t, stationtest.Options{})
	fr := newFront(t, st.URL)
	b := startBrowserAt(t, st, fr.URL)
	op := st.Login("op1")
	fx := st.Sim.Fixtures()
	warmUp(t, st, op)

	// Receive, sort, bag, seal, label reprint, handover resumed from its
	// sheet's barcode, close: every step a code typed into the focused scan
	// box and ended with Enter or Tab. The weight is a scale's W code.
	t.Run("WholeJourneyByScans", func(t *testing.T) {
		tb := b.tab(t)
		tb.login("/", "op1")
		var tn, hop, trip string
		for i := 0; trip == "" && i < 12; i++ {
			tn = sim.ViaStation("SG-H01", 400+i)
			tb.code("RECEIVE", "\t")
			tb.wait("the receive screen", `document.body.dataset.mode === 'receive'`)
			tb.code(tn, "\t")
			tb.wait("the receipt", fmt.Sprintf(`%s.trackingNo === %q && %s.state === 'ok'`, answerJS, tn, answerJS))
			tb.code("SORT", "\n")
			tb.wait("the sort screen", `document.body.dataset.mode === 'sort'`)
			tb.code(tn, "\n")
			tb.wait("the chute", fmt.Sprintf(`%s.trackingNo === %q && %s.state === 'ok' && %s.nextHop !== ''`, answerJS, tn, answerJS, answerJS))
			hop = eval[string](tb, answerJS+`.nextHop`)
			trip = fx.TripTo("SG-H01", hop)
		}
		if trip == "" {
			t.Fatalf("no sorted parcel whose next hop %s a trip serves", hop)
		}
		tb.shot("terminal-scan-sorted")

		// Two codes ended with Tab in one burst: two scans, not one glued
		// code. The second is a repeat receive, which is not an error.
		tb.code("RECEIVE\t"+tn, "\t")
		tb.wait("the repeat", fmt.Sprintf(`%s.trackingNo === %q && %s.state === 'repeat'`, answerJS, tn, answerJS))
		if got := tb.text("#answer"); !strings.Contains(got, "ALREADY HERE") || strings.Contains(got, "Not accepted") {
			t.Fatalf("a repeat receive shows %q", got)
		}
		if held := eval[string](tb, `document.body.dataset.held`); held != "0" {
			t.Fatal("a repeat holds the scan line like an exception")
		}
		tb.shot("terminal-scan-repeat")

		// Bag: its next hop, the parcel, the parcel again (a repeat), the
		// weight as a code, SEAL.
		tb.code("BAG", "\t")
		tb.wait("the bag screen", `document.body.dataset.view === 'bag' && document.activeElement.id === 'bag-next-hop'`)
		tb.code(hop, "\t")
		tb.wait("the open bag", `document.body.dataset.bagStatus === 'open' && document.activeElement.id === 'bag-scan'`)
		bagID := tb.text("#bag-id")
		tb.code(tn, "\n")
		tb.wait("the parcel in the bag", `document.getElementById('bag-count').textContent === '1'`)
		tb.code(tn, "\t")
		tb.wait("the repeat in the bag", `document.getElementById('bag-msg').dataset.code === 'already_in_this_bag'`)
		if cls := eval[string](tb, `document.getElementById('bag-msg').className`); !strings.Contains(cls, "repeat") {
			t.Fatalf("a repeat in the bag looks like %q", cls)
		}
		tb.shot("terminal-scan-bag-repeat")
		tb.code("W1250", "\t")
		tb.wait("the weight", `document.getElementById('bag-weight').value === '1250'`)
		// SEAL and, at once, DONE: the scan right after sealing is not lost
		// to a button.
		tb.code("SEAL\tDONE", "\t")
		tb.wait("back at the start after the seal", `document.getElementById('bag-work').hidden && document.activeElement.id === 'bag-next-hop'`)
		if n := st.Count(`SELECT count(*) FROM bags WHERE id = $1 AND status = 'sealed' AND weight_g = 1250`, bagID); n != 1 {
			t.Fatalf("bag %s not sealed at 1250 g", bagID)
		}

		// The label again: the sealed bag is listed, and its id scanned at
		// the start opens it with its label.
		tb.wait("the sealed bag listed", fmt.Sprintf(`document.querySelector('#bag-sealed-list li[data-bag-id=%q]') !== null`, bagID))
		tb.code(bagID, "\n")
		tb.wait("the reprint", `document.body.dataset.bagStatus === 'sealed' && document.getElementById('bag-label-img').complete && document.getElementById('bag-label-img').naturalWidth > 0`)
		if id := eval[string](tb, `document.activeElement.id`); id != "bag-scan" {
			t.Fatalf("focus on %q after opening a sealed bag", id)
		}
		tb.longShot("terminal-scan-reprint")
		tb.code("DONE", "\t")

		// Handover: the trip, DONE (back to the start), the sheet's barcode
		// (the handover id) resumes it, the bag, CLOSE twice.
		tb.code("HANDOVER", "\t")
		tb.wait("the handover screen", `document.body.dataset.view === 'handover' && document.activeElement.id === 'ho-ref'`)
		tb.code(trip, "\t")
		tb.wait("the open handover", `document.body.dataset.handoverStatus === 'open' && document.activeElement.id === 'ho-scan'`)
		hoID := tb.text("#ho-id")
		if got := eval[string](tb, `document.querySelector('#ho-sheet svg.barcode').dataset.code`); got != hoID {
			t.Fatalf("the handover sheet's barcode holds %q, want %s", got, hoID)
		}
		tb.code("DONE", "\t")
		tb.wait("the open handover listed", fmt.Sprintf(`document.querySelector('#ho-open-list li[data-handover-id=%q]') !== null`, hoID))
		tb.shot("terminal-scan-handover-list")
		tb.code(hoID, "\t")
		tb.wait("the resumed handover", fmt.Sprintf(`document.body.dataset.handoverStatus === 'open' && document.getElementById('ho-id').textContent === %q && document.activeElement.id === 'ho-scan'`, hoID))
		tb.code(bagID, "\t")
		tb.wait("the bag loaded", `document.getElementById('ho-bag-count').textContent === '1'`)
		tb.code("CLOSE", "\t")
		tb.wait("the question", `document.body.dataset.confirmClose === 'true'`)
		tb.shot("terminal-scan-close-asked")
		tb.code("CLOSE", "\t")
		tb.wait("the closed handover", `document.body.dataset.handoverStatus === 'closed'`)
		if n := st.Count(`SELECT count(*) FROM handovers WHERE id = $1 AND status = 'closed'`, hoID); n != 1 {
			t.Fatalf("handover %s not closed", hoID)
		}
		tb.shot("terminal-scan-closed")
		tb.code("DONE", "\t")

		// The parcel has left: sorting it again says so, not as an error,
		// and holds nothing.
		tb.code("SORT", "\t")
		tb.wait("the sort screen", `document.body.dataset.mode === 'sort'`)
		tb.code(tn, "\t")
		tb.wait("the departed parcel", fmt.Sprintf(`%s.trackingNo === %q && %s.state === 'departed'`, answerJS, tn, answerJS))
		if got := tb.text("#answer"); !strings.Contains(got, "DEPARTED") || strings.Contains(got, "Not accepted") {
			t.Fatalf("a departed parcel shows %q", got)
		}
		if held := eval[string](tb, `document.body.dataset.held`); held != "0" {
			t.Fatal("a departed parcel holds the scan line")
		}
		tb.shot("terminal-scan-departed")
	})

	// An exception stays until acknowledged; the codes scanned behind it
	// wait, in order, and go once it is acknowledged.
	t.Run("AnExceptionWaitsForAcknowledgement", func(t *testing.T) {
		tb := b.tab(t)
		tb.login("/", "op1")
		exc := stationtest.Parcel(fx, "SG-H01", sim.Cancelled, 1)
		later := []string{sim.ViaStation("SG-H01", 500), sim.ViaStation("SG-H01", 501)}
		tb.code(exc+"\n"+later[0]+"\t"+later[1], "\n")
		tb.wait("the held exception with two scans behind it", fmt.Sprintf(`%s.trackingNo === %q && %s.held === 'true' && `+
			`document.getElementById('hold-bar').dataset.waiting === '2' && !document.getElementById('hold-bar').hidden`, answerJS, exc, answerJS))
		if n := st.Count(`SELECT count(*) FROM work_orders WHERE tracking_no = ANY($1)`, later); n != 0 {
			t.Fatalf("%d scans behind the exception went before it was acknowledged", n)
		}
		if got := tb.text("#hold-bar"); !strings.Contains(got, "ACK") || !strings.Contains(got, later[0]+", "+later[1]) {
			t.Fatalf("the hold bar says %q", got)
		}
		tb.shot("terminal-exception-held")
		// A reload loses neither the exception nor the scans behind it: they
		// are kept on the device for their operator.
		tb.do(chromedp.Reload())
		tb.wait("the exception and its waiting scans after a reload", fmt.Sprintf(`%s.trackingNo === %q && %s.held === 'true' && `+
			`document.getElementById('hold-bar').dataset.waiting === '2'`, answerJS, exc, answerJS))
		if n := st.Count(`SELECT count(*) FROM work_orders WHERE tracking_no = ANY($1)`, later); n != 0 {
			t.Fatalf("%d scans behind the exception went before it was acknowledged", n)
		}
		// Enter on the empty box acknowledges; the two go, in order.
		tb.code("", "\n")
		tb.wait("the later scans answered", fmt.Sprintf(`%s.trackingNo === %q && %s.state === 'ok' && document.body.dataset.held === '0'`, answerJS, later[1], answerJS))
		order := eval[[]string](tb, `Array.from(document.querySelectorAll('#recent li .tn')).map(n => n.textContent)`)
		if len(order) < 3 || order[0] != later[1] || order[1] != later[0] || order[2] != exc {
			t.Fatalf("scans listed %v, want newest first %s, %s, %s", order, later[1], later[0], exc)
		}
		var first string
		if err := st.App.DB().QueryRow(t.Context(), `SELECT tracking_no FROM work_orders WHERE tracking_no = ANY($1) ORDER BY created_at, id LIMIT 1`, later).Scan(&first); err != nil || first != later[0] {
			t.Fatalf("first recorded %q (%v), want %s", first, err, later[0])
		}
		// A second exception, acknowledged by scanning ACK.
		exc2 := stationtest.Parcel(fx, "SG-H01", sim.Cancelled, 2)
		tb.code(exc2, "\t")
		tb.wait("the second exception held", fmt.Sprintf(`%s.trackingNo === %q && %s.held === 'true'`, answerJS, exc2, answerJS))
		tb.code("ACK", "\t")
		tb.wait("the acknowledgement", `document.body.dataset.held === '0' && document.getElementById('hold-bar').hidden`)
	})

	// The printed command codes are Code 128 as the label printer's
	// library draws them.
	t.Run("CommandSheetIsCode128", func(t *testing.T) {
		tb := b.tab(t)
		tb.login("/", "op1")
		tb.do(chromedp.KeyEvent("5", chromedp.KeyModifiers(chromedp.ModifierAlt)))
		tb.wait("the command sheet", `document.querySelectorAll('#codes-sheet figure.code-card').length >= 9`)
		cards := eval[[][]string](tb, `Array.from(document.querySelectorAll('#codes-sheet svg.barcode')).map(s => [s.dataset.code, s.dataset.modules])`)
		checked := 0
		for _, c := range cards {
			if strings.ContainsAny(c[0], "0123456789") {
				continue // the library may switch to code set C for digits
			}
			if want := modules(t, c[0]); c[1] != want {
				t.Errorf("%s drawn as %s, Code 128 is %s", c[0], c[1], want)
			}
			checked++
		}
		if checked < 9 {
			t.Fatalf("checked %d codes: %v", checked, cards)
		}
		tb.longShot("terminal-command-codes")
		// A screen code scanned here starts work.
		tb.code("SORT", "\t")
		tb.wait("the sort screen", `document.body.dataset.view === 'sort'`)
	})

	// A reload while the server cannot be reached keeps the terminal, its
	// operator and the queued scans on screen (the service worker), and
	// the queue goes out when the server is back.
	t.Run("ReloadWhileOfflineKeepsTheTerminal", func(t *testing.T) {
		tb := b.tab(t)
		tb.login("/", "op1")
		tb.wait("the service worker in control", `navigator.serviceWorker.controller !== null`)
		fr.down.Store(true)
		defer fr.down.Store(false)
		tn := sim.ViaStation("SG-H01", 600)
		tb.code(tn, "\t")
		tb.wait("the queued scan", fmt.Sprintf(`%s.trackingNo === %q && %s.state === 'queued'`, answerJS, tn, answerJS))
		tb.do(chromedp.Reload())
		tb.wait("the terminal after the reload", `!document.getElementById('app-view').hidden && document.getElementById('queue').dataset.length === '1'`)
		tb.wait("the queued scan listed", fmt.Sprintf(`document.querySelector('#recent li[data-state="queued"] .tn') && document.querySelector('#recent li[data-state="queued"] .tn').textContent === %q`, tn))
		tb.wait("offline shown", `document.getElementById('net').textContent === 'offline'`)
		if id := eval[string](tb, `document.activeElement.id`); id != "scan-input" {
			t.Fatalf("focus on %q after the reload", id)
		}
		tb.shot("terminal-offline-reload")
		if n := st.Count(`SELECT count(*) FROM work_orders WHERE tracking_no = $1`, tn); n != 0 {
			t.Fatalf("%d work orders while the server was out of reach", n)
		}
		fr.down.Store(false)
		tb.wait("the queue sent", `document.getElementById('queue').dataset.length === '0'`)
		if n := st.Count(`SELECT count(*) FROM work_orders WHERE tracking_no = $1 AND actor_id = 'op1'`, tn); n != 1 {
			t.Fatalf("%d work orders by op1 for the queued scan, want 1", n)
		}
	})
}

// modules is the Code 128 symbol of s as boombuler/barcode (the bag
// labels' library) draws it: 1 for a bar module, 0 for a space.
func modules(t *testing.T, s string) string {
	t.Helper()
	bc, err := code128.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	r := bc.Bounds()
	for x := r.Min.X; x < r.Max.X; x++ {
		c, _, _, _ := bc.At(x, 0).RGBA()
		if c == 0 {
			sb.WriteByte('1')
		} else {
			sb.WriteByte('0')
		}
	}
	return sb.String()
}
