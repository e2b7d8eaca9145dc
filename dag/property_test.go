package dag_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/expresshub/station/dag"
)

var keySeed = dag.NewKey[int64]("seed")

// randomGraph is a DAG drawn by rapid: node i depends on some nodes < i;
// the config lists the nodes in a random order so Compile must sort them.
type randomGraph struct {
	n     int
	deps  [][]int
	order []int // config order
}

func drawGraph(t *rapid.T, maxNodes int) randomGraph {
	n := rapid.IntRange(1, maxNodes).Draw(t, "n")
	g := randomGraph{n: n, deps: make([][]int, n)}
	for i := 1; i < n; i++ {
		g.deps[i] = rapid.SliceOfNDistinct(rapid.IntRange(0, i-1), 0, min(i, 4), rapid.ID[int]).Draw(t, fmt.Sprintf("deps%d", i))
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	g.order = rapid.Permutation(idx).Draw(t, "order")
	return g
}

func (g randomGraph) descendants(of int) map[int]bool {
	d := map[int]bool{}
	for changed := true; changed; {
		changed = false
		for i := range g.n {
			for _, p := range g.deps[i] {
				if (p == of || d[p]) && !d[i] {
					d[i], changed = true, true
				}
			}
		}
	}
	return d
}

func nodeKey(i int) dag.Key[int64] { return dag.NewKey[int64](fmt.Sprintf("k%d", i)) }

// recorder tracks, per node, how often it ran and the global sequence
// numbers of its start and end, plus how many steps are running now.
type recorder struct {
	seq     atomic.Int64
	running atomic.Int64
	runs    []atomic.Int32
	start   []atomic.Int64
	end     []atomic.Int64
}

func newRecorder(n int) *recorder {
	return &recorder{runs: make([]atomic.Int32, n), start: make([]atomic.Int64, n), end: make([]atomic.Int64, n)}
}

// build registers one step per node: it reads its dependencies' keys (and
// the seed), writes a value mixing them, and calls body in between.
func (g randomGraph) build(t *rapid.T, rec *recorder, body func(i int, ctx context.Context) error, configure func(i int, nc *dag.NodeConfig)) *dag.Plan {
	reg := dag.NewRegistry()
	if err := reg.DeclareInputs(keySeed); err != nil {
		t.Fatal(err)
	}
	cfg := dag.Config{Name: "random", Version: "1", Inputs: []string{"seed"}}
	for _, i := range g.order {
		reads := []dag.AnyKey{keySeed}
		for _, d := range g.deps[i] {
			reads = append(reads, nodeKey(d))
		}
		deps := g.deps[i]
		err := reg.Register(dag.Step{
			Name: fmt.Sprintf("s%d", i), Reads: reads, Writes: []dag.AnyKey{nodeKey(i)},
			Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
				rec.running.Add(1)
				defer rec.running.Add(-1)
				rec.runs[i].Add(1)
				rec.start[i].Store(rec.seq.Add(1))
				defer func() { rec.end[i].Store(rec.seq.Add(1)) }()
				v := dag.Get(in, keySeed)*31 + int64(i)
				for _, d := range deps {
					v = v*1_000_003 ^ dag.Get(in, nodeKey(d))
				}
				if body != nil {
					if err := body(i, ctx); err != nil {
						return err
					}
				}
				dag.Set(out, nodeKey(i), v)
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		nc := dag.NodeConfig{ID: fmt.Sprintf("n%d", i), Step: fmt.Sprintf("s%d", i)}
		for _, d := range deps {
			nc.DependsOn = append(nc.DependsOn, fmt.Sprintf("n%d", d))
		}
		if configure != nil {
			configure(i, &nc)
		}
		cfg.Nodes = append(cfg.Nodes, nc)
	}
	p, err := dag.Compile(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPropertyEveryNodeRunsOnceAfterItsDepsAndMatchesSequential(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := drawGraph(t, 30)
		seed := rapid.Int64().Draw(t, "seed")
		maxParallel := rapid.IntRange(0, 4).Draw(t, "maxParallel")
		rec := newRecorder(g.n)
		p := g.build(t, rec, nil, nil)
		in := []dag.Value{keySeed.Bind(seed)}

		res, err := dag.Run(context.Background(), p, in, dag.Options{MaxParallel: maxParallel})
		if err != nil {
			t.Fatal(err)
		}
		for i := range g.n {
			if got := rec.runs[i].Load(); got != 1 {
				t.Fatalf("node %d ran %d times", i, got)
			}
			for _, d := range g.deps[i] {
				if rec.end[d].Load() > rec.start[i].Load() {
					t.Fatalf("node %d started before its dependency %d ended", i, d)
				}
			}
		}
		seq, err := dag.Run(context.Background(), p, in, dag.Options{Sequential: true})
		if err != nil {
			t.Fatal(err)
		}
		if d, differ := dag.FirstDiff(res, seq); differ {
			t.Fatalf("parallel and sequential runs differ: %+v", d)
		}
		if got := len(res.Values()); got != g.n+1 {
			t.Fatalf("%d values, want %d", got, g.n+1)
		}
	})
}

var errInjected = errors.New("injected failure")

func TestPropertyFatalFailureStopsEverything(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := drawGraph(t, 20)
		failing := rapid.IntRange(0, g.n-1).Draw(t, "failing")
		// Nodes that are neither ancestors nor descendants of the failing
		// one may block until cancelled: only the failure can end them.
		desc := g.descendants(failing)
		blocking := map[int]bool{}
		for i := range g.n {
			if i != failing && !desc[i] && !g.descendants(i)[failing] {
				blocking[i] = rapid.Bool().Draw(t, fmt.Sprintf("block%d", i))
			}
		}
		var cancelled atomic.Int32
		rec := newRecorder(g.n)
		p := g.build(t, rec, func(i int, ctx context.Context) error {
			switch {
			case i == failing:
				return errInjected
			case blocking[i]:
				<-ctx.Done()
				cancelled.Add(1)
				return ctx.Err()
			}
			return nil
		}, nil)
		res, err := dag.Run(context.Background(), p, []dag.Value{keySeed.Bind(1)}, dag.Options{})
		var ne *dag.NodeError
		if !errors.Is(err, errInjected) || !errors.As(err, &ne) || ne.Node != fmt.Sprintf("n%d", failing) {
			t.Fatalf("got %v, want the failure of n%d", err, failing)
		}
		if r := rec.running.Load(); r != 0 {
			t.Fatalf("%d steps still running after Run returned", r)
		}
		for i := range desc {
			if rec.runs[i].Load() != 0 {
				t.Fatalf("descendant n%d of the failed node ran", i)
			}
		}
		started := int32(0)
		for i := range blocking {
			if blocking[i] && rec.runs[i].Load() > 0 {
				started++
			}
		}
		if cancelled.Load() != started {
			t.Fatalf("%d blocking steps started, %d saw cancellation", started, cancelled.Load())
		}
		if res.Trace.Outcome != "failed" {
			t.Fatalf("trace outcome %s", res.Trace.Outcome)
		}
	})
}

func TestPropertyTimeoutCancelsTheStepContext(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := drawGraph(t, 12)
		slow := rapid.IntRange(0, g.n-1).Draw(t, "slow")
		degradable := rapid.Bool().Draw(t, "degradable")
		timeout := time.Duration(rapid.IntRange(1, 5).Draw(t, "timeoutMs")) * time.Millisecond
		var sawErr atomic.Value
		rec := newRecorder(g.n)
		p := g.build(t, rec, func(i int, ctx context.Context) error {
			if i != slow {
				return nil
			}
			<-ctx.Done()
			sawErr.Store(ctx.Err())
			return ctx.Err()
		}, func(i int, nc *dag.NodeConfig) {
			if i == slow {
				nc.Timeout = dag.Duration(timeout)
				if degradable {
					nc.Criticality = "degradable"
					nc.Fallback = map[string]any{fmt.Sprintf("k%d", i): -1}
				}
			}
		})
		res, err := dag.Run(context.Background(), p, []dag.Value{keySeed.Bind(1)}, dag.Options{})
		if got := sawErr.Load(); got != context.DeadlineExceeded {
			t.Fatalf("the step's context ended with %v", got)
		}
		slowID := fmt.Sprintf("n%d", slow)
		if degradable {
			if err != nil || len(res.Degraded) != 1 || res.Degraded[0].Node != slowID || !strings.HasPrefix(res.Degraded[0].Reason, "timed out") {
				t.Fatalf("degradable: %v, %+v", err, res.Degraded)
			}
			if v, _ := dag.Output(res, nodeKey(slow)); v != -1 {
				t.Fatalf("fallback %d", v)
			}
			return
		}
		var ne *dag.NodeError
		if !errors.Is(err, dag.ErrTimeout) || !errors.As(err, &ne) || ne.Node != slowID {
			t.Fatalf("got %v", err)
		}
	})
}

// TestConcurrentRunsShareOnePlan runs one plan from many goroutines; -race
// checks that a Plan is read-only during runs.
func TestConcurrentRunsShareOnePlan(t *testing.T) {
	p := mustCompile(t, newRegistry(t, sortingSteps()...), sortingFlow)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				tn := fmt.Sprintf("SG%010d", g*100+i)
				res, err := dag.Run(context.Background(), p, []dag.Value{keyTrackingNo.Bind(tn)}, dag.Options{})
				if err != nil {
					t.Error(err)
					return
				}
				if got, _ := dag.Output(res, keyWaybill); got.TrackingNo != tn {
					t.Errorf("run for %s saw %s", tn, got.TrackingNo)
					return
				}
			}
		}()
	}
	wg.Wait()
}
