package floor_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/station/floor"
	"github.com/expresshub/station/station/stationtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

// TestLiveFloorsShareOneReadPerChange: every live floor of a station woken
// by one change gets a view read after that change, and they share one
// read of the database, however many supervisors watch.
func TestLiveFloorsShareOneReadPerChange(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	f := st.App.Floor()
	ctx := context.Background()
	const station, watchers = "SG-H01", 12

	// The first change: a bag hangs under chute 3.
	sup := st.Login("sup1")
	var v0 floor.View
	st.Do("GET", "/api/v1/stations/"+station+"/floor", sup, nil, http.StatusOK, &v0)
	hop := chuteHop(t, v0, 3)
	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": hop, "scan_id": "live-open"}, http.StatusCreated, &bag)
	gen := f.Hub().Generation(station)
	st.Do("PUT", "/api/v1/stations/"+station+"/chutes/3/bag", sup, map[string]string{"bag_id": bag.ID, "scan_id": "live-bind"}, http.StatusOK, nil)
	waitGeneration(t, f, station, gen)

	before := views(t, st)
	var wg sync.WaitGroup
	got := make([]floor.View, watchers)
	errs := make([]error, watchers)
	for i := range watchers {
		wg.Go(func() { got[i], errs[i] = f.Live(ctx, station) })
	}
	wg.Wait()
	for i := range watchers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if c := chuteOf(got[i], 3); c.Bag == nil || c.Bag.BagID != bag.ID {
			t.Fatalf("watcher %d sees chute 3 without the bag bound before it was woken: %+v", i, c)
		}
	}
	if n := views(t, st) - before; n != 1 {
		t.Fatalf("%d watchers woken by one change read the floor %d times, want once", watchers, n)
	}

	// A later change is never answered with the view from before it.
	gen = f.Hub().Generation(station)
	st.Do("DELETE", "/api/v1/stations/"+station+"/chutes/3/bag", sup, map[string]string{"scan_id": "live-unbind"}, http.StatusOK, nil)
	waitGeneration(t, f, station, gen)
	v, err := f.Live(ctx, station)
	if err != nil {
		t.Fatal(err)
	}
	if c := chuteOf(v, 3); c.Bag != nil {
		t.Fatalf("after the unbind the live floor still shows bag %s under chute 3", c.Bag.BagID)
	}
}

func waitGeneration(t *testing.T, f *floor.Floor, station string, after uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for f.Hub().Generation(station) <= after {
		if time.Now().After(deadline) {
			t.Fatal("the floor's change signal never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func chuteOf(v floor.View, chute int) floor.Chute {
	for _, c := range v.Chutes {
		if c.Chute == chute {
			return c
		}
	}
	return floor.Chute{}
}

func chuteHop(t *testing.T, v floor.View, chute int) string {
	t.Helper()
	c := chuteOf(v, chute)
	if c.NextHop == "" {
		t.Fatalf("chute %d has no next hop on the floor: %+v", chute, c)
	}
	return c.NextHop
}

// views reads station_floor_views_total from /metrics.
func views(t *testing.T, st *stationtest.Station) int {
	t.Helper()
	r := st.Send("GET", "/metrics", "", nil)
	for line := range strings.SplitSeq(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, "station_floor_views_total "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	t.Fatal("no station_floor_views_total in /metrics")
	return 0
}
