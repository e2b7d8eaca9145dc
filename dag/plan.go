package dag

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Problem is one reason a config is invalid, with the node it belongs to
// (empty for flow-level problems).
type Problem struct {
	Node    string `json:"node,omitempty"`
	Problem string `json:"problem"`
}

// ValidationError lists every problem Compile found. It matches
// ErrInvalidFlow and marshals to JSON for an API to show back.
type ValidationError struct {
	Flow     string    `json:"flow"`
	Version  string    `json:"version"`
	Problems []Problem `json:"problems"`
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dag: flow %q version %q is invalid (%d problems)", e.Flow, e.Version, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		if p.Node != "" {
			fmt.Fprintf(&b, "node %q: ", p.Node)
		}
		b.WriteString(p.Problem)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalidFlow) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalidFlow }

// Plan is a compiled, validated flow: immutable, safe to Run from any
// number of goroutines at once.
type Plan struct {
	name     string
	version  string
	deadline time.Duration
	cfg      Config
	nodes    []node
	order    []int32 // a topological order, ties broken by config order
	roots    []int32
	pending  []int32 // number of dependencies per node
	keys     []keyInfo
	keyIndex map[string]int32
	inputs   []int32                     // slots of the flow inputs
	metrics  atomic.Pointer[planMetrics] // cache of curried collectors
}

type keyInfo struct {
	name     string
	typ      reflect.Type
	producer int32 // node index, or -1 for a flow input
}

type slotRef struct {
	name string
	slot int32
	typ  reflect.Type
}

type node struct {
	id          string
	step        Step
	deps        []int32
	depIDs      []string
	children    []int32
	reads       []slotRef
	writes      []slotRef
	timeout     time.Duration
	attempts    int
	backoff     time.Duration
	maxBackoff  time.Duration
	criticality Criticality
	fallback    [][]byte // aligned with writes: JSON of the fallback, nil if none
	cond        *vm.Program
	condKeys    []slotRef
	condZero    []any
	params      map[string]any
}

func (n *node) readSlot(name string) int32 {
	for i := range n.reads {
		if n.reads[i].name == name {
			return n.reads[i].slot
		}
	}
	return -1
}

func (n *node) writeRef(name string) *slotRef {
	for i := range n.writes {
		if n.writes[i].name == name {
			return &n.writes[i]
		}
	}
	return nil
}

// Name is the flow's name.
func (p *Plan) Name() string { return p.name }

// Version is the flow's version.
func (p *Plan) Version() string { return p.version }

// Deadline is the flow's deadline (0: none).
func (p *Plan) Deadline() time.Duration { return p.deadline }

// Config is the config the plan was compiled from, to show back to users.
// Its maps are shared with the plan: read only.
func (p *Plan) Config() Config {
	c := p.cfg
	c.Inputs = slices.Clone(c.Inputs)
	c.Nodes = slices.Clone(c.Nodes)
	return c
}

// Nodes lists node ids in the order Sequential runs them (topological, ties
// broken by config order).
func (p *Plan) Nodes() []string {
	ids := make([]string, len(p.order))
	for i, n := range p.order {
		ids[i] = p.nodes[n].id
	}
	return ids
}
