package webui_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/packing"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

// testSorter is a sorter machine talking to the station over gRPC on
// loopback, as the sorterapi tests' machine does (test helpers do not
// cross packages).
type testSorter struct {
	t   testing.TB
	key string
	cli stationv1.SorterServiceClient
}

func newTestSorter(t testing.TB, st *stationtest.Station, station, id string) *testSorter {
	t.Helper()
	key, err := st.App.Sorters().AddSorter(context.Background(), auth.Sorter{ID: id, StationID: station})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(st.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &testSorter{t: t, key: key, cli: stationv1.NewSorterServiceClient(conn)}
}

func (m *testSorter) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	m.t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "x-sorter-key", m.key)
}

func (m *testSorter) resolve(tn string) *stationv1.Decision {
	m.t.Helper()
	r, err := m.cli.Resolve(m.ctx(), &stationv1.ResolveRequest{TrackingNo: tn})
	if err != nil {
		m.t.Fatalf("resolve %s: %v", tn, err)
	}
	return r.GetDecision()
}

// presortAll pre-sorts like a machine's scheduler: a parcel whose sort met
// a transient failure (a fallback decision) is sent again, a bounded
// number of times.
func (m *testSorter) presortAll(tns []string) []*stationv1.Decision {
	m.t.Helper()
	out := make([]*stationv1.Decision, len(tns))
	for attempt := 0; attempt < 20; attempt++ {
		var todo []string
		var idx []int
		for i, d := range out {
			if d == nil || d.GetSource() == stationv1.DecisionSource_DECISION_SOURCE_FALLBACK {
				todo, idx = append(todo, tns[i]), append(idx, i)
			}
		}
		if len(todo) == 0 {
			return out
		}
		if attempt > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		r, err := m.cli.PreSort(m.ctx(), &stationv1.PreSortRequest{TrackingNos: todo})
		if err != nil {
			m.t.Fatalf("presort: %v", err)
		}
		for j, d := range r.GetDecisions() {
			out[idx[j]] = d
		}
	}
	m.t.Fatal("presort kept falling back")
	return nil
}

func (m *testSorter) confirm(seq int, tn string, chute int32) {
	m.t.Helper()
	if _, err := m.cli.Confirm(m.ctx(), &stationv1.ConfirmRequest{Sequence: uint64(seq), TrackingNo: tn, Chute: chute,
		Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED}); err != nil {
		m.t.Fatalf("confirm %s: %v", tn, err)
	}
}

// sameHopParcels pre-sorts parcels via the station until n share a next
// hop, and returns them, the hop and its first chute.
func sameHopParcels(t *testing.T, m *testSorter, station string, n int) ([]string, string, int32) {
	t.Helper()
	var tns []string
	for i := 0; i < 40; i++ {
		tns = append(tns, sim.ViaStation(station, 200+i))
	}
	ds := m.presortAll(tns)
	byHop := map[string][]string{}
	chute := map[string]int32{}
	for i, d := range ds {
		if d.GetChuteKind() == stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP {
			byHop[d.GetNextHop()] = append(byHop[d.GetNextHop()], tns[i])
			chute[d.GetNextHop()] = d.GetChute()
		}
	}
	for hop, same := range byHop {
		if len(same) >= n {
			return same[:n], hop, chute[hop]
		}
	}
	t.Fatalf("no next hop with %d of 40 parcels", n)
	return nil, "", 0
}

// TestFloorShowsABagFillingLive: a supervisor watches the floor page while
// a bag is bound and the sorter confirms three parcels into its chute;
// "seal soon" and "seal now" appear without a reload, and Resolve then
// sends that hop's next parcel elsewhere. The page also reprints a sealed
// bag's label, prints chute labels and disables a chute.
func TestFloorShowsABagFillingLive(t *testing.T) {
	const station = "SG-H01"
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		c.Floor.BagMaxParcels, c.Floor.SealSoon = 3, 0.6
		c.Downstream.Breaker.ConsecutiveFailures, c.Downstream.Breaker.MinRequests = 1<<30, 1<<30
	}})
	b := startBrowser(t, st)
	m := newTestSorter(t, st, station, "asm-floor")
	tns, hop, chute := sameHopParcels(t, m, station, 4)
	sup := st.Login("sup1")
	sel := fmt.Sprintf(`document.querySelector('#chutes [data-chute="%d"]')`, chute)

	tb := b.tab(t)
	tb.login("/floor", "sup1")
	tb.wait("the live floor", `document.getElementById('floor').dataset.state === 'ready' && document.getElementById('live').textContent === 'live'`)
	tb.wait("chute "+strconv.Itoa(int(chute)), sel+` && `+sel+`.dataset.status === 'no_bag'`)
	// A reload would lose this mark: every change below must arrive pushed.
	tb.do(chromedp.Evaluate[chromedp.Void](`window.floorNotReloaded = true`))

	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": hop, "scan_id": "floor-open-1"}, http.StatusCreated, &bag)
	st.Do("PUT", "/api/v1/stations/"+station+"/chutes/"+strconv.Itoa(int(chute))+"/bag", sup,
		map[string]string{"bag_id": bag.ID, "scan_id": "floor-bind-1"}, http.StatusOK, nil)
	tb.wait("the bound bag", sel+`.dataset.status === 'ready' && `+sel+`.innerText.includes(`+strconv.Quote(bag.ID)+`)`)
	tb.shot("floor-bound")

	want := []string{"ready", "seal_soon", "seal_now"}
	for i, tn := range tns[:3] {
		m.confirm(i+1, tn, chute)
		tb.wait(fmt.Sprintf("%s after confirm %d", want[i], i+1), fmt.Sprintf(`%s.dataset.status === %q && %s.innerText.includes('%d/3')`,
			sel, want[i], sel, i+1))
		if i == 1 {
			tb.shot("floor-seal-soon")
		}
	}
	if got := eval[string](tb, sel+`.querySelector('.status').textContent`); got != "Seal now" {
		t.Fatalf("chute %d says %q, want Seal now", chute, got)
	}
	tb.longShot("floor-seal-now")
	if !eval[bool](tb, `window.floorNotReloaded === true`) {
		t.Fatal("the floor page reloaded")
	}
	if d := m.resolve(tns[3]); d.GetChute() == chute {
		t.Fatalf("a full bag's chute %d still gets %s: %v", chute, tns[3], d)
	}

	// Sealed, its label is one click away again.
	st.Do("POST", "/api/v1/bags/"+bag.ID+"/seal", sup, map[string]any{"weight_g": 2000, "scan_id": "floor-seal-1"}, http.StatusOK, nil)
	reprint := fmt.Sprintf(`#sealed-bags [data-reprint=%q]`, bag.ID)
	tb.wait("the sealed bag", `document.querySelector('`+reprint+`')`)
	tb.do(chromedp.Click(chromedp.CSS(reprint)))
	tb.wait("the reprinted label", fmt.Sprintf(`(() => { const i = document.querySelector('#bag-label img[data-bag-id=%q]'); return i && i.complete && i.naturalWidth > 0; })()`, bag.ID))

	// Chute labels name station and chute.
	code := fmt.Sprintf("CHUTE:%s:%d", station, chute)
	if got := eval[string](tb, fmt.Sprintf(`(document.querySelector('#chute-labels [data-code=%q] svg') || {}).dataset?.code || ''`, code)); got != code {
		t.Fatalf("chute label %q, want %q", got, code)
	}

	// Only a next hop's chute has the button: the exception chute takes
	// what the belt cannot place elsewhere, whatever its state.
	if n := eval[int](tb, `document.querySelectorAll('#chutes [data-status] [data-toggle]').length`); n == 0 {
		t.Fatal("no chute can be disabled")
	}
	if got := eval[string](tb, `[...document.querySelectorAll('#chutes article.chute')].filter(a => a.querySelector('[data-toggle]') && a.querySelector('.hop').textContent.match(/exception|overflow|reject/i)).map(a => a.dataset.chute).join(',')`); got != "" {
		t.Fatalf("last-resort chutes %s offer Disable", got)
	}

	// A supervisor takes the chute out of use, and Resolve skips it.
	tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#chutes [data-toggle="%d"]`, chute))))
	tb.wait("the disabled chute", sel+`.dataset.status === 'disabled'`)
	tb.shot("floor-disabled")

	// The chute-map editor saves with If-Match the version it loaded.
	tb.wait("the chute map", `document.querySelectorAll('#map-rows tr').length > 1`)
	tb.do(chromedp.Click(chromedp.ID("map-save")))
	tb.wait("the saved map", `document.getElementById('map-msg').classList.contains('ok')`)
	var saved struct {
		Version int `json:"version"`
	}
	st.Do("GET", "/api/v1/stations/"+station+"/chutes", sup, nil, http.StatusOK, &saved)
	if saved.Version < 2 {
		t.Fatalf("chute map version %d after a save", saved.Version)
	}

	// The sorter's belt decisions, per sorter, once written.
	if err := st.App.Decisions().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.Click(chromedp.ID("decisions-reload")))
	row := `document.querySelector('#decisions-rows tr[data-sorter="asm-floor"]')`
	tb.wait("the sorter's decisions", row+` && `+row+`.children[1].textContent !== '0'`)
	tb.scrollTo("decisions-section")
	tb.shot("floor-decisions")
}

// TestTerminalBindsAChuteAndSortsIntoItsBag: at the terminal, BIND, the
// chute's label and a bag bind them; SORTBAG then sorts a parcel for that
// chute and puts it into the bag in the same scan; a plain sort names the
// bag under the chute and leaves the parcel sorted.
func TestTerminalBindsAChuteAndSortsIntoItsBag(t *testing.T) {
	const station = "SG-H01"
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		c.Downstream.Breaker.ConsecutiveFailures, c.Downstream.Breaker.MinRequests = 1<<30, 1<<30
	}})
	b := startBrowser(t, st)
	op := st.Login("op1")
	warmUp(t, st, op)
	fx := st.Sim.Fixtures()
	hopOf := func(tn string) string {
		p, err := fx.Parcel(tn)
		if err != nil {
			t.Fatal(err)
		}
		hop, _ := fx.Route(station, p.Destination)
		return hop
	}
	// Two fresh parcels whose next hop is the same.
	first := sim.ViaStation(station, 500)
	hop := hopOf(first)
	second := ""
	for i := 501; i < 600 && second == ""; i++ {
		if tn := sim.ViaStation(station, i); hopOf(tn) == hop {
			second = tn
		}
	}
	if second == "" {
		t.Fatalf("no second parcel for %s", hop)
	}
	var m sorting.ChuteMap
	st.Do("GET", "/api/v1/stations/"+station+"/chutes", op, nil, http.StatusOK, &m)
	if len(m.NextHops[hop]) == 0 {
		t.Fatalf("no chute for %s in %+v", hop, m)
	}
	chute := m.NextHops[hop][0]
	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", op, map[string]string{"next_hop": hop, "scan_id": "term-open-1"}, http.StatusCreated, &bag)

	tb := b.tab(t)
	tb.login("/", "op1")
	tb.scan("scan-input", "BIND")
	tb.wait("the bind screen", `!document.getElementById('bind-view').hidden && document.activeElement.id === 'bind-scan'`)
	tb.scan("bind-scan", fmt.Sprintf("CHUTE:%s:%d", station, chute))
	tb.wait("the chute", fmt.Sprintf(`document.getElementById('bind-msg').textContent.includes('Chute %d')`, chute))
	tb.scan("bind-scan", bag.ID)
	tb.wait("the bound bag", fmt.Sprintf(`document.getElementById('bind-msg').dataset.bagId === %q && document.getElementById('bind-msg').classList.contains('ok')`, bag.ID))
	tb.shot("terminal-bind")

	tb.scan("bind-scan", "SORTBAG")
	tb.wait("the sort-and-bag screen", `document.body.dataset.view === 'sortbag' && document.getElementById('scan-title').textContent === 'Sort and bag'`)
	tb.sortScan(first, first)
	tb.wait("the parcel in the bag", fmt.Sprintf(`document.getElementById('answer').dataset.bagged === 'true' && document.getElementById('answer').dataset.bagId === %q`, bag.ID))
	if got := eval[string](tb, `document.getElementById('answer').dataset.chute`); got != strconv.Itoa(chute) {
		t.Fatalf("answer chute %s, want %d", got, chute)
	}
	tb.shot("terminal-sortbag")
	var got packing.Bag
	st.Do("GET", "/api/v1/bags/"+bag.ID, op, nil, http.StatusOK, &got)
	if len(got.Items) != 1 || got.Items[0] != first {
		t.Fatalf("bag holds %v, want [%s]", got.Items, first)
	}

	// A plain sort shows the bag under the chute and does not bag.
	tb.scan("scan-input", "SORT")
	tb.wait("the sort screen", `document.body.dataset.view === 'sort'`)
	tb.sortScan(second, second)
	tb.wait("the chute's bag named", fmt.Sprintf(`document.getElementById('answer').dataset.bagId === %q && document.getElementById('answer-detail').textContent.includes(%q)`, bag.ID, bag.ID))
	st.Do("GET", "/api/v1/bags/"+bag.ID, op, nil, http.StatusOK, &got)
	if len(got.Items) != 1 {
		t.Fatalf("a plain sort bagged: %v", got.Items)
	}
}
