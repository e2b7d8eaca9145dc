package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"google.golang.org/protobuf/types/known/durationpb"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// faultCounts counts each kind of fault injected, by name.
type faultCounts struct {
	mu     sync.Mutex
	counts map[string]int
}

func (f *faultCounts) add(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counts == nil {
		f.counts = map[string]int{}
	}
	f.counts[name]++
}

// String lists every fault with its count, most frequent first.
func (f *faultCounts) String() string { return f.only("") }

// only lists the faults whose name starts with prefix, as String does.
func (f *faultCounts) only(prefix string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.counts))
	for n := range f.counts {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := f.counts[b] - f.counts[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s ×%d", n, f.counts[n])
	}
	return strings.Join(parts, ", ")
}

func (f *faultCounts) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.counts {
		n += c
	}
	return n
}

// fleetFault is one fault the chaos loop injects, holds and undoes.
type fleetFault struct {
	name   string
	hold   time.Duration
	inject func(ctx context.Context) (undo func() error, err error)
}

// linkFaults are the toxiproxy faults of one link: slowness, connection
// loss and a stalled or pulled cable.
func linkFaults(l *toxiLink) []fleetFault {
	toxic := func(typ string, attrs toxiproxy.Attributes) func(context.Context) (func() error, error) {
		return func(context.Context) (func() error, error) { return l.toxic(typ, attrs) }
	}
	return []fleetFault{
		{l.name + " latency 150ms±100ms", time.Second, toxic("latency", toxiproxy.Attributes{"latency": 150, "jitter": 100})},
		{l.name + " connections reset", 500 * time.Millisecond, toxic("reset_peer", toxiproxy.Attributes{"timeout": 0})},
		{l.name + " link down", 600 * time.Millisecond, func(context.Context) (func() error, error) { return l.disable() }},
		{l.name + " link stalls, closed after 600ms", 800 * time.Millisecond, toxic("timeout", toxiproxy.Attributes{"timeout": 600})},
		{l.name + " bandwidth 32KB/s", 800 * time.Millisecond, toxic("bandwidth", toxiproxy.Attributes{"rate": 32})},
		{l.name + " slow close 300ms", 800 * time.Millisecond, toxic("slow_close", toxiproxy.Attributes{"delay": 300})},
	}
}

// simFaults are the downstream simulator's own faults: error rates and a
// latency spike on the calls sorting, packing and the relay make.
func simFaults(s *simProc) []fleetFault {
	methods := []string{"GetRouteV2", "GetWaybill", "AllocateBagID", "PushTrackingEvents"}
	return []fleetFault{
		{"downstream errors 30% (UNAVAILABLE)", 1200 * time.Millisecond, func(ctx context.Context) (func() error, error) {
			for _, m := range methods {
				if _, err := s.admin.SetFault(ctx, &downstreamv1.SetFaultRequest{Method: m, Fault: &downstreamv1.Fault{ErrorRate: 0.3, Code: 14}}); err != nil {
					return nil, fmt.Errorf("sim: set fault on %s: %w", m, err)
				}
			}
			return func() error {
				_, err := s.admin.ClearFaults(context.Background(), &downstreamv1.ClearFaultsRequest{})
				return err
			}, nil
		}},
		{"downstream latency spike 250ms±150ms", 1200 * time.Millisecond, func(ctx context.Context) (func() error, error) {
			over := map[string]*downstreamv1.MethodLatency{}
			for _, m := range methods {
				over[m] = &downstreamv1.MethodLatency{Base: durationpb.New(250 * time.Millisecond), Jitter: durationpb.New(150 * time.Millisecond)}
			}
			if _, err := s.admin.SetLatencyProfile(ctx, &downstreamv1.SetLatencyProfileRequest{Overrides: over}); err != nil {
				return nil, fmt.Errorf("sim: latency spike: %w", err)
			}
			return func() error {
				_, err := s.admin.SetLatencyProfile(context.Background(), &downstreamv1.SetLatencyProfileRequest{Profile: "zero"})
				return err
			}, nil
		}},
	}
}

// redisRestart stops the suite's redis-server and starts it again, empty.
func redisRestart(r *redisProc) fleetFault {
	return fleetFault{"redis-server stopped and restarted", 1200 * time.Millisecond, func(context.Context) (func() error, error) {
		r.stop()
		return r.start, nil
	}}
}

// interleave takes one fault of each list in turn, so a short run sees
// every kind of fault early.
func interleave(lists ...[]fleetFault) []fleetFault {
	var out []fleetFault
	for i := 0; ; i++ {
		added := false
		for _, l := range lists {
			if i < len(l) {
				out = append(out, l[i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// runFaults injects the faults one after another, each held for its time
// and then undone, round and round until stop closes. Only one fault is in
// force at a time, so every one of them is attributable.
func runFaults(ctx context.Context, stop <-chan struct{}, faults []fleetFault, counts *faultCounts) error {
	const gap = 250 * time.Millisecond
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(gap):
		}
		f := faults[i%len(faults)]
		undo, err := f.inject(ctx)
		if err != nil {
			return fmt.Errorf("inject %s: %w", f.name, err)
		}
		counts.add(f.name)
		select {
		case <-stop:
		case <-ctx.Done():
		case <-time.After(f.hold):
		}
		if err := undo(); err != nil {
			return fmt.Errorf("undo %s: %w", f.name, err)
		}
	}
}

// runKiller SIGKILLs a random instance every interval and starts it again
// on the same ports, until stop closes. One instance at most is down.
// startFailures counts restarts that exited during start-up and were tried
// again.
func runKiller(ctx context.Context, stop <-chan struct{}, procs []*serveProc, every time.Duration, counts *faultCounts, startFailures *atomic.Int64) error {
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
		p := procs[rand.IntN(len(procs))]
		p.kill()
		counts.add("SIGKILL of a station instance")
		// Terminals see refused connections for a moment, as when a
		// process manager restarts a crashed instance.
		time.Sleep(300 * time.Millisecond)
		if err := restart(p, startFailures); err != nil {
			return err
		}
	}
}

// restart starts a killed instance again the way a process manager does:
// an instance that exits during start-up (its database link is down at
// that moment, say) is started again, a bounded number of times.
func restart(p *serveProc, startFailures *atomic.Int64) error {
	var err error
	for range 20 {
		if err = p.startErr(); err == nil {
			return nil
		}
		startFailures.Add(1)
		p.kill() // in case it is still running, not ready
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("restart after SIGKILL: %w", err)
}
