package sorting_test

import (
	"fmt"
	"testing"

	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/sorting"
)

// BenchmarkBucket is the cost of the sticky bucket of one parcel, and of a
// whole release decision, which every served sort pays when its site has a
// rule.
func BenchmarkBucket(b *testing.B) {
	parcels := make([]ident.TrackingNo, 1024)
	for i := range parcels {
		parcels[i] = ident.TrackingNo(fmt.Sprintf("SG%010d", 1_000_000_000+i))
	}
	b.Run("bucket", func(b *testing.B) {
		b.ReportAllocs()
		sum, i := 0, 0
		for b.Loop() {
			sum += sorting.Bucket("3f2a9c1d7e5b4a60", parcels[i%len(parcels)])
			i++
		}
		_ = sum
	})
	b.Run("decide", func(b *testing.B) {
		b.ReportAllocs()
		rule := sorting.Rule{SiteID: "SG-H01", StableFlow: "full", StableVersion: 1, CandidateFlow: "full_v2",
			CandidateVersion: 1, Mode: sorting.ModeSplit, RatioBP: 2500, Salt: "3f2a9c1d7e5b4a60"}
		n, i := 0, 0
		for b.Loop() {
			if rule.Decide(parcels[i%len(parcels)]).ServeCandidate {
				n++
			}
			i++
		}
		_ = n
	})
}
