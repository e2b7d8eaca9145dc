package webui_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

// TestOpsSaveAndKillActOnTheShownSite is issue 17's case: the console showed
// SG-H01's rule, but Save and Kill acted on whatever site was typed in the
// site field, and Kill wrote the rule form's reason into its audit record.
func TestOpsSaveAndKillActOnTheShownSite(t *testing.T) {
	st := stationtest.Start(t, stationtest.Options{})
	b := startBrowser(t, st)
	ops := st.Login("ops1")
	other := siteRule(t, st, ops, "SG-H02")

	tb := b.tab(t)
	tb.login("/ops", "ops1")
	tb.wait("SG-H01's rule", `document.getElementById('release-view').dataset.state === 'ready' && document.getElementById('rel-current').dataset.site === 'SG-H01'`)
	// Another site typed, not shown (Show is not pressed).
	tb.do(chromedp.SetValue(chromedp.ID("site"), "SG-H02"))

	tb.do(
		chromedp.SetValue(chromedp.ID("rel-candidate"), "full_v2@1"),
		chromedp.Click(chromedp.CSS(`input[name="rel-mode"][value="shadow"]`)),
		chromedp.SetValue(chromedp.ID("rel-ratio"), "100"),
		chromedp.SendKeys(chromedp.ID("rel-reason"), "shadow V2 at the shown site"),
		chromedp.Click(chromedp.ID("rel-save")),
	)
	tb.wait("the saved rule", `document.getElementById('rel-current').dataset.mode === 'shadow'`)
	if r := siteRule(t, st, ops, "SG-H01"); r.Mode != sorting.ModeShadow || r.CandidateFlow != "full_v2" {
		t.Fatalf("Save did not reach the shown site SG-H01: %+v", r)
	}
	if r := siteRule(t, st, ops, "SG-H02"); r.Version != other.Version || r.Mode != other.Mode {
		t.Fatalf("Save changed the typed site SG-H02: %+v, was %+v", r, other)
	}

	// Kill asks for its own reason; the rule form's reason is a decoy.
	tb.do(chromedp.SendKeys(chromedp.ID("rel-reason"), "rule form reason, not the kill's"))
	tb.do(chromedp.Click(chromedp.ID("rel-kill")))
	tb.wait("the kill's reason field", `!document.getElementById('rel-kill-form').hidden && document.activeElement.id === 'rel-kill-reason'`)
	if got := tb.text("#rel-kill-form label"); got != "Why switch SG-H01 off? (goes into the audit trail)" {
		t.Fatalf("the kill asks %q", got)
	}
	tb.scrollTo("rel-kill-form")
	tb.shot("ops-kill-reason")
	tb.do(chromedp.SendKeys(chromedp.ID("rel-kill-reason"), "candidate misroutes SG-L09\n"))
	tb.wait("the killed rule", `document.getElementById('rel-current').dataset.mode === 'off'`)
	if r := siteRule(t, st, ops, "SG-H01"); r.Mode != sorting.ModeOff {
		t.Fatalf("Kill did not reach the shown site SG-H01: %+v", r)
	}
	if r := siteRule(t, st, ops, "SG-H02"); r.Version != other.Version || r.Mode != other.Mode {
		t.Fatalf("Kill changed the typed site SG-H02: %+v, was %+v", r, other)
	}
	if n := st.Count(`SELECT count(*) FROM release_audit WHERE site_id = 'SG-H01' AND action = 'kill' AND actor = 'ops1'
		AND reason = 'candidate misroutes SG-L09'`); n != 1 {
		t.Fatalf("%d kill audit records with the kill's own reason", n)
	}
	if n := st.Count(`SELECT count(*) FROM release_audit WHERE site_id <> 'SG-H01'`); n != 0 {
		t.Fatalf("%d audit records for other sites", n)
	}
}

func siteRule(t *testing.T, st *stationtest.Station, token, site string) sorting.Rule {
	t.Helper()
	var r sorting.Rule
	st.Do("GET", "/api/v1/ops/sites/"+site+"/release", token, nil, http.StatusOK, &r)
	return r
}

// TestOpsReconciliationBlamesTheStepOnlyStableHas is issue 17's case on the
// ops page: with the lean flow as candidate, a parcel the full flow finds
// intercepted at check_delivery_status is blamed on that step, said to be
// the stable flow's alone, and both runs are drawn on one time scale.
func TestOpsReconciliationBlamesTheStepOnlyStableHas(t *testing.T) {
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		c.Release.ShadowDeadline = 10 * time.Second
	}})
	b := startBrowser(t, st)
	ops := st.Login("ops1")
	op := st.Login("op1")
	cur := siteRule(t, st, ops, "SG-H01")
	if r := st.Send("PUT", "/api/v1/ops/sites/SG-H01/release", ops, map[string]any{
		"stable_flow": "full", "stable_version": 1, "candidate_flow": "lean", "candidate_version": 1,
		"mode": "shadow", "ratio_bp": 10000, "reason": "shadow lean"}, "If-Match", fmt.Sprintf(`"%d"`, cur.Version)); r.Status != http.StatusOK {
		t.Fatalf("shadow lean at SG-H01: %d %s", r.Status, r.Body)
	}
	tn := stationtest.Parcel(st.Sim.Fixtures(), "SG-H01", sim.Intercepted, 0)
	var res sorting.Result
	st.Do("POST", "/api/v1/sort", op, map[string]string{"tracking_no": tn, "scan_id": "recon-lean-1"}, http.StatusOK, &res)
	if res.Exception == nil || res.Exception.Code != sorting.CodeIntercepted {
		t.Fatalf("the full flow served %+v, want INTERCEPTED", res)
	}

	tb := b.tab(t)
	tb.login("/ops", "ops1")
	tb.desktop()
	tb.view("recon")
	// The shadow run records its mismatch in the background.
	for deadline := time.Now().Add(waitFor); !eval[bool](tb, `document.querySelectorAll('#recon-list tr[data-id]').length >= 1`); {
		if time.Now().After(deadline) {
			tb.failed()
			t.Fatalf("no mismatch shown: %s", tb.text("#recon-view"))
		}
		tb.view("recon")
	}
	if got := tb.text("#recon-list tbody td[data-only-in]"); !strings.Contains(got, "check_delivery_status") || !strings.Contains(got, "only in stable") {
		t.Fatalf("the list says the first difference is %q", got)
	}
	tb.do(chromedp.Click(chromedp.CSS(`#recon-list tr[data-id] button`)))
	tb.wait("the drill-down", `document.getElementById('recon-detail').dataset.firstDiff === 'check_delivery_status' &&
		document.getElementById('recon-detail').dataset.onlyIn === 'stable' && document.querySelector('#recon-waterfalls svg') !== null`)
	if got := tb.text("#recon-detail-summary"); !strings.Contains(got, "only the stable flow (full v1) has: it failed there") {
		t.Fatalf("the summary says %q", got)
	}
	if n := eval[int](tb, `document.querySelectorAll('#recon-waterfalls g.run[data-role="stable"] .diff').length`); n != 1 {
		t.Fatalf("%d outlined steps in the stable run", n)
	}
	if eval[string](tb, `document.querySelector('#recon-waterfalls g.run[data-role="stable"] g.step[data-node="check_delivery_status"]').dataset.only`) != "true" {
		t.Fatal("check_delivery_status is not marked as the stable flow's alone")
	}
	checkOneTimeScale(tb, "#recon-waterfalls")
	tb.scrollTo("recon-detail")
	tb.longShot("desktop-ops-reconciliation-lean")
}
