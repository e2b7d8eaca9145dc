package dag_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/expresshub/station/dag"
)

// benchGraph is a layered DAG of n nodes, about sqrt(n) wide: each node
// depends on 1 to 3 nodes of the layer before. Deterministic per n.
func benchGraph(n int) [][]int {
	width := max(2, int(math.Sqrt(float64(n))))
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	deps := make([][]int, n)
	for i := width; i < n; i++ {
		prev := (i/width - 1) * width
		for _, j := range rng.Perm(width)[:1+rng.IntN(3)] {
			deps[i] = append(deps[i], prev+j)
		}
	}
	return deps
}

// benchPlan compiles the graph with one step per node, whose body is
// run(i).
func benchPlan(b *testing.B, deps [][]int, run func(i int) dag.Func) *dag.Plan {
	reg := dag.NewRegistry()
	cfg := dag.Config{Name: "bench", Version: "1"}
	for i := range deps {
		name := fmt.Sprintf("s%d", i)
		if err := reg.Register(dag.Step{Name: name, Run: run(i)}); err != nil {
			b.Fatal(err)
		}
		nc := dag.NodeConfig{Step: name}
		for _, d := range deps[i] {
			nc.DependsOn = append(nc.DependsOn, fmt.Sprintf("s%d", d))
		}
		cfg.Nodes = append(cfg.Nodes, nc)
	}
	p, err := dag.Compile(cfg, reg)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// runErrgroup is the hand-written baseline: what a careful engineer writes
// for one fixed graph without an engine (a goroutine per node waiting on its
// dependencies' channels, errgroup for the first error and cancellation).
func runErrgroup(ctx context.Context, deps [][]int, step func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	done := make([]chan struct{}, len(deps))
	for i := range done {
		done[i] = make(chan struct{})
	}
	for i := range deps {
		g.Go(func() error {
			for _, d := range deps[i] {
				select {
				case <-done[d]:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if err := step(ctx, i); err != nil {
				return err
			}
			close(done[i])
			return nil
		})
	}
	return g.Wait()
}

// warmup runs f for 50ms before a measurement (b.Loop starts the clock at
// its first call), so a short -benchtime reports the steady state rather
// than the first runs' page faults and heap growth.
func warmup(f func()) {
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		f()
	}
	runtime.GC()
}

func emptyStep(context.Context, dag.Inputs, dag.Outputs) error { return nil }

// BenchmarkOverhead measures the engine's cost per node with empty steps,
// next to the hand-written errgroup code for the same graph; compare
// ns/node of engine/n=N with errgroup/n=N. sequential/n=N is the engine's
// bookkeeping alone, without goroutines.
func BenchmarkOverhead(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 50, 200} {
		deps := benchGraph(n)
		p := benchPlan(b, deps, func(int) dag.Func { return emptyStep })
		perNode := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/node")
		}
		b.Run(fmt.Sprintf("engine/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			warmup(func() { _, _ = dag.Run(ctx, p, nil, dag.Options{}) })
			for b.Loop() {
				if _, err := dag.Run(ctx, p, nil, dag.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			perNode(b)
		})
		b.Run(fmt.Sprintf("errgroup/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			step := func(context.Context, int) error { return nil }
			warmup(func() { _ = runErrgroup(ctx, deps, step) })
			for b.Loop() {
				if err := runErrgroup(ctx, deps, step); err != nil {
					b.Fatal(err)
				}
			}
			perNode(b)
		})
		b.Run(fmt.Sprintf("sequential/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			warmup(func() { _, _ = dag.Run(ctx, p, nil, dag.Options{Sequential: true}) })
			for b.Loop() {
				if _, err := dag.Run(ctx, p, nil, dag.Options{Sequential: true}); err != nil {
					b.Fatal(err)
				}
			}
			perNode(b)
		})
	}
}

// sleepFor gives node i a simulated I/O time of 50-200µs.
func sleepFor(n, i int) time.Duration {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(i)))
	return time.Duration(50+rng.IntN(151)) * time.Microsecond
}

func sleepingPlan(b *testing.B, n int) *dag.Plan {
	return benchPlan(b, benchGraph(n), func(i int) dag.Func {
		d := sleepFor(n, i)
		return func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
			time.Sleep(d)
			return nil
		}
	})
}

// BenchmarkSleep runs steps that sleep (simulated I/O) and reports the run's
// wall time divided by its critical path (the sum of the measured step
// durations along the longest chain): 1.0 would be a free engine. The
// measured durations are used because time.Sleep overshoots by up to a
// millisecond on some machines; the overshoot is the step's, not the
// engine's.
func BenchmarkSleep(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 50} {
		p := sleepingPlan(b, n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			var wall, critical time.Duration
			for b.Loop() {
				start := time.Now()
				res, err := dag.Run(ctx, p, nil, dag.Options{})
				wall += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				critical += res.Trace.CriticalPathDuration
			}
			b.ReportMetric(float64(wall)/float64(critical), "wall/critical")
			b.ReportMetric(float64(critical.Microseconds())/float64(b.N), "critical-µs/op")
		})
	}
}

// BenchmarkLegacy runs the same sleeping graph sequentially (the legacy
// baseline) and as a DAG, alternating, and reports the ratio of their times.
func BenchmarkLegacy(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 50} {
		p := sleepingPlan(b, n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			var seq, par time.Duration
			for b.Loop() {
				start := time.Now()
				if _, err := dag.Run(ctx, p, nil, dag.Options{Sequential: true}); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if _, err := dag.Run(ctx, p, nil, dag.Options{}); err != nil {
					b.Fatal(err)
				}
				seq, par = seq+mid.Sub(start), par+time.Since(mid)
			}
			b.ReportMetric(float64(seq)/float64(par), "sequential/dag")
			b.ReportMetric(float64(seq.Microseconds())/float64(b.N), "sequential-µs/op")
			b.ReportMetric(float64(par.Microseconds())/float64(b.N), "dag-µs/op")
		})
	}
}
