package sorting

import (
	"reflect"
	"slices"

	"github.com/expresshub/station/dag"
)

// Which flow alone has a blamed step.
const (
	OnlyInStable    = "stable"
	OnlyInCandidate = "candidate"
)

// Blame is the step a mismatch is put down to.
type Blame struct {
	Node string // the step (node id) blamed
	Key  string // its output that differs; "" when it wrote none (it failed)
	// OnlyIn is "" when both flows have the step, else the flow that alone
	// has it (OnlyInStable, OnlyInCandidate).
	OnlyIn string
}

// blameOf finds where the stable run a and the candidate run b part ways.
//
// dag.FirstDiff walks a's nodes and stops at the first key present in only
// one run, so a candidate lacking a step (the lean flow has no site checks)
// was always blamed on the first step it lacks, even where both flows agreed
// on it. The cause is found instead among:
//   - steps both flows have whose outcome or output differs, and
//   - steps only one flow has that failed or timed out: those decide an
//     answer (an exception, an unavailable) the other flow never checks.
//
// A step that was canceled or never ran is an effect of the run ending
// elsewhere, not a cause, and a step an effectful dry run skipped has
// nothing to compare. Of the causes, the first in dependency order is
// blamed: one none of whose ancestors (in either flow) is a cause. Between
// causes that do not depend on each other, a failed step comes first (it
// decided its run's answer), then the stable flow's order.
func blameOf(a, b *dag.Result) (Blame, bool) {
	if a == nil || b == nil {
		return Blame{}, false
	}
	as, bs := traceNodes(a), traceNodes(b)
	order := append(a.Plan().Nodes(), onlyNew(b.Plan().Nodes(), as)...)
	deps := map[string][]string{}
	for _, side := range []map[string]dag.NodeTrace{as, bs} {
		for id, n := range side {
			deps[id] = append(deps[id], n.DependsOn...)
		}
	}
	type cause struct {
		Blame
		fatal bool
	}
	causes := map[string]cause{}
	var effects []string // common steps that differ only as an effect
	for _, id := range order {
		an, inA := as[id]
		bn, inB := bs[id]
		switch {
		case inA && inB:
			if !ran(an.Outcome) || !ran(bn.Outcome) {
				if an.Outcome != bn.Outcome {
					effects = append(effects, id)
				}
				continue
			}
			key, differs := nodeDiff(a, b, id, an, bn)
			if differs {
				causes[id] = cause{Blame: Blame{Node: id, Key: key}, fatal: fatal(an.Outcome) || fatal(bn.Outcome)}
			}
		case inA && fatal(an.Outcome):
			causes[id] = cause{Blame: Blame{Node: id, OnlyIn: OnlyInStable}, fatal: true}
		case inB && fatal(bn.Outcome):
			causes[id] = cause{Blame: Blame{Node: id, OnlyIn: OnlyInCandidate}, fatal: true}
		}
	}
	var roots []cause
	for _, id := range order {
		c, ok := causes[id]
		if ok && !hasAncestorIn(id, deps, causes) {
			roots = append(roots, c)
		}
	}
	for _, c := range roots {
		if c.fatal {
			return c.Blame, true
		}
	}
	if len(roots) > 0 {
		return roots[0].Blame, true
	}
	// Causes that all depend on each other (flows that order the same
	// steps both ways): the first of them.
	for _, id := range order {
		if c, ok := causes[id]; ok {
			return c.Blame, true
		}
	}
	// Only effects: a run cut short by its deadline, say. The first common
	// step that ran in one and not the other is the best lead.
	if len(effects) > 0 {
		return Blame{Node: effects[0]}, true
	}
	return Blame{}, false
}

func traceNodes(r *dag.Result) map[string]dag.NodeTrace {
	m := make(map[string]dag.NodeTrace, len(r.Trace.Nodes))
	for _, n := range r.Trace.Nodes {
		m[n.Node] = n
	}
	return m
}

func onlyNew(ids []string, seen map[string]dag.NodeTrace) []string {
	var out []string
	for _, id := range ids {
		if _, ok := seen[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// ran: the step ran (or was skipped by its condition) in this run,
// so what it did says something about the flow.
func ran(o dag.Outcome) bool {
	switch o {
	case dag.OutcomeCanceled, dag.OutcomeNotRun, dag.OutcomeDryRunSkipped:
		return false
	}
	return true
}

// fatal: the step ended its run with its own failure.
func fatal(o dag.Outcome) bool { return o == dag.OutcomeFailed || o == dag.OutcomeTimedOut }

// nodeDiff compares a step both runs ran: its outcome, its error when both
// failed (an exception's reason), then each output by name.
func nodeDiff(a, b *dag.Result, id string, an, bn dag.NodeTrace) (string, bool) {
	if an.Outcome != bn.Outcome || (fatal(an.Outcome) && an.Error != bn.Error) {
		return "", true
	}
	ao, bo := a.NodeOutputs(id), b.NodeOutputs(id)
	for _, k := range sortedKeys(ao, bo) {
		av, inA := ao[k]
		bv, inB := bo[k]
		if inA != inB || !reflect.DeepEqual(av, bv) {
			return k, true
		}
	}
	return "", false
}

func sortedKeys(ms ...map[string]any) []string {
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// hasAncestorIn reports whether any step id depends on, directly or not, in
// either flow, is in causes.
func hasAncestorIn[T any](id string, deps map[string][]string, causes map[string]T) bool {
	seen := map[string]bool{id: true}
	stack := append([]string(nil), deps[id]...)
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[d] {
			continue
		}
		seen[d] = true
		if _, ok := causes[d]; ok {
			return true
		}
		stack = append(stack, deps[d]...)
	}
	return false
}
