package sorting

import (
	"context"
	"testing"
	"time"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/workorder"
)

// blameWorld is a sorting service on a fresh database and the simulator
// its flows ask: the shipped flows run for real, so a blame is tested on
// the traces production makes.
type blameWorld struct {
	svc *Service
	fx  *sim.Fixtures
}

func newBlameWorld(t *testing.T) blameWorld {
	t.Helper()
	ctx := context.Background()
	db := dbtest.Pool(t)
	s := simtest.Start(t, simtest.WithZeroLatency())
	set, err := clients.Dial(ctx, clients.DefaultConfig().WithAddr(s.Addr()), clients.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	chutes := NewChuteStore(db, time.Second)
	if _, err := chutes.Put(ctx, "SG-H01", NumberedChuteMap(s.Fixtures().NextHops("SG-H01")), 0, "test"); err != nil {
		t.Fatal(err)
	}
	flows, err := NewFlowSet(ctx, db, Clients(set), chutes)
	if err != nil {
		t.Fatal(err)
	}
	return blameWorld{svc: NewService(db, NewRouter(flows, chutes, nil, nil), nil, nil), fx: s.Fixtures()}
}

// parcel is the i-th parcel of kind whose route passes SG-H01.
func (w blameWorld) parcel(t *testing.T, kind sim.Kind) ident.TrackingNo {
	t.Helper()
	for j := 0; j < 10_000; j++ {
		tn := sim.TrackingNo("SG", kind, j)
		p, err := w.fx.Parcel(tn)
		if err == nil && w.fx.Via(p.Origin, p.Destination, "SG-H01") {
			return ident.TrackingNo(tn)
		}
	}
	t.Fatalf("no %v parcel via SG-H01", kind)
	return ""
}

func (w blameWorld) flow(t *testing.T, name string) *Flow {
	t.Helper()
	f, err := w.svc.Flows().Version(name, 1)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// compare runs both flows on tn in dry run, as a shadow comparison does,
// and blames the difference.
func (w blameWorld) compare(t *testing.T, stable, candidate string, tn ident.TrackingNo) (Result, Result, Blame, bool) {
	t.Helper()
	ctx := context.Background()
	a, aRun := w.svc.Run(ctx, w.flow(t, stable), "SG-H01", tn, true)
	b, bRun := w.svc.Run(ctx, w.flow(t, candidate), "SG-H01", tn, true)
	blame, ok := blameOf(aRun, bRun)
	return a, b, blame, ok
}

// The case: with the lean flow as candidate every mismatch was put
// down to check_station_site, the first step lean lacks, even where the
// full flow had failed at check_delivery_status.
func TestBlameNamesTheStepOnlyStableHasWhenStableFailedThere(t *testing.T) {
	t.Parallel()
	w := newBlameWorld(t)
	tn := w.parcel(t, sim.Intercepted)
	a, b, blame, ok := w.compare(t, "full", "lean", tn)
	if excCode(a.Exception) != CodeIntercepted || b.Exception != nil || Same(a, b) {
		t.Fatalf("want full to find the interception and lean to sort: full %+v, lean %+v", a.Exception, b)
	}
	want := Blame{Node: "check_delivery_status", OnlyIn: OnlyInStable}
	if !ok || blame != want {
		t.Fatalf("blamed %+v (found %v), want %+v", blame, ok, want)
	}
}

func TestBlameNamesTheStepOnlyTheCandidateHasWhenItFailedThere(t *testing.T) {
	t.Parallel()
	w := newBlameWorld(t)
	tn := w.parcel(t, sim.OutForDelivery)
	a, b, blame, ok := w.compare(t, "lean", "full", tn)
	if a.Exception != nil || excCode(b.Exception) != CodeAlreadyOut {
		t.Fatalf("want lean to sort and full to find the parcel out: lean %+v, full %+v", a, b.Exception)
	}
	want := Blame{Node: "check_delivery_status", OnlyIn: OnlyInCandidate}
	if !ok || blame != want {
		t.Fatalf("blamed %+v (found %v), want %+v", blame, ok, want)
	}
}

// Steps only one flow has that passed decide nothing: two flows that agree
// have nothing to blame, however many steps one of them lacks.
func TestBlameIgnoresStepsOnlyOneFlowHasThatPassed(t *testing.T) {
	t.Parallel()
	w := newBlameWorld(t)
	tn := w.parcel(t, sim.Normal)
	a, b, blame, ok := w.compare(t, "full", "lean", tn)
	if !Same(a, b) {
		t.Fatalf("full and lean differ on a clean parcel: %+v / %+v", a, b)
	}
	if ok {
		t.Fatalf("blamed %+v where the flows agree", blame)
	}
}

// Over the steps both flows have, the first in dependency order whose
// output differs: get_route, not resolve_chute downstream of it.
func TestBlameNamesTheFirstSharedStepWhoseOutputDiffers(t *testing.T) {
	t.Parallel()
	w := newBlameWorld(t)
	site, _, _ := sim.RehomedV2("SG")
	var tn ident.TrackingNo
	for i := 0; i < 5000 && tn == ""; i++ {
		no := sim.ViaStation("SG-H01", i)
		if p, err := w.fx.Parcel(no); err == nil && p.Destination == site {
			tn = ident.TrackingNo(no)
		}
	}
	if tn == "" {
		t.Fatal("no parcel for the site V2 routing re-homes")
	}
	a, b, blame, ok := w.compare(t, "full", "full_v2", tn)
	if Same(a, b) {
		t.Fatalf("full and full_v2 agree on %s: %+v", tn, a)
	}
	if !ok || blame.Node != "get_route" || blame.Key == "" || blame.OnlyIn != "" {
		t.Fatalf("blamed %+v (found %v), want get_route's output, in both flows", blame, ok)
	}
}

// The blame is what ops read back: the stored mismatch and the report name
// the step and the flow that alone has it.
func TestRecordedMismatchSaysWhichFlowAloneHasTheBlamedStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newBlameWorld(t)
	tn := w.parcel(t, sim.Intercepted)
	// The full flow's stored answer: the interception, as it served it.
	if _, err := w.svc.db.Exec(ctx, `INSERT INTO sort_results (id, station_id, tracking_no, next_hop, chute, exception_code, flow, flow_version)
		VALUES ($1, 'SG-H01', $2, NULL, 0, $3, 'full', 1)`, workorder.NewID(), string(tn), CodeIntercepted); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Hour)
	rep, err := w.svc.Offline(ctx, OfflineRequest{SiteID: "SG-H01", CandidateFlow: "lean", CandidateVersion: 1, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mismatches != 1 || rep.ByStep["check_delivery_status"] != 1 {
		t.Fatalf("offline report %+v, want one mismatch at check_delivery_status", rep)
	}
	r, err := w.svc.Reconciliation(ctx, "SG-H01", since)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Recent) != 1 {
		t.Fatalf("%d mismatches listed", len(r.Recent))
	}
	m, err := w.svc.Mismatch(ctx, r.Recent[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []MismatchSummary{r.Recent[0], m.MismatchSummary} {
		if deref(got.FirstDiffNode) != "check_delivery_status" || deref(got.FirstDiffOnlyIn) != OnlyInStable {
			t.Fatalf("recorded first difference %q only in %q, want check_delivery_status only in stable",
				deref(got.FirstDiffNode), deref(got.FirstDiffOnlyIn))
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
