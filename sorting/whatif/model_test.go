package whatif

import (
	"testing"
	"time"

	"github.com/expresshub/station/sorting"
)

var t0 = time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)

func testMap() sorting.ChuteMap {
	return sorting.ChuteMap{NextHops: map[string][]int{"SG-L01": {1, 2}, "SG-L02": {3}}, ExceptionChute: 10, OverflowChute: 11, RejectChute: 12}
}

func TestAFullBagSendsParcelsToTheHopsNextChuteThenToOverflowUntilItIsSwapped(t *testing.T) {
	f := newFloorModel(testMap(), BagLimits{MaxParcels: 2, MaxGrams: 100_000}, 10*time.Minute, t0, t0.Add(time.Hour), 6)
	want := []int{1, 1, 2, 2, 11}
	for i, w := range want {
		if c, exc := f.place(t0.Add(time.Duration(i)*time.Second), "SG-L01", "", 500); c != w || exc != "" {
			t.Fatalf("parcel %d: chute %d %q, want %d", i, c, exc, w)
		}
	}
	// Ten minutes after chute 1's bag was full, a new bag hangs there.
	if c, _ := f.place(t0.Add(11*time.Minute), "SG-L01", "", 500); c != 1 {
		t.Fatalf("after the swap: chute %d, want 1", c)
	}
	fills := f.fills()
	one := fills[1]
	if one.Parcels != 3 || one.Bags != 2 || one.PeakParcels != 2 || one.Overflow != 3 || one.FullAt == nil || !one.FullAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("chute 1: %+v", one)
	}
	if two := fills[2]; two.Overflow != 1 || two.Parcels != 2 || two.PeakKg != 1 || two.PeakRatio != 1 {
		t.Fatalf("chute 2: %+v", two)
	}
	if ov := fills[11]; ov.Parcels != 1 {
		t.Fatalf("overflow: %+v", ov)
	}
	// The series holds the peak fill of each ten-minute bucket.
	if s := one.Series; s[0] != 1 || s[1] != 0.5 {
		t.Fatalf("series %v", s)
	}
}

func TestTheWeightLimitFillsABagToo(t *testing.T) {
	f := newFloorModel(testMap(), BagLimits{MaxParcels: 100, MaxGrams: 1000}, time.Hour, t0, t0.Add(time.Hour), 4)
	for i, w := range []int{3, 3, 11} {
		if c, _ := f.place(t0.Add(time.Duration(i)*time.Second), "SG-L02", "", 600); c != w {
			t.Fatalf("parcel %d: chute %d, want %d", i, c, w)
		}
	}
}

func TestExceptionsAndHopsWithoutAChuteGoToTheExceptionChute(t *testing.T) {
	f := newFloorModel(testMap(), BagLimits{MaxParcels: 1, MaxGrams: 1}, time.Hour, t0, t0.Add(time.Hour), 4)
	if c, exc := f.place(t0, "", sorting.CodeCancelled, 0); c != 10 || exc != sorting.CodeCancelled {
		t.Fatalf("exception: %d %q", c, exc)
	}
	if c, exc := f.place(t0, "SG-L09", "", 0); c != 10 || exc != sorting.CodeNoChute {
		t.Fatalf("no chute: %d %q", c, exc)
	}
	// Special chutes have no bag limit.
	if c, _ := f.place(t0, "", sorting.CodeCancelled, 0); c != 10 {
		t.Fatalf("second exception: %d", c)
	}
}

func TestALaterSortDecidesAndAConfirmIsWhenTheParcelArrives(t *testing.T) {
	var rep Report
	ps := gather([]Scan{
		{Kind: KindReceive, At: t0, TrackingNo: "SG1000000001"},
		{Kind: KindSort, At: t0.Add(time.Second), TrackingNo: "SG1000000001", NextHop: "SG-L01", WeightG: 700},
		{Kind: KindSort, At: t0.Add(2 * time.Second), TrackingNo: "SG1000000002", Exception: sorting.CodeUnpaid},
		{Kind: KindSort, At: t0.Add(3 * time.Second), TrackingNo: "SG1000000001", NextHop: "SG-L02"},
		{Kind: KindConfirm, At: t0.Add(9 * time.Second), TrackingNo: "SG1000000001", NextHop: "SG-L02", Chute: 3},
		{Kind: KindConfirm, At: t0.Add(5 * time.Second), TrackingNo: "SG1000000003", NextHop: "SG-L01", Chute: 1},
	}, &rep)
	if rep.Received != 1 || len(ps) != 3 {
		t.Fatalf("received %d, parcels %d", rep.Received, len(ps))
	}
	if p := ps[0]; p.tn != "SG1000000002" || p.exc != sorting.CodeUnpaid || p.hop != "" {
		t.Fatalf("first: %+v", p)
	}
	if p := ps[1]; p.tn != "SG1000000003" || p.hop != "SG-L01" || !p.answered {
		t.Fatalf("confirm alone: %+v", p)
	}
	if p := ps[2]; p.tn != "SG1000000001" || p.hop != "SG-L02" || !p.at.Equal(t0.Add(9*time.Second)) || p.grams != 700 {
		t.Fatalf("re-sorted and confirmed: %+v", p)
	}
}
