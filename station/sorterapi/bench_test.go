package sorterapi_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

// The benchmarks measure fixed amounts of wall time, whatever b.N: each
// figure needs seconds of load to mean anything, and `-benchtime=1x` (the
// smoke run) then costs the same as a real run, bounded to well under a
// minute for the whole file.

// echoServer is the baseline: the same SorterService messages on a bare
// gRPC server (no interceptors, no auth, no lookup). What Resolve costs on
// top of it is what Station adds to gRPC itself on this machine.
type echoServer struct {
	stationv1.UnimplementedSorterServiceServer
}

func (echoServer) Resolve(_ context.Context, req *stationv1.ResolveRequest) (*stationv1.ResolveResponse, error) {
	return &stationv1.ResolveResponse{Decision: &stationv1.Decision{
		TrackingNo: req.GetTrackingNo(), Chute: 1, ChuteKind: stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP, NextHop: "SG-L01",
		Source: stationv1.DecisionSource_DECISION_SOURCE_PRESORTED, Flow: "full", FlowVersion: 1}}, nil
}

func startEcho(b *testing.B) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	stationv1.RegisterSorterServiceServer(srv, echoServer{})
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// beltStation starts a station whose logs stay quiet (the observer would
// otherwise keep a line per call in memory) and pre-sorts n parcels.
// parallelism 0 keeps the configured default.
func beltStation(b *testing.B, n, parallelism int, sims ...simtest.Option) (*stationtest.Station, *machine, []string) {
	st := stationtest.Start(b, stationtest.Options{Sim: sims, Config: func(c *config.Config) {
		c.Sorter.Global, c.Sorter.PerSorter = 100000, 100000
		if parallelism > 0 {
			c.Sorter.Parallelism = parallelism
		}
		relaxBreakers(c)
	}})
	m := newMachine(b, st, station, "bench")
	tns := make([]string, n)
	for i := range tns {
		tns[i] = sim.ViaStation(station, i)
	}
	for lo := 0; lo < n; lo += 1000 {
		m.presortAll(tns[lo:min(lo+1000, n)]...)
	}
	if got := st.Count(`SELECT count(*) FROM presort_results`); got != n {
		b.Fatalf("set-up: %d of %d parcels pre-sorted", got, n)
	}
	return st, m, tns
}

type run struct {
	lat  []time.Duration
	errs int64
	rps  float64
	secs float64 // how long the run took
}

func (r run) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	return s[min(int(p*float64(len(s))), len(s)-1)]
}

// openLoop sends at a fixed rate for d, whatever the answers' latency (so a
// slow server cannot slow the load down and hide its queueing), and records
// each call's latency from its dispatch.
func openLoop(ctx context.Context, rate int, d time.Duration, call func(context.Context, int) error) run {
	total := int(d.Seconds() * float64(rate))
	lat := make([]time.Duration, total)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := 0
	for sent < total {
		<-tick.C
		due := min(int(time.Since(start).Seconds()*float64(rate)), total)
		for ; sent < due; sent++ {
			i := sent
			wg.Go(func() {
				t0 := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
				err := call(cctx, i)
				cancel()
				lat[i] = time.Since(t0)
				if err != nil {
					errs.Add(1)
				}
			})
		}
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return run{lat: lat, errs: errs.Load(), rps: float64(total) / secs, secs: secs}
}

// rounds is how many alternating turns each side of a comparison gets.
const rounds = 6

// alternate runs measure rounds times for each side, the echo (first) and
// the measured service by turns, neither side always going first, and
// pools each side's samples.
func alternate(rounds int, measure func(first bool) run) (first, second run) {
	var calls, elapsed [2]float64
	var out [2]run
	for i := range 2 * rounds {
		side := (i + i/2) % 2 // 0 1 1 0 0 1 1 0 ...
		r := measure(side == 0)
		out[side].lat = append(out[side].lat, r.lat...)
		out[side].errs += r.errs
		calls[side] += r.rps * r.secs
		elapsed[side] += r.secs
	}
	for side := range 2 {
		if elapsed[side] > 0 {
			out[side].rps = calls[side] / elapsed[side]
		}
	}
	return out[0], out[1]
}

// closedLoop runs workers back to back for d: the most the server answers.
func closedLoop(ctx context.Context, workers int, d time.Duration, call func(context.Context, int) error) run {
	var n, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for i := w; time.Since(start) < d; i += workers {
				if call(ctx, i) != nil {
					errs.Add(1)
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return run{errs: errs.Load(), rps: float64(n.Load()) / secs, secs: secs}
}

// BenchmarkResolvePresortedVsEcho drives Resolve for pre-sorted parcels and
// a bare gRPC echo of the same messages with the same driver, at 2,000 and
// 5,000 requests per second for 3 s each, then closed-loop for the maximum
// throughput; figures are reported as ratios to the echo (goal: p50 and p99
// within 1.3x, throughput at least 0.7x). Each figure's time is cut into
// rounds that alternate between the two, so the shared machine's drift
// falls on both alike.
func BenchmarkResolvePresortedVsEcho(b *testing.B) {
	_, m, tns := beltStation(b, 1000, 16)
	echo := dial(b, startEcho(b))
	ctx := m.ctx()
	resolve := func(c context.Context, i int) error {
		_, err := m.cli.Resolve(c, &stationv1.ResolveRequest{TrackingNo: tns[i%len(tns)]})
		return err
	}
	viaEcho := func(c context.Context, i int) error {
		_, err := echo.Resolve(c, &stationv1.ResolveRequest{TrackingNo: tns[i%len(tns)]})
		return err
	}
	// Warm both paths (connections, caches) before measuring.
	closedLoop(ctx, 8, 300*time.Millisecond, resolve)
	closedLoop(ctx, 8, 300*time.Millisecond, viaEcho)
	b.ResetTimer()
	for _, rate := range []int{2000, 5000} {
		e, r := alternate(rounds, func(first bool) run {
			if first {
				return openLoop(ctx, rate, 3*time.Second/rounds, viaEcho)
			}
			return openLoop(ctx, rate, 3*time.Second/rounds, resolve)
		})
		suffix := "_" + itoa(rate)
		b.ReportMetric(ratio(r.pct(0.5), e.pct(0.5)), "p50_ratio"+suffix)
		b.ReportMetric(ratio(r.pct(0.99), e.pct(0.99)), "p99_ratio"+suffix)
		b.ReportMetric(float64(r.pct(0.5).Microseconds()), "resolve_p50_us"+suffix)
		b.ReportMetric(float64(r.pct(0.99).Microseconds()), "resolve_p99_us"+suffix)
		b.ReportMetric(float64(e.pct(0.5).Microseconds()), "echo_p50_us"+suffix)
		b.ReportMetric(float64(e.pct(0.99).Microseconds()), "echo_p99_us"+suffix)
		b.ReportMetric(float64(r.errs+e.errs), "errors"+suffix)
	}
	e, r := alternate(rounds, func(first bool) run {
		if first {
			return closedLoop(ctx, 64, 1500*time.Millisecond/rounds, viaEcho)
		}
		return closedLoop(ctx, 64, 1500*time.Millisecond/rounds, resolve)
	})
	b.ReportMetric(r.rps/e.rps, "max_rps_ratio")
	b.ReportMetric(r.rps, "resolve_max_rps")
	b.ReportMetric(e.rps, "echo_max_rps")
	b.ReportMetric(float64(r.errs+e.errs), "errors_max")
}

// BenchmarkResolveStream measures decisions per second over four open
// streams of pre-sorted parcels for 2 s.
func BenchmarkResolveStream(b *testing.B) {
	_, m, tns := beltStation(b, 1000, 16)
	ctx, cancel := context.WithCancel(m.ctx())
	defer cancel()
	const streams = 4
	var got atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for s := range streams {
		stream, err := m.cli.ResolveStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for i := s; time.Since(start) < 2*time.Second; i += streams {
				if stream.Send(&stationv1.ResolveStreamRequest{RequestId: uint64(i), TrackingNo: tns[i%len(tns)]}) != nil {
					return
				}
			}
			_ = stream.CloseSend()
		})
		wg.Go(func() {
			for {
				if _, err := stream.Recv(); err != nil {
					return
				}
				got.Add(1)
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "decisions/s")
}

// BenchmarkPreSort measures parcels per second for one batch of 500
// through the full SG flow with the simulator's default latency profile
// (~70-100 ms per sort) and the default parallelism (64).
func BenchmarkPreSort(b *testing.B) {
	_, m, _ := beltStation(b, 0, 0, simtest.WithLatency(sim.ProfileDefault))
	// One pass over the numbers: ViaStation(i) searches from the start each
	// time, which for 500 parcels costs minutes.
	fx := sim.NewFixtures(sim.DefaultSeed)
	tns := make([]string, 0, 500)
	for j := 20000; len(tns) < cap(tns); j++ {
		no := sim.TrackingNo("SG", sim.Normal, j)
		if p, err := fx.Parcel(no); err == nil && fx.Via(p.Origin, p.Destination, station) {
			tns = append(tns, no)
		}
	}
	b.ResetTimer()
	start := time.Now()
	ds := m.presort(tns...)
	elapsed := time.Since(start)
	rejected := 0
	for _, d := range ds {
		if d.GetChuteKind() == stationv1.ChuteKind_CHUTE_KIND_REJECT {
			rejected++
		}
	}
	b.ReportMetric(float64(len(tns))/elapsed.Seconds(), "parcels/s")
	b.ReportMetric(float64(rejected), "rejected")
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func itoa(n int) string {
	return string(rune('0'+n/1000)) + "k" // 2000 -> "2k", 5000 -> "5k"
}
