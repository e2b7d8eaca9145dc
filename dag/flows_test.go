package dag_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/expresshub/station/dag"
)

var keyMark = dag.NewKey[string]("mark")

// markRegistry has one step that writes its node's `mark` param, so a run's
// output tells which plan version it ran.
func markRegistry(t testing.TB) *dag.Registry {
	return newRegistry(t,
		dag.Step{Name: "mark", Writes: []dag.AnyKey{keyMark}, Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
			dag.Set(out, keyMark, in.Params()["mark"].(string))
			return nil
		}},
		dag.Step{Name: "pause", Reads: []dag.AnyKey{keyMark}, Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
			time.Sleep(100 * time.Microsecond) // keep runs in flight across swaps
			return nil
		}},
	)
}

func markPlan(t testing.TB, reg *dag.Registry, version int) *dag.Plan {
	return mustCompile(t, reg, fmt.Sprintf(`
name: sort-sg
version: "%d"
nodes:
  - {step: mark, params: {mark: v%d}}
  - {step: pause, depends_on: [mark]}
`, version, version))
}

func TestFlowsPublishGetActivate(t *testing.T) {
	reg := markRegistry(t)
	f := dag.NewFlows()
	if _, err := f.Get("sort-sg"); !errors.Is(err, dag.ErrUnknownFlow) {
		t.Fatalf("empty table: %v", err)
	}
	v1, v2 := markPlan(t, reg, 1), markPlan(t, reg, 2)
	for _, p := range []*dag.Plan{v1, v2} {
		if err := f.Publish(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Publish(markPlan(t, reg, 2)); !errors.Is(err, dag.ErrVersionExists) {
		t.Fatalf("republish: %v", err)
	}
	if p, _ := f.Get("sort-sg"); p != v2 {
		t.Fatalf("current %s", p.Version())
	}
	if p, _ := f.GetVersion("sort-sg", "1"); p != v1 {
		t.Fatal("version 1 lost")
	}
	if _, err := f.GetVersion("sort-sg", "9"); !errors.Is(err, dag.ErrUnknownFlow) {
		t.Fatalf("unknown version: %v", err)
	}
	if err := f.Activate("sort-sg", "1"); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.Get("sort-sg"); p != v1 {
		t.Fatal("rollback did not take")
	}
	if err := f.Activate("sort-sg", "9"); !errors.Is(err, dag.ErrUnknownFlow) {
		t.Fatalf("activate unknown: %v", err)
	}
	list := f.List()
	if len(list) != 1 || list[0].Current != "1" || len(list[0].Versions) != 2 || list[0].Versions[1] != "2" {
		t.Fatalf("list %+v", list)
	}
}

// TestHotSwapUnderConcurrentRuns publishes versions while runs are going:
// every run must finish on the plan it fetched, never a mix (-race checks the
// swap itself).
func TestHotSwapUnderConcurrentRuns(t *testing.T) {
	reg := markRegistry(t)
	f := dag.NewFlows()
	if err := f.Publish(markPlan(t, reg, 0)); err != nil {
		t.Fatal(err)
	}
	const versions = 30
	plans := make([]*dag.Plan, versions)
	for v := 1; v < versions; v++ {
		plans[v] = markPlan(t, reg, v)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := map[string]bool{}
			for {
				select {
				case <-done:
					return
				default:
				}
				p, err := f.Get("sort-sg")
				if err != nil {
					errs <- err
					return
				}
				res, err := dag.Run(context.Background(), p, nil, dag.Options{})
				if err != nil {
					errs <- err
					return
				}
				mark, _ := dag.Output(res, keyMark)
				if want := "v" + p.Version(); mark != want || res.Plan() != p || res.Trace.Version != p.Version() {
					errs <- fmt.Errorf("run of version %s produced %s", p.Version(), mark)
					return
				}
				seen[mark] = true
			}
		}()
	}
	for v := 1; v < versions; v++ {
		if err := f.Publish(plans[v]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p, _ := f.Get("sort-sg"); p.Version() != fmt.Sprint(versions-1) {
		t.Fatalf("current is %s", p.Version())
	}
}
