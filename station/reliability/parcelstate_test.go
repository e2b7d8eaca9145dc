package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
	"github.com/expresshub/station/workorder"
)

// statePairs is how many parcels two terminals race over; each parcel meets
// about six pairs of simultaneous operations.
const statePairs = 120

// TestParcelStateUnderConcurrentOperators: two terminals act on one parcel
// at the same moment, hundreds of times: both receive it, both sort it,
// both put it into a bag (each its own), one takes it out while the other
// sorts it, both bag it again, its bag is sealed and handed over while the
// other terminal tries to take it out, and after it left both bring it
// back. Every answer is a 2xx or a 4xx with a stable code, never a 5xx; and
// afterwards each parcel's recorded history is a way the state matrix
// allows, with no step skipped, and its state agrees with the bags.
func TestParcelStateUnderConcurrentOperators(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		c.Floor.BagMaxParcels, c.Floor.BagMaxGrams = 10000, 1<<30 // the bags' limits are not under test
	}})
	a, b := st.Login("op1"), st.Login("sup1") // two terminals of one station
	parcels := viaParcels(t, st.Sim.Fixtures(), "SG-H01", statePairs)

	var mu sync.Mutex
	var fives []string
	pairs := 0
	// race sends two requests at the same moment and returns their answers.
	race := func(x, y func() stationtest.Response) (stationtest.Response, stationtest.Response) {
		var rx, ry stationtest.Response
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-start; rx = x() })
		wg.Go(func() { <-start; ry = y() })
		close(start)
		wg.Wait()
		mu.Lock()
		pairs++
		for _, r := range []stationtest.Response{rx, ry} {
			if r.Status >= 500 || r.Status == 0 {
				fives = append(fives, fmt.Sprintf("%d %s", r.Status, r.Body))
			} else if r.Status >= 400 && !strings.Contains(string(r.Body), `"code"`) {
				fives = append(fives, fmt.Sprintf("%d without a code: %s", r.Status, r.Body))
			}
		}
		mu.Unlock()
		return rx, ry
	}
	send := func(token, method, path string, body map[string]any) func() stationtest.Response {
		return func() stationtest.Response { return st.Send(method, path, token, body) }
	}

	// Two open bags per next hop, one per terminal.
	type bagPair struct{ a, b string }
	bags := map[string]bagPair{}
	bagsFor := func(hop string) bagPair {
		if p, ok := bags[hop]; ok {
			return p
		}
		var ba, bb packing.Bag
		st.Do("POST", "/api/v1/bags", a, map[string]string{"next_hop": hop, "scan_id": "open-a-" + hop}, http.StatusCreated, &ba)
		st.Do("POST", "/api/v1/bags", b, map[string]string{"next_hop": hop, "scan_id": "open-b-" + hop}, http.StatusCreated, &bb)
		bags[hop] = bagPair{ba.ID, bb.ID}
		return bags[hop]
	}
	addTo := func(token, bag, tn, scan string) func() stationtest.Response {
		return send(token, "POST", "/api/v1/bags/"+bag+"/items", map[string]any{"tracking_no": tn, "scan_id": scan})
	}
	removeFrom := func(token, bag, tn, scan string) func() stationtest.Response {
		return send(token, "DELETE", "/api/v1/bags/"+bag+"/items/"+tn, map[string]any{"scan_id": scan})
	}

	for i, tn := range parcels {
		s := fmt.Sprintf("p%d-", i)
		race(send(a, "POST", "/api/v1/receive", map[string]any{"tracking_no": tn, "scan_id": s + "rcv-a"}),
			send(b, "POST", "/api/v1/receive", map[string]any{"tracking_no": tn, "scan_id": s + "rcv-b"}))
		ra, rb := race(send(a, "POST", "/api/v1/sort", map[string]any{"tracking_no": tn, "scan_id": s + "sort-a"}),
			send(b, "POST", "/api/v1/sort", map[string]any{"tracking_no": tn, "scan_id": s + "sort-b"}))
		hop := nextHop(ra, rb)
		if hop == "" {
			continue // sorted to an exception: nothing to bag
		}
		p := bagsFor(hop)
		race(addTo(a, p.a, tn, s+"add-a"), addTo(b, p.b, tn, s+"add-b"))
		// One takes it out of its own bag while the other sorts it again.
		race(removeFrom(a, p.a, tn, s+"rm-a"), send(b, "POST", "/api/v1/sort", map[string]any{"tracking_no": tn, "scan_id": s + "resort-b"}))
		race(removeFrom(b, p.b, tn, s+"rm-b"), addTo(a, p.a, tn, s+"add2-a"))
		race(addTo(a, p.a, tn, s+"add3-a"), addTo(b, p.b, tn, s+"add3-b"))
	}

	// Seal every bag while the other terminal tries to take a parcel out of
	// it; hand the sealed ones over.
	var handover packing.Handover
	st.Do("POST", "/api/v1/handovers", a, map[string]string{"type": "thirdparty", "carrier": "Ninja Van", "scan_id": "ho"}, http.StatusCreated, &handover)
	k := 0
	for hop, p := range bags {
		for _, id := range []string{p.a, p.b} {
			var bag packing.Bag
			st.Do("GET", "/api/v1/bags/"+id, a, nil, http.StatusOK, &bag)
			if len(bag.Items) == 0 {
				continue
			}
			k++
			rs, _ := race(send(a, "POST", "/api/v1/bags/"+id+"/seal", map[string]any{"weight_g": 1000 * len(bag.Items), "scan_id": fmt.Sprintf("seal-%d", k)}),
				removeFrom(b, id, bag.Items[0], fmt.Sprintf("seal-rm-%d-%s", k, hop)))
			if rs.Status == http.StatusOK {
				st.Do("POST", "/api/v1/handovers/"+handover.ID+"/bags", a, map[string]string{"bag_id": id, "scan_id": fmt.Sprintf("ho-add-%d", k)}, http.StatusOK, nil)
			}
		}
	}
	st.Do("POST", "/api/v1/handovers/"+handover.ID+"/close", a, map[string]string{"scan_id": "ho-close"}, http.StatusOK, nil)

	// Back again: one terminal receives it while the other sorts it.
	for i, tn := range parcels[:statePairs/2] {
		s := fmt.Sprintf("back%d-", i)
		race(send(a, "POST", "/api/v1/receive", map[string]any{"tracking_no": tn, "scan_id": s + "rcv"}),
			send(b, "POST", "/api/v1/sort", map[string]any{"tracking_no": tn, "scan_id": s + "sort"}))
	}

	if len(fives) > 0 {
		t.Errorf("%d of %d answers in %d simultaneous pairs were 5xx or a 4xx without a code; first: %s", len(fives), 2*pairs, pairs, fives[0])
	}
	report(t, "parcel states under two terminals: %d simultaneous pairs over %d parcels, %d bags sealed and handed over", pairs, len(parcels), k)
	problems := parcelHistoryProblems(t, st, parcels)
	for i, p := range problems {
		if i == 10 {
			t.Errorf("... and %d more", len(problems)-10)
			break
		}
		t.Error(p)
	}
	if len(problems) == 0 {
		report(t, "parcel histories: every visit of %d parcels follows the state matrix, and every state agrees with the bags", len(parcels))
	}
}

// TestParcelHistoryCheckCatchesASkippedStep: the check above is not one
// that cannot fail: a parcel bagged without a sort, one sealed twice and
// one whose state says bagged while no bag holds it are each caught.
func TestParcelHistoryCheckCatchesASkippedStep(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	const wo = "01a24f24-0000-7000-8000-000000000001"
	_, err := st.App.DB().Exec(t.Context(), `
		INSERT INTO parcel_state_history (station_id, tracking_no, visit, op, state, work_order_id, at) VALUES
		  ('SG-H01', 'SG9000000001', 1, 'receive', 'received', $1, now()),
		  ('SG-H01', 'SG9000000001', 1, 'bag_add', 'bagged', $1, now()),
		  ('SG-H01', 'SG9000000002', 1, 'sort', 'sorted', $1, now()),
		  ('SG-H01', 'SG9000000002', 1, 'bag_add', 'bagged', $1, now()),
		  ('SG-H01', 'SG9000000002', 1, 'bag_seal', 'sealed', $1, now()),
		  ('SG-H01', 'SG9000000002', 1, 'bag_seal', 'sealed', $1, now())`, wo)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.App.DB().Exec(t.Context(), `
		INSERT INTO parcel_states (station_id, tracking_no, visit, state, bag_id, work_order_id, visit_started_at,
		                           visit_work_order_id, updated_at) VALUES
		  ('SG-H01', 'SG9000000001', 1, 'bagged', 'BGSGH01NONE000000001', $1, now(), $1, now()),
		  ('SG-H01', 'SG9000000002', 1, 'sealed', 'BGSGH01NONE000000002', $1, now(), $1, now())`, wo)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(parcelHistoryProblems(t, st, []string{"SG9000000001", "SG9000000002"}), "\n")
	for _, want := range []string{"SG9000000001 visit 1: bagged without a sort", "SG9000000002 visit 1: sealed 2 times",
		"SG9000000001 is bagged in BGSGH01NONE000000001, but 0 bags hold it"} {
		if !strings.Contains(got, want) {
			t.Errorf("the check missed %q; it said:\n%s", want, got)
		}
	}
}

func nextHop(rs ...stationtest.Response) string {
	for _, r := range rs {
		var v struct {
			NextHop *string `json:"next_hop"`
		}
		if r.Status == http.StatusOK && json.Unmarshal(r.Body, &v) == nil && v.NextHop != nil {
			return *v.NextHop
		}
	}
	return ""
}

// parcelHistoryProblems holds each parcel's recorded history to the state
// matrix without relying on the order of its rows' times (two operations
// racing on a parcel take their times before the parcel's lock decides
// which goes first): per visit, what each step needs came before it exists
// (no bag without a sort, no seal without a bag, no departure without a
// seal), a parcel is received at most once and bagged at most once more
// than it was taken out; and its state now agrees with the bags.
func parcelHistoryProblems(t *testing.T, st *stationtest.Station, parcels []string) []string {
	t.Helper()
	type visit struct {
		ops    map[string]int
		states map[string]int
	}
	rows, err := st.App.DB().Query(t.Context(), `SELECT tracking_no, visit, op, state FROM parcel_state_history
		WHERE station_id = 'SG-H01' AND tracking_no = ANY($1)`, parcels)
	if err != nil {
		t.Fatal(err)
	}
	visits := map[string]map[int]*visit{}
	for rows.Next() {
		var tn, op, state string
		var n int
		if err := rows.Scan(&tn, &n, &op, &state); err != nil {
			t.Fatal(err)
		}
		if visits[tn] == nil {
			visits[tn] = map[int]*visit{}
		}
		v := visits[tn][n]
		if v == nil {
			v = &visit{ops: map[string]int{}, states: map[string]int{}}
			visits[tn][n] = v
		}
		v.ops[op]++
		v.states[state]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, tn := range parcels {
		for n, v := range visits[tn] {
			op := func(o workorder.Op) int { return v.ops[string(o)] }
			bagged := op(workorder.OpBagAdd) + op(workorder.OpChuteBagAdd)
			switch {
			case op(workorder.OpReceive) > 1 && v.states[string(workorder.StateAside)] == 0:
				fail("%s visit %d: received %d times in one visit", tn, n, op(workorder.OpReceive))
			case bagged > 0 && op(workorder.OpSort)+op(workorder.OpConfirm) == 0:
				fail("%s visit %d: bagged without a sort: %v", tn, n, v.ops)
			case bagged-op(workorder.OpBagRemove) < 0 || bagged-op(workorder.OpBagRemove) > 1:
				fail("%s visit %d: bagged %d times, taken out %d: %v", tn, n, bagged, op(workorder.OpBagRemove), v.ops)
			case op(workorder.OpBagSeal) > 1 || op(workorder.OpBagSeal) == 1 && bagged == 0:
				fail("%s visit %d: sealed %d times with %d bag adds: %v", tn, n, op(workorder.OpBagSeal), bagged, v.ops)
			case op(workorder.OpHandover) > 1 || op(workorder.OpHandover) == 1 && op(workorder.OpBagSeal) == 0:
				fail("%s visit %d: departed %d times with %d seals: %v", tn, n, op(workorder.OpHandover), op(workorder.OpBagSeal), v.ops)
			case n > 1 && (visits[tn][n-1] == nil || visits[tn][n-1].ops[string(workorder.OpHandover)] == 0):
				fail("%s: visit %d began though visit %d never departed", tn, n, n-1)
			}
		}
	}

	// The state now agrees with the bags: bagged or sealed means exactly one
	// bag of that status holds it; departed, a departed bag; else none.
	states, err := st.App.DB().Query(t.Context(), `
		SELECT p.tracking_no, p.state, coalesce(p.bag_id, ''),
		       (SELECT count(*) FROM bag_items i WHERE i.tracking_no = p.tracking_no AND NOT i.departed),
		       coalesce((SELECT b.status FROM bag_items i JOIN bags b ON b.id = i.bag_id
		                  WHERE i.tracking_no = p.tracking_no AND NOT i.departed), '')
		  FROM parcel_states p WHERE p.station_id = 'SG-H01' AND p.tracking_no = ANY($1)`, parcels)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for states.Next() {
		var tn, state, bagID, status string
		var held int
		if err := states.Scan(&tn, &state, &bagID, &held, &status); err != nil {
			t.Fatal(err)
		}
		seen++
		switch workorder.State(state) {
		case workorder.StateBagged, workorder.StateSealed:
			want := map[workorder.State]string{workorder.StateBagged: "open", workorder.StateSealed: "sealed"}[workorder.State(state)]
			if held != 1 || status != want {
				fail("%s is %s in %s, but %d bags hold it (status %q)", tn, state, bagID, held, status)
			}
		default:
			if held != 0 {
				fail("%s is %s, but %d bags still hold it", tn, state, held)
			}
		}
	}
	if err := states.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(parcels) {
		fail("%d of %d parcels have a state at the station", seen, len(parcels))
	}
	return problems
}
