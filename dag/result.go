package dag

import (
	"fmt"
	"reflect"
	"time"
)

// Result is what one run produced: the trace, the degraded nodes, and every
// value written, readable per key or per node.
type Result struct {
	Trace    Trace         `json:"trace"`
	Degraded []Degradation `json:"degraded,omitempty"`

	plan  *Plan
	slots []cell
}

// Degradation names a degradable node that failed and why; its fallback
// values (if any) were used instead of its outputs.
type Degradation struct {
	Node   string `json:"node"`
	Step   string `json:"step"`
	Reason string `json:"reason"`
}

// Plan is the plan the run executed (the version it started with, even if a
// newer one was published meanwhile).
func (r *Result) Plan() *Plan { return r.plan }

// IsDegraded reports whether any node degraded.
func (r *Result) IsDegraded() bool { return len(r.Degraded) > 0 }

// Output returns the value of k after the run and whether it is present.
// It is also how a caller reads the flow's inputs back.
func Output[T any](r *Result, k Key[T]) (T, bool) {
	var zero T
	slot, ok := r.plan.keyIndex[k.name]
	if !ok || !r.slots[slot].set {
		return zero, false
	}
	v, ok := r.slots[slot].v.(T)
	return v, ok
}

// NodeOutputs returns the values node id wrote (or its fallback values),
// keyed by key name; nil when the node wrote nothing or does not exist.
func (r *Result) NodeOutputs(id string) map[string]any {
	for i := range r.plan.nodes {
		n := &r.plan.nodes[i]
		if n.id != id {
			continue
		}
		var m map[string]any
		for _, w := range n.writes {
			if s := r.slots[w.slot]; s.set {
				if m == nil {
					m = make(map[string]any, len(n.writes))
				}
				m[w.name] = s.v
			}
		}
		return m
	}
	return nil
}

// Values returns every present value, flow inputs included, by key name.
func (r *Result) Values() map[string]any {
	m := make(map[string]any, len(r.slots))
	for i, k := range r.plan.keys {
		if s := r.slots[i]; s.set {
			m[k.name] = s.v
		}
	}
	return m
}

// Diff is the first difference FirstDiff found.
type Diff struct {
	Node string `json:"node"` // the node of a that wrote Key (or b's, if a lacks it)
	Key  string `json:"key"`
	A    any    `json:"a"`
	B    any    `json:"b"`
	InA  bool   `json:"in_a"`
	InB  bool   `json:"in_b"`
}

// FirstDiff compares two runs (for instance the stable and the candidate
// flow in a shadow run) key by key, walking a's nodes in topological order
// and then b's, and returns the first key whose value differs or is present
// in only one of them. Values are compared with reflect.DeepEqual. Flow
// inputs are not compared.
func FirstDiff(a, b *Result) (Diff, bool) {
	if d, ok := firstDiff(a, b, false); ok {
		return d, true
	}
	return firstDiff(b, a, true)
}

func firstDiff(a, b *Result, swapped bool) (Diff, bool) {
	for _, i := range a.plan.order {
		n := &a.plan.nodes[i]
		for _, w := range n.writes {
			av, inA := a.slots[w.slot].v, a.slots[w.slot].set
			var bv any
			inB := false
			if slot, ok := b.plan.keyIndex[w.name]; ok {
				bv, inB = b.slots[slot].v, b.slots[slot].set
			}
			if inA == inB && (!inA || reflect.DeepEqual(av, bv)) {
				continue
			}
			if swapped {
				return Diff{Node: n.id, Key: w.name, A: bv, B: av, InA: inB, InB: inA}, true
			}
			return Diff{Node: n.id, Key: w.name, A: av, B: bv, InA: inA, InB: inB}, true
		}
	}
	return Diff{}, false
}

// result assembles the Result once every node is done.
func (r *run) result(err error) (*Result, error) {
	p := r.p
	res := &r.res
	res.plan, res.slots = p, r.slots
	t := &res.Trace
	t.Flow, t.Version, t.DryRun, t.StartedAt = p.name, p.version, r.opts.DryRun, r.t0
	t.Mode = "parallel"
	if r.opts.Sequential {
		t.Mode = "sequential"
	}
	t.Duration = time.Since(r.t0)
	t.Nodes = r.trace
	for i := range t.Nodes {
		nt, n := &t.Nodes[i], &p.nodes[i]
		nt.Node, nt.Step, nt.DependsOn = n.id, n.step.Name, n.depIDs
		switch nt.Outcome {
		case OutcomeDegraded:
			res.Degraded = append(res.Degraded, Degradation{Node: n.id, Step: n.step.Name, Reason: nt.Error})
		case "":
			// A step that ended its goroutine (runtime.Goexit) never
			// reported; do not let that pass for success.
			nt.Outcome = OutcomeNotRun
			if err == nil {
				err = fmt.Errorf("dag: flow %q node %q: its step exited the goroutine: %w", p.name, n.id, ErrStepFailed)
			}
		}
	}
	analyze(p, t)
	switch {
	case err != nil:
		t.Outcome, t.Error = "failed", err.Error()
	case len(res.Degraded) > 0:
		t.Outcome = "degraded"
	default:
		t.Outcome = "ok"
	}
	return res, err
}
