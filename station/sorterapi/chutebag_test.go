package sorterapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/packing"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/floor"
	"github.com/expresshub/station/station/stationtest"
)

// sameHop pre-sorts parcels via the station until n share one next hop, and
// returns them with their decisions.
func sameHop(t *testing.T, m *machine, n int) ([]string, []*stationv1.Decision) {
	t.Helper()
	var tns []string
	for i := 0; i < 40; i++ {
		tns = append(tns, sim.ViaStation(station, 100+i))
	}
	ds := m.presortAll(tns...)
	byHop := map[string][]int{}
	for i, d := range ds {
		if d.GetChuteKind() == stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP {
			byHop[d.GetNextHop()] = append(byHop[d.GetNextHop()], i)
		}
	}
	for _, idx := range byHop {
		if len(idx) >= n {
			var outT []string
			var outD []*stationv1.Decision
			for _, i := range idx[:n] {
				outT, outD = append(outT, tns[i]), append(outD, ds[i])
			}
			return outT, outD
		}
	}
	t.Fatalf("no next hop with %d of 40 parcels", n)
	return nil, nil
}

// TestConfirmsFillTheBoundBagAndAFullBagSendsTheHopElsewhere: a bag bound to
// a chute takes every parcel the machine confirms into it (GET /bags lists
// them, no hand scan); at the station's limit the floor says seal now and
// Resolve sends that hop's next parcel to another chute; a new bag makes
// the chute ready again.
func TestConfirmsFillTheBoundBagAndAFullBagSendsTheHopElsewhere(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{Config: func(c *config.Config) {
		// The count is the limit here; the weight one is far away.
		c.Floor.BagMaxParcels, c.Floor.BagMaxGrams, c.Floor.SealSoon = 3, 1_000_000, 0.6
	}})
	m := newMachine(t, st, station, "asm-bags")
	tns, ds := sameHop(t, m, 4)
	hop, chute := ds[0].GetNextHop(), ds[0].GetChute()
	sup := st.Login("sup1")

	// A live floor, as the supervisors' page reads it.
	events := floorStream(t, st, sup)

	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": hop, "scan_id": "open-1"}, http.StatusCreated, &bag)
	path := "/api/v1/stations/" + station + "/chutes/" + strconv.Itoa(int(chute)) + "/bag"
	st.Do("PUT", path, sup, map[string]string{"bag_id": bag.ID, "scan_id": "bind-1"}, http.StatusOK, nil)
	// The bind is idempotent by its scan id.
	if r := st.Send("PUT", path, sup, map[string]string{"bag_id": bag.ID, "scan_id": "bind-1"}); r.Status != http.StatusOK ||
		r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("bind replay: %d %s", r.Status, r.Body)
	}

	var levels []floor.ChuteStatus
	for i, tn := range tns[:3] {
		if _, err := m.confirm(&stationv1.ConfirmRequest{Sequence: uint64(i + 1), Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED,
			TrackingNo: tn, Chute: chute}); err != nil {
			t.Fatalf("confirm %s: %v", tn, err)
		}
		levels = append(levels, events.waitFor(t, func(v floor.View) (floor.ChuteStatus, bool) {
			c := chuteIn(v, int(chute))
			return c.Status, c.Bag != nil && c.Bag.Fill.Parcels == i+1
		}))
	}
	if levels[0] != floor.StatusReady || levels[1] != floor.StatusSealSoon || levels[2] != floor.StatusSealNow {
		t.Fatalf("floor statuses %v, want ready, seal_soon, seal_now", levels)
	}
	var got packing.Bag
	st.Do("GET", "/api/v1/bags/"+bag.ID, sup, nil, http.StatusOK, &got)
	if got.ItemCount != 3 || strings.Join(got.Items, ",") != strings.Join(tns[:3], ",") {
		t.Fatalf("bag holds %v, want %v", got.Items, tns[:3])
	}
	if d := m.resolve(tns[3]); d.GetChute() == chute {
		t.Fatalf("a full bag's chute still gets %s: %v", tns[3], d)
	}

	// Seal, hang a new bag: the chute is ready again.
	st.Do("POST", "/api/v1/bags/"+bag.ID+"/seal", sup, map[string]any{"weight_g": 2000, "scan_id": "seal-1"}, http.StatusOK, nil)
	var next packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": hop, "scan_id": "open-2"}, http.StatusCreated, &next)
	st.Do("PUT", path, sup, map[string]string{"bag_id": next.ID, "scan_id": "bind-2"}, http.StatusOK, nil)
	eventually(t, "the chute takes its hop again", func() bool { return m.resolve(tns[3]).GetChute() == chute })
	if n := histogramCount(t, st, "station_chute_seal_now_to_sealed_seconds"); n != 1 {
		t.Fatalf("seal-now-to-sealed observed %d times, want 1", n)
	}
}

// TestConfirmIntoAChuteWithoutABagLeavesTheParcelWaiting: the parcel is at
// the chute, unbagged, on the floor; binding a bag takes it in with no
// scan; a parcel for another hop is never forced in.
func TestConfirmIntoAChuteWithoutABagLeavesTheParcelWaiting(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm-wait")
	tns, ds := sameHop(t, m, 1)
	hop, chute := ds[0].GetNextHop(), ds[0].GetChute()
	sup := st.Login("sup1")
	if _, err := m.confirm(&stationv1.ConfirmRequest{Sequence: 1, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED,
		TrackingNo: tns[0], Chute: chute}); err != nil {
		t.Fatal(err)
	}
	var v floor.View
	st.Do("GET", "/api/v1/stations/"+station+"/floor", sup, nil, http.StatusOK, &v)
	c := chuteIn(v, int(chute))
	if c.Status != floor.StatusNoBag || len(c.Waiting) != 1 || c.Waiting[0].TrackingNo != tns[0] || c.Waiting[0].Reason != "no_bag" {
		t.Fatalf("chute %d on the floor: %+v", chute, c)
	}
	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": hop, "scan_id": "open-1"}, http.StatusCreated, &bag)
	var bound packing.ChuteBinding
	st.Do("PUT", "/api/v1/stations/"+station+"/chutes/"+strconv.Itoa(int(chute))+"/bag", sup,
		map[string]string{"bag_id": bag.ID, "scan_id": "bind-1"}, http.StatusOK, &bound)
	if len(bound.Added) != 1 || bound.Added[0] != tns[0] {
		t.Fatalf("bind took %v, want %s", bound.Added, tns[0])
	}
	// A bag for another hop is refused at that chute, and so is a second
	// bag for its hop.
	other := ""
	for _, h := range st.Sim.Fixtures().NextHops(station) {
		if h != hop {
			other = h
			break
		}
	}
	var wrong packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": other, "scan_id": "open-2"}, http.StatusCreated, &wrong)
	st.ExpectError("PUT", "/api/v1/stations/"+station+"/chutes/"+strconv.Itoa(int(chute))+"/bag", sup,
		map[string]string{"bag_id": wrong.ID, "scan_id": "bind-2"}, http.StatusConflict, "wrong_next_hop")
	var second packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": hop, "scan_id": "open-3"}, http.StatusCreated, &second)
	st.ExpectError("PUT", "/api/v1/stations/"+station+"/chutes/"+strconv.Itoa(int(chute))+"/bag", sup,
		map[string]string{"bag_id": second.ID, "scan_id": "bind-4"}, http.StatusConflict, "chute_has_bag")
	// Another station's operator cannot bind there.
	st.ExpectError("PUT", "/api/v1/stations/"+station+"/chutes/"+strconv.Itoa(int(chute))+"/bag", st.Login("op2"),
		map[string]string{"bag_id": bag.ID, "scan_id": "bind-3"}, http.StatusForbidden, "forbidden")
}

func chuteIn(v floor.View, chute int) floor.Chute {
	for _, c := range v.Chutes {
		if c.Chute == chute {
			return c
		}
	}
	return floor.Chute{}
}

// floorReader reads a live floor stream.
type floorReader struct {
	views chan floor.View
}

func floorStream(t testing.TB, st *stationtest.Station, token string) *floorReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", st.URL+"/api/v1/stations/"+station+"/floor/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("floor events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	fr := &floorReader{views: make(chan floor.View, 64)}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var v floor.View
			if json.Unmarshal([]byte(data), &v) == nil {
				select {
				case fr.views <- v:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return fr
}

// waitFor reads pushed floors until match holds and returns what it read
// then. The bound is generous; it fails a test whose push never comes.
func (fr *floorReader) waitFor(t testing.TB, match func(floor.View) (floor.ChuteStatus, bool)) floor.ChuteStatus {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case v := <-fr.views:
			if s, ok := match(v); ok {
				return s
			}
		case <-timeout:
			t.Fatal("no pushed floor matched")
			return ""
		}
	}
}

// histogramCount reads a histogram's sample count from /metrics.
func histogramCount(t *testing.T, st *stationtest.Station, name string) int {
	t.Helper()
	r := st.Send("GET", "/metrics", "", nil)
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, name+"_count "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// TestPreSortedParcelsWeighInTheirBag: parcels the machine pre-sorted and
// confirmed, never scanned by hand, count their waybill weight in the bag
// under the chute, so its kilogram limit can be reached.
func TestPreSortedParcelsWeighInTheirBag(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm-weight")
	tns, ds := sameHop(t, m, 2)
	hop, chute := ds[0].GetNextHop(), ds[0].GetChute()
	sup := st.Login("sup1")
	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": hop, "scan_id": "open-w"}, http.StatusCreated, &bag)
	st.Do("PUT", "/api/v1/stations/"+station+"/chutes/"+strconv.Itoa(int(chute))+"/bag", sup,
		map[string]string{"bag_id": bag.ID, "scan_id": "bind-w"}, http.StatusOK, nil)
	want := 0
	for i, tn := range tns {
		if _, err := m.confirm(&stationv1.ConfirmRequest{Sequence: uint64(i + 1), Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED,
			TrackingNo: tn, Chute: chute}); err != nil {
			t.Fatalf("confirm %s: %v", tn, err)
		}
		var p struct {
			WeightG int `json:"weight_g"`
		}
		st.Do("GET", "/api/v1/parcels/"+tn, sup, nil, http.StatusOK, &p)
		if p.WeightG <= 0 {
			t.Fatalf("%s, pre-sorted and confirmed, weighs %d g at the station", tn, p.WeightG)
		}
		want += p.WeightG
	}
	var got packing.Bag
	st.Do("GET", "/api/v1/bags/"+bag.ID, sup, nil, http.StatusOK, &got)
	if got.ItemCount != 2 || got.ContentsG != want {
		t.Fatalf("bag holds %d parcels of %d g, want 2 of %d g", got.ItemCount, got.ContentsG, want)
	}
}
