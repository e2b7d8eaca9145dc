package whatif

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
)

// replayer is a replayer over a fresh database and a simulator answering
// with the named latency profile.
func replayer(t *testing.T, profile string) *Replayer {
	t.Helper()
	ctx := context.Background()
	db := dbtest.Pool(t)
	s := simtest.Start(t, simtest.WithLatency(profile))
	set, err := clients.Dial(ctx, clients.DefaultConfig().WithAddr(s.Addr()), clients.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	chutes := sorting.NewChuteStore(db, time.Second)
	if _, err := chutes.Put(ctx, "SG-H01", sorting.NumberedChuteMap(s.Fixtures().NextHops("SG-H01")), 0, "test"); err != nil {
		t.Fatal(err)
	}
	flows, err := sorting.NewFlowSet(ctx, db, sorting.Clients(set), chutes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chutes.Get(ctx, "SG-H01"); err != nil { // the map cached, as on a running station
		t.Fatal(err)
	}
	return New(db, sorting.NewService(db, sorting.NewRouter(flows, chutes, nil, nil), nil, nil), nil, Config{Parallel: 2})
}

func unanswered(n int) []Scan {
	out := make([]Scan, n)
	for i := range out {
		out[i] = Scan{Kind: KindSort, At: t0.Add(time.Duration(i) * time.Second), TrackingNo: sim.ViaStation("SG-H01", i)}
	}
	return out
}

// TestAReplayPastItsDeadlineIsRefusedWithItsOwnCode: a replay that must run
// a flow for each parcel on a slow network stops at the caller's deadline
// and says so, rather than holding the server.
func TestAReplayPastItsDeadlineIsRefusedWithItsOwnCode(t *testing.T) {
	r := replayer(t, sim.ProfileDefault)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := r.Replay(ctx, Input{Station: "SG-H01", Scans: unanswered(200)}, Candidate{Flow: &FlowRef{Name: "full_v2", Version: 1}})
	if !errors.Is(err, ErrReplayTimedOut) {
		t.Fatalf("err %v, want ErrReplayTimedOut", err)
	}
}

// TestUploadedScansWithoutAnswersAreDecidedByTheFlows: an upload of bare
// tracking numbers is decided by the station's flow (actual) and the
// candidate's (candidate), both dry, and by the same flow nothing differs.
func TestUploadedScansWithoutAnswersAreDecidedByTheFlows(t *testing.T) {
	r := replayer(t, sim.ProfileZero)
	rep, err := r.Replay(context.Background(), Input{Station: "SG-H01", Scans: unanswered(10)}, Candidate{Flow: &FlowRef{Name: "full", Version: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Parcels != 10 || rep.Rerun != 10 || rep.DiffCount != 0 || rep.Late == nil || rep.Late.Samples != 0 {
		t.Fatalf("parcels %d rerun %d differences %d late %+v", rep.Parcels, rep.Rerun, rep.DiffCount, rep.Late)
	}
	placed := 0
	for _, c := range rep.Chutes {
		if c.Kind == sorting.ChuteNextHop {
			placed += c.Actual.Parcels
		}
	}
	if placed != 10 {
		t.Fatalf("%d parcels at next-hop chutes, want 10: %+v", placed, rep.Chutes)
	}
	if _, err := r.Replay(context.Background(), Input{Station: "SG-H01", Scans: unanswered(1)}, Candidate{}); !errors.Is(err, ErrNothingToReplay) {
		t.Fatalf("no candidate: %v", err)
	}
}

// TestAnUploadSpanningMoreThanTheWindowIsRefused: uploaded scans are a
// window like a recorded one; two scans centuries apart are refused, not
// replayed into a report whose times cannot be written.
func TestAnUploadSpanningMoreThanTheWindowIsRefused(t *testing.T) {
	r := replayer(t, sim.ProfileZero)
	scans := []Scan{
		{Kind: KindSort, At: t0, TrackingNo: "SG1000000001", NextHop: "SG-H02", Chute: 3},
		{Kind: KindSort, At: t0.Add(49 * time.Hour), TrackingNo: "SG1000000002", NextHop: "SG-H02", Chute: 3},
	}
	chutes, err := r.sorter.Chutes().Get(context.Background(), "SG-H01")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Replay(context.Background(), Input{Station: "SG-H01", Scans: scans}, Candidate{ChuteMap: &chutes.ChuteMap})
	if !errors.Is(err, ErrWindowTooLong) {
		t.Fatalf("err %v, want ErrWindowTooLong", err)
	}
	scans[1].At = t0.Add(47 * time.Hour)
	rep, err := r.Replay(context.Background(), Input{Station: "SG-H01", Scans: scans}, Candidate{ChuteMap: &chutes.ChuteMap})
	if err != nil || rep.Parcels != 2 {
		t.Fatalf("within the window: %d parcels, %v", rep.Parcels, err)
	}
}

// TestAWindowWithoutItsEndsSaysTheyAreRequired: a request that leaves out
// from or to is told so, not that "to must be after from".
func TestAWindowWithoutItsEndsSaysTheyAreRequired(t *testing.T) {
	r := replayer(t, sim.ProfileZero)
	for name, in := range map[string]Input{
		"neither": {Station: "SG-H01"},
		"no to":   {Station: "SG-H01", From: t0},
		"no from": {Station: "SG-H01", To: t0},
	} {
		_, err := r.Replay(context.Background(), in, Candidate{Flow: &FlowRef{Name: "full", Version: 1}})
		if !errors.Is(err, ErrInvalidWindow) || !strings.Contains(err.Error(), "required") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
