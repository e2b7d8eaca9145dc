package decisionlog

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/expresshub/station/sorting/belt"
)

// BenchmarkDecisionRecord is what recording costs one Resolve on the
// belt's path (the clock, the histogram, the buffer hand-off), with every
// core resolving at once and the buffer drained as fast as the flusher
// would take it (in batches, as Flush does, never parked on the channel),
// so the figure is the hand-off, not the drop path.
func BenchmarkDecisionRecord(b *testing.B) {
	r := New(nil, Config{Registerer: prometheus.NewRegistry()})
	done := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				for n := len(r.buf); n > 0; n-- {
					<-r.buf
				}
			case <-done:
				return
			}
		}
	}()
	d := belt.Decision{TrackingNo: "SG1000000001", Source: belt.FromPresort, Chute: 3}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			now := time.Now()
			r.Decided("SG-H01", "asm1", now, now.Add(150*time.Millisecond), d)
		}
	})
	b.StopTimer()
	close(done)
	<-drained
}
