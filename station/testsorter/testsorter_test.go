package testsorter_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/packing"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/stationtest"
	"github.com/expresshub/station/station/testsorter"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

// TestFeedFillsTheBoundBag is the newcomer's journey with the test sorter:
// a bag bound to the parcel's chute holds the parcel once the feeder has
// resolved and confirmed it, with no hand scan; feeding it again is a new
// sorter event (a new sequence), not an error, and the bag does not take
// the parcel twice.
func TestFeedFillsTheBoundBag(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	ctx := context.Background()
	key, err := st.App.Sorters().AddSorter(ctx, auth.Sorter{ID: "asm-try", StationID: "SG-H01"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(st.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var seq uint64
	f := testsorter.NewFeeder(conn, key, "SG-H01")
	f.Sequence = func() uint64 { seq++; return seq }

	sup := st.Login("sup1")
	tn := sim.ViaStation("SG-H01", 7)
	var sorted sortAnswer
	st.Do("POST", "/api/v1/sort", sup, map[string]string{"tracking_no": tn, "scan_id": "try-sort"}, http.StatusOK, &sorted)
	if sorted.Chute == nil || sorted.NextHop == nil {
		t.Fatalf("sort gave no chute: %+v", sorted)
	}
	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": *sorted.NextHop, "scan_id": "try-open"}, http.StatusCreated, &bag)
	st.Do("PUT", "/api/v1/stations/SG-H01/chutes/"+strconv.Itoa(*sorted.Chute)+"/bag", sup,
		map[string]string{"bag_id": bag.ID, "scan_id": "try-bind"}, http.StatusOK, nil)

	for range 2 {
		r, err := f.Sort(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		if int(r.Decision.GetChute()) != *sorted.Chute || r.Decision.GetChuteKind() != stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP ||
			r.WorkOrderID == "" || r.Replayed {
			t.Fatalf("feed: %+v", r)
		}
	}
	var got packing.Bag
	st.Do("GET", "/api/v1/bags/"+bag.ID, sup, nil, http.StatusOK, &got)
	if !slices.Equal(got.Items, []string{tn}) {
		t.Fatalf("bag items after two confirms: %v, want [%s]", got.Items, tn)
	}

	// A wrong key is the machine's problem to see, not a silent success.
	f.Key = "not-a-key"
	if _, err := f.Sort(ctx, tn); err == nil {
		t.Fatal("a wrong key fed a parcel")
	}
}

type sortAnswer struct {
	Chute   *int    `json:"chute"`
	NextHop *string `json:"next_hop"`
}
