package webui_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

// TestOpsShowsTheRampTheSitesAndTheFlows is issue 20's ops page: a ramp's
// schedule, step, guards against their thresholds and progress; one row per
// site; a flow version's diff with who published it and when; an invalid
// publication's problems; a market assignment.
func TestOpsShowsTheRampTheSitesAndTheFlows(t *testing.T) {
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		c.Release.RampEvery = 100 * time.Millisecond
		c.Release.Ramp.MinComparisons = 1000
	}})
	b := startBrowser(t, st)
	ops := st.Login("ops1")
	r := st.Send("PUT", "/api/v1/ops/sites/SG-H01/release", ops, map[string]any{
		"stable_flow": "full", "stable_version": 1, "candidate_flow": "full_v2", "candidate_version": 1, "mode": "split",
		"force": true, "reason": "browser test", "ramp": map[string]any{"steps_bp": []int{100, 500, 2500, 10000}},
	}, "If-Match", `"0"`)
	if r.Status != http.StatusOK {
		t.Fatalf("ramp: %d %s", r.Status, r.Body)
	}
	var v1 sorting.FlowVersion
	st.Do("GET", "/api/v1/ops/flows/full", ops, nil, http.StatusOK, &v1)
	st.Do("PUT", "/api/v1/ops/flows/full", ops, strings.Replace(v1.Config, "deadline: 800ms", "deadline: 900ms", 1), http.StatusCreated, nil)

	tb := b.tab(t)
	tb.login("/ops", "ops1")
	tb.wait("the ramp", `document.getElementById('rel-ramp').dataset.state === 'running' && document.querySelectorAll('#rel-guards tbody tr').length === 4`)
	if got := tb.text("#rel-ramp .progress"); !strings.Contains(got, "0 of 1,000 comparisons") || !strings.Contains(got, "Toward 5 %") {
		t.Fatalf("ramp progress says %q", got)
	}
	if got := tb.text("#rel-ramp h3"); got != "Ramp: step 1 of 4 (running)" {
		t.Fatalf("ramp heading %q", got)
	}
	if got := tb.text(`#rel-guards tr[data-guard="match_rate"]`); !strings.Contains(got, ">= 99.90 %") || !strings.Contains(got, "waiting for data") {
		t.Fatalf("match-rate guard row %q", got)
	}
	tb.scrollTo("rel-ramp")
	tb.shot("ops-ramp")

	tb.view("sites")
	tb.wait("SG-H01's row", `document.querySelector('#sites-table tr[data-site="SG-H01"]')?.dataset.mode === 'split'`)
	if got := tb.text(`#sites-table tr[data-site="SG-H01"]`); !strings.Contains(got, "1 of 4") || !strings.Contains(got, "full_v2 v1") ||
		!strings.Contains(got, "by ops1") {
		t.Fatalf("overview row %q", got)
	}
	if n := eval[int](tb, `document.querySelectorAll('#sites-table tbody tr').length`); n < 4 {
		t.Fatalf("%d sites in the overview", n)
	}
	tb.shot("ops-sites")

	tb.view("flows")
	tb.do(chromedp.SetValue(chromedp.ID("flows-version"), "full@2"), chromedp.Click(chromedp.CSS(`#flows-pick button`)))
	tb.wait("the diff of full v2", `document.getElementById('flows-diff').dataset.flow === 'full@2'`)
	if add, del := tb.text("#flows-diff .add"), tb.text("#flows-diff .del"); !strings.Contains(add, "900ms") || !strings.Contains(del, "800ms") {
		t.Fatalf("diff: + %q - %q", add, del)
	}
	if got := tb.text("#flows-facts"); !strings.Contains(got, "ops1") || !strings.Contains(got, "v1") {
		t.Fatalf("version facts %q", got)
	}
	tb.longShot("ops-flows")

	// An invalid flow: its problems are listed, nothing is stored.
	tb.do(chromedp.SendKeys(chromedp.ID("flows-publish-name"), "broken"),
		chromedp.SetValue(chromedp.ID("flows-publish-src"), "name: broken\ninputs: [tracking_no, station_id]\nnodes:\n  - step: no_such_step\n  - step: resolve_chute\n"),
		chromedp.Click(chromedp.ID("flows-publish-save")))
	tb.wait("the problems", `document.querySelectorAll('#flows-problems li').length >= 2`)
	if got := tb.text("#flows-problems"); !strings.Contains(got, "no_such_step") {
		t.Fatalf("problems %q", got)
	}

	// A market assignment, audited.
	tb.do(chromedp.SendKeys(chromedp.ID("flows-assign-market"), "SG"),
		chromedp.SetValue(chromedp.ID("flows-assign-flow"), "full@1"),
		chromedp.SendKeys(chromedp.ID("flows-assign-reason"), "pin SG to v1"),
		chromedp.Click(chromedp.ID("flows-assign-save")))
	tb.wait("SG pinned to v1", `document.querySelector('#flows-markets tr[data-market="SG"]')?.innerText.includes('v1')`)
	tb.wait("the assignment in the audit", `!!document.querySelector('#flows-audit tr[data-action="assign"]')`)
	if got := tb.text(`#flows-audit tr[data-action="assign"]`); !strings.Contains(got, "SG → full v1 (was full newest)") || !strings.Contains(got, "pin SG to v1") {
		t.Fatalf("flow audit row %q", got)
	}
	var audit struct{ Entries []sorting.FlowAuditEntry }
	st.Do("GET", "/api/v1/ops/flow-audit?subject=SG", ops, nil, http.StatusOK, &audit)
	if len(audit.Entries) != 1 || audit.Entries[0].Reason != "pin SG to v1" || audit.Entries[0].Actor != "ops1" {
		raw, _ := json.Marshal(audit.Entries)
		t.Fatalf("assignment audit %s", raw)
	}
}
