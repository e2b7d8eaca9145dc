package whatif

import (
	"context"
	"testing"
	"time"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/sorting"
)

// testFlow compiles a diamond: a, then b (40ms timeout) and c (10ms)
// side by side, then d.
func testFlow(t *testing.T, sequential bool) *sorting.Flow {
	t.Helper()
	reg := dag.NewRegistry()
	noop := func(context.Context, dag.Inputs, dag.Outputs) error { return nil }
	for _, n := range []string{"a", "b", "c", "d"} {
		if err := reg.Register(dag.Step{Name: n, Run: noop}); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := dag.Compile(dag.Config{Name: "t", Version: "1", Deadline: dag.Duration(time.Second), Nodes: []dag.NodeConfig{
		{Step: "a", Timeout: dag.Duration(20 * time.Millisecond)},
		{Step: "b", DependsOn: []string{"a"}, Timeout: dag.Duration(40 * time.Millisecond)},
		{Step: "c", DependsOn: []string{"a"}, Timeout: dag.Duration(10 * time.Millisecond)},
		{Step: "d", DependsOn: []string{"b", "c"}},
	}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	return &sorting.Flow{Name: "t", Version: 1, Plan: plan, Sequential: sequential}
}

func TestWithoutTracesTheCriticalPathIsTheTimeoutsAlongTheLongestChain(t *testing.T) {
	late := predict(testFlow(t, false), nil, 50*time.Millisecond)
	// d has no timeout: the flow's deadline stands for it.
	if late.CriticalPathMs != 20+40+1000 || len(late.CriticalPath) != 3 || late.CriticalPath[1] != "b" || late.PredictedLate != 1 {
		t.Fatalf("%+v", late)
	}
}

func TestRecordedTimingsGiveTheShareOfLateDecisions(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	traces := []map[string]time.Duration{
		{"a": ms(5), "b": ms(10), "c": ms(30), "d": ms(1)}, // 36ms: c is the long branch
		{"a": ms(5), "b": ms(10), "c": ms(2), "d": ms(1)},  // 16ms
		{"a": ms(5), "b": ms(60), "c": ms(2), "d": ms(1)},  // 66ms: late
		{"a": ms(5), "b": ms(10), "c": ms(2), "d": ms(1)},  // 16ms
	}
	late := predict(testFlow(t, false), traces, 50*time.Millisecond)
	if late.PredictedLate != 0.25 || late.Samples != 4 {
		t.Fatalf("late share %v of %d", late.PredictedLate, late.Samples)
	}
	// p99s: a 5, b 60, c 30, d 1: the critical path is a, b, d.
	if late.CriticalPathMs != 66 || !late.CriticalPastLine || late.Steps[0].Source != "recorded" {
		t.Fatalf("%+v", late)
	}
	// The sequential legacy flow adds every node: 46, 18, 78, 18 ms.
	if seq := predict(testFlow(t, true), traces, 50*time.Millisecond); seq.CriticalPathMs != 96 || seq.PredictedLate != 0.25 {
		t.Fatalf("sequential: %+v", seq)
	}
}
