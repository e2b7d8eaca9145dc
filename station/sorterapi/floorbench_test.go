package sorterapi_test

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/packing"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/floor"
	"github.com/expresshub/station/station/stationtest"
)

// floorBench starts a station whose bags never fill, pre-sorts parcels
// until two next hops have n each, and binds a bag under the first hop's
// chute only.
func floorBench(b *testing.B, n int) (st *stationtest.Station, m *machine, bagged, bare []string, cBag, cBare int32, token string) {
	st = stationtest.Start(b, stationtest.Options{Config: func(c *config.Config) {
		c.Sorter.Global, c.Sorter.PerSorter = 100000, 100000
		c.Floor.BagMaxParcels, c.Floor.BagMaxGrams = 1_000_000, 1_000_000_000
		relaxBreakers(c)
	}})
	m = newMachine(b, st, station, "asm-floor-bench")
	byHop := map[string][]string{}
	chute := map[string]int32{}
	for from := 0; from < 40*n; from += 200 {
		var tns []string
		for i := from; i < from+200; i++ {
			tns = append(tns, sim.ViaStation(station, 1000+i))
		}
		for i, d := range m.presortAll(tns...) {
			if d.GetChuteKind() == stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP {
				byHop[d.GetNextHop()] = append(byHop[d.GetNextHop()], tns[i])
				chute[d.GetNextHop()] = d.GetChute()
			}
		}
		var full []string
		for hop, tns := range byHop {
			if len(tns) >= n {
				full = append(full, hop)
			}
		}
		if len(full) < 2 {
			continue
		}
		slices.Sort(full)
		token = st.Login("sup1")
		var bag packing.Bag
		st.Do("POST", "/api/v1/bags", token, map[string]string{"next_hop": full[0], "scan_id": "bench-open"}, http.StatusCreated, &bag)
		st.Do("PUT", "/api/v1/stations/"+station+"/chutes/"+strconv.Itoa(int(chute[full[0]]))+"/bag", token,
			map[string]string{"bag_id": bag.ID, "scan_id": "bench-bind"}, http.StatusOK, nil)
		return st, m, byHop[full[0]][:n], byHop[full[1]][:n], chute[full[0]], chute[full[1]], token
	}
	b.Fatalf("no two next hops with %d parcels each", n)
	return
}

func pctOf(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkConfirmBag measures a SORTED Confirm that also adds the parcel
// to the bag bound under its chute (bag add, work order and tracking event
// in the confirm's transaction) against a Confirm into a chute with no
// bag, one after the other, alternating, in the same run (goal: the bag
// add costs at most 1.3x). A fixed number of confirms, whatever b.N.
func BenchmarkConfirmBag(b *testing.B) {
	n := 150
	if testing.Short() {
		n = 20
	}
	_, m, bagged, bare, cBag, cBare, _ := floorBench(b, n)
	var withBag, noBag []time.Duration
	seq := uint64(0)
	confirm := func(tn string, chute int32) time.Duration {
		seq++
		start := time.Now()
		if _, err := m.confirm(&stationv1.ConfirmRequest{Sequence: seq, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED,
			TrackingNo: tn, Chute: chute}); err != nil {
			b.Fatalf("confirm %s: %v", tn, err)
		}
		return time.Since(start)
	}
	b.ResetTimer()
	for i := 0; i < n; i++ {
		// Alternate which goes first, so neither always follows the other.
		if i%2 == 0 {
			withBag = append(withBag, confirm(bagged[i], cBag))
			noBag = append(noBag, confirm(bare[i], cBare))
		} else {
			noBag = append(noBag, confirm(bare[i], cBare))
			withBag = append(withBag, confirm(bagged[i], cBag))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(pctOf(withBag, 0.5).Microseconds()), "bag_p50_us")
	b.ReportMetric(float64(pctOf(noBag, 0.5).Microseconds()), "nobag_p50_us")
	b.ReportMetric(float64(pctOf(withBag, 0.99).Microseconds()), "bag_p99_us")
	b.ReportMetric(float64(pctOf(noBag, 0.99).Microseconds()), "nobag_p99_us")
	b.ReportMetric(ratio(pctOf(withBag, 0.5), pctOf(noBag, 0.5)), "p50_ratio")
}

// BenchmarkConfirmToFloor measures from a SORTED Confirm into a bagged
// chute to the floor's event stream (GET .../floor/events, as the floor
// page reads it) carrying the new fill: one confirm at a time, reported
// as p50 and p99 (no goal: the stream gathers changes for 50 ms).
func BenchmarkConfirmToFloor(b *testing.B) {
	n := 100
	if testing.Short() {
		n = 10
	}
	st, m, bagged, _, cBag, _, token := floorBench(b, n)
	events := floorStream(b, st, token)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := m.confirm(&stationv1.ConfirmRequest{Sequence: uint64(i + 1), Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED,
			TrackingNo: bagged[i], Chute: cBag}); err != nil {
			b.Fatalf("confirm %s: %v", bagged[i], err)
		}
		events.waitFor(b, func(v floor.View) (floor.ChuteStatus, bool) {
			c := chuteIn(v, int(cBag))
			return c.Status, c.Bag != nil && c.Bag.Fill.Parcels >= i+1
		})
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(pctOf(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pctOf(lat, 0.99).Milliseconds()), "p99-ms")
}
