package dag

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestCriticalPathAndSlack checks the analysis on fixed durations:
//
//	a(10) ─┬─ b(30) ─┬─ d(5)
//	       └─ c(10) ─┘
//	e(20)
func TestCriticalPathAndSlack(t *testing.T) {
	reg := NewRegistry()
	nop := func(context.Context, Inputs, Outputs) error { return nil }
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		if err := reg.Register(Step{Name: s, Run: nop}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := ParseConfig([]byte(`
name: f
version: "1"
nodes: [{step: a}, {step: b, depends_on: [a]}, {step: c, depends_on: [a]}, {step: d, depends_on: [b, c]}, {step: e}]
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	tr := Trace{Nodes: []NodeTrace{
		{Node: "a", Duration: 10 * ms}, {Node: "b", Duration: 30 * ms}, {Node: "c", Duration: 10 * ms},
		{Node: "d", Duration: 5 * ms}, {Node: "e", Duration: 20 * ms},
	}}
	analyze(p, &tr)
	if !slices.Equal(tr.CriticalPath, []string{"a", "b", "d"}) || tr.CriticalPathDuration != 45*ms {
		t.Fatalf("critical path %v %v", tr.CriticalPath, tr.CriticalPathDuration)
	}
	wantSlack := map[string]time.Duration{"a": 0, "b": 0, "c": 20 * ms, "d": 0, "e": 25 * ms}
	for _, n := range tr.Nodes {
		if n.Slack != wantSlack[n.Node] || n.Critical != (wantSlack[n.Node] == 0) {
			t.Errorf("%s: slack %v critical %v", n.Node, n.Slack, n.Critical)
		}
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	n := &node{backoff: 10 * time.Millisecond, maxBackoff: 50 * time.Millisecond}
	var got []time.Duration
	for a := 2; a <= 6; a++ {
		got = append(got, n.backoffBefore(a))
	}
	ms := time.Millisecond
	if want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 50 * ms, 50 * ms}; !slices.Equal(got, want) {
		t.Fatalf("backoffs %v, want %v", got, want)
	}
}
