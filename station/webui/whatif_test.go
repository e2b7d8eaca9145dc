package webui_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/stationtest"
)

// TestOpsWhatifPanelShowsFillsMovesAndACSV runs a what-if from the ops page:
// a candidate chute map without the busiest next hop sends its parcels to
// the exception chute; the panel shows them moving, a fill chart per chute,
// and offers the CSV.
func TestOpsWhatifPanelShowsFillsMovesAndACSV(t *testing.T) {
	st := stationtest.Start(t, stationtest.Options{})
	b := startBrowser(t, st)
	op := st.Login("op1")
	byHop := map[string]int{}
	busiest := ""
	for i := range 20 {
		var r sorting.Result
		st.Do("POST", "/api/v1/sort", op, map[string]string{"tracking_no": sim.ViaStation("SG-H01", i), "scan_id": fmt.Sprint("wi-", i)},
			http.StatusOK, &r)
		if r.NextHop != nil {
			byHop[*r.NextHop]++
			if byHop[*r.NextHop] > byHop[busiest] {
				busiest = *r.NextHop
			}
		}
	}

	tb := b.tab(t)
	tb.desktop()
	tb.login("/ops", "ops1")
	tb.wait("the console", `document.getElementById('release-view').dataset.state === 'ready'`)
	tb.view("whatif")
	tb.do(chromedp.Click(chromedp.ID("whatif-load-map")))
	tb.wait("the live map", `document.getElementById('whatif-map').value.includes('next_hops')`)
	tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const ta = document.getElementById('whatif-map');
		const m = JSON.parse(ta.value); delete m.next_hops[%q]; ta.value = JSON.stringify(m); })()`, busiest)))
	tb.do(chromedp.Click(chromedp.ID("whatif-run")))
	tb.wait("the report", `document.getElementById('whatif-view').dataset.run === 'done'`)
	if got := tb.text("#whatif-stats"); !strings.Contains(strings.ToLower(got), "would move") {
		t.Fatalf("stats say %q", got)
	}
	if got := eval[string](tb, `document.getElementById('whatif-stats').dataset.differences`); got != strconv.Itoa(byHop[busiest]) {
		t.Fatalf("%s parcels would move, want the %d of %s", got, byHop[busiest], busiest)
	}
	if n := eval[int](tb, `document.querySelectorAll('#whatif-diffs tbody tr').length`); n != byHop[busiest] {
		t.Fatalf("%d rows of moving parcels, want %d", n, byHop[busiest])
	}
	if got := tb.text("#whatif-diffs tbody tr"); !strings.Contains(got, "NO_CHUTE") || !strings.Contains(got, busiest) {
		t.Fatalf("a moving parcel's row says %q", got)
	}
	if n := eval[int](tb, `document.querySelectorAll('#whatif-chart svg polyline.fill-candidate').length`); n == 0 {
		t.Fatal("no fill chart")
	}
	if href := eval[string](tb, `(() => { const a = document.getElementById('whatif-csv'); return a.hidden ? '' : a.href; })()`); !strings.HasPrefix(href, "blob:") {
		t.Fatalf("the CSV link is %q", href)
	}
	tb.scrollTo("whatif-result")
	tb.shot("ops-whatif")

	// A window with no recorded traces (a week ago, before this station
	// sorted anything) has no share of late decisions to show: the panel
	// shows the candidate's worst case instead.
	tb.do(chromedp.SetValue(chromedp.ID("whatif-flow"), "full_v2@1"))
	tb.do(chromedp.Evaluate[chromedp.Void](`(() => { const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
		const to = new Date(Date.now() - 7 * 24 * 3600e3);
		document.getElementById('whatif-to').value = local(to);
		document.getElementById('whatif-from').value = local(new Date(to.getTime() - 3600e3)); })()`))
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('whatif-view').dataset.run = ''`))
	tb.do(chromedp.Click(chromedp.ID("whatif-run")))
	tb.wait("the report with a flow", `document.getElementById('whatif-view').dataset.run === 'done'`)
	if got := tb.text("#whatif-stats"); !strings.Contains(got, "no recorded traces") || strings.Contains(got, "%") {
		t.Fatalf("stats without traces say %q", got)
	}
}
