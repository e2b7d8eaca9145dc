package dag

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// Limits that keep Compile linear enough for any config a person writes and
// bounded for configs nobody should.
const (
	maxNodes        = 1000
	maxAttempts     = 10
	maxConditionLen = 2000
	maxIDLen        = 128
)

var idRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-]*$`)

// Compile validates cfg against the steps in reg and returns a Plan. On any
// problem it returns a *ValidationError listing all of them, and no Plan.
func Compile(cfg Config, reg *Registry) (*Plan, error) {
	c := compiler{cfg: cfg, reg: reg}
	return c.compile()
}

type compiler struct {
	cfg      Config
	reg      *Registry
	problems []Problem

	nodes    []node
	valid    []bool // node passed the per-node checks and has a known step
	index    map[string]int32
	produced map[string]keyInfo
	inputs   map[string]reflect.Type
}

func (c *compiler) add(nodeID, format string, args ...any) {
	c.problems = append(c.problems, Problem{Node: nodeID, Problem: fmt.Sprintf(format, args...)})
}

func (c *compiler) compile() (*Plan, error) {
	cfg := c.cfg
	if c.reg == nil {
		c.reg = NewRegistry()
	}
	if cfg.Name == "" {
		c.add("", "flow name is empty")
	} else if len(cfg.Name) > maxIDLen || !idRE.MatchString(cfg.Name) {
		c.add("", "flow name %q must be a letter or _ followed by letters, digits, _ . or -, at most %d long", cfg.Name, maxIDLen)
	}
	if cfg.Version == "" {
		c.add("", "flow version is empty; every published config needs one")
	}
	deadline := cfg.Deadline.Std()
	if deadline < 0 {
		c.add("", "deadline %v is negative", deadline)
	}
	switch {
	case len(cfg.Nodes) == 0:
		c.add("", "flow has no nodes")
	case len(cfg.Nodes) > maxNodes:
		c.add("", "flow has %d nodes, over the limit of %d", len(cfg.Nodes), maxNodes)
		return nil, c.failed()
	}

	c.checkInputs()
	c.checkNodes(deadline)
	c.checkProducers()
	order := c.checkCycles()
	anc := c.ancestors()
	c.checkReads(anc)
	c.checkFallbacks()
	c.checkConditions(anc)
	if len(c.problems) > 0 {
		return nil, c.failed()
	}
	return c.build(order, deadline), nil
}

func (c *compiler) failed() error {
	return &ValidationError{Flow: c.cfg.Name, Version: c.cfg.Version, Problems: c.problems}
}

func (c *compiler) checkInputs() {
	c.inputs = map[string]reflect.Type{}
	c.produced = map[string]keyInfo{}
	for _, name := range c.cfg.Inputs {
		t, ok := c.reg.inputType(name)
		switch {
		case !ok:
			c.add("", "input %q is not declared by the program (Registry.DeclareInputs)", name)
			continue
		case c.inputs[name] != nil:
			c.add("", "input %q is listed twice", name)
			continue
		}
		c.inputs[name] = t
		c.produced[name] = keyInfo{name: name, typ: t, producer: -1}
	}
}

func (c *compiler) checkNodes(deadline time.Duration) {
	c.nodes = make([]node, len(c.cfg.Nodes))
	c.valid = make([]bool, len(c.cfg.Nodes))
	c.index = make(map[string]int32, len(c.cfg.Nodes))
	for i, nc := range c.cfg.Nodes {
		n := &c.nodes[i]
		n.id = nc.ID
		if n.id == "" {
			n.id = nc.Step
		}
		stepName := nc.Step
		if stepName == "" {
			stepName = nc.ID
		}
		ok := true
		label := n.id
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		switch {
		case n.id == "":
			c.add(label, "node has neither id nor step")
			ok = false
		case len(n.id) > maxIDLen || !idRE.MatchString(n.id):
			c.add(label, "node id must be a letter or _ followed by letters, digits, _ . or -, at most %d long", maxIDLen)
			ok = false
		default:
			if j, dup := c.index[n.id]; dup {
				c.add(label, "node id is also used by node #%d; ids must be unique (set id to run a step twice)", j+1)
				ok = false
			} else {
				c.index[n.id] = int32(i)
			}
		}
		if stepName != "" {
			s, found := c.reg.Step(stepName)
			if !found {
				c.add(label, "unknown step %q", stepName)
				ok = false
			}
			n.step = s
			n.criticality = s.Criticality
		}
		if nc.Criticality != "" {
			cr, err := ParseCriticality(nc.Criticality)
			if err != nil {
				c.add(label, "%v", err)
			} else {
				n.criticality = cr
			}
		}
		n.timeout = nc.Timeout.Std()
		switch {
		case n.timeout < 0:
			c.add(label, "timeout %v is negative", n.timeout)
		case deadline > 0 && n.timeout > deadline:
			c.add(label, "timeout %v is longer than the flow deadline %v", n.timeout, deadline)
		}
		n.attempts = nc.Retry.Attempts
		switch {
		case n.attempts < 0 || n.attempts > maxAttempts:
			c.add(label, "retry attempts %d out of range 0..%d", n.attempts, maxAttempts)
		case n.attempts == 0:
			n.attempts = 1
		}
		n.backoff, n.maxBackoff = nc.Retry.Backoff.Std(), nc.Retry.MaxBackoff.Std()
		if n.backoff < 0 {
			c.add(label, "retry backoff %v is negative", n.backoff)
		}
		if n.maxBackoff < 0 {
			c.add(label, "retry max_backoff %v is negative", n.maxBackoff)
		}
		if n.attempts <= 1 && (n.backoff != 0 || n.maxBackoff != 0) {
			c.add(label, "retry backoff is set but attempts is %d, so it never applies", nc.Retry.Attempts)
		}
		n.params = nc.Params
		// A flow is shown back to ops as YAML or JSON: a param JSON cannot
		// hold (NaN, a map keyed by numbers) would make it unshowable.
		if len(nc.Params) > 0 {
			if _, err := json.Marshal(nc.Params); err != nil {
				c.add(label, "params cannot be written as JSON: %v", err)
			}
		}
		c.valid[i] = ok
	}
	for i, nc := range c.cfg.Nodes {
		n := &c.nodes[i]
		seen := map[string]bool{}
		for _, dep := range nc.DependsOn {
			j, found := c.index[dep]
			switch {
			case seen[dep]:
				c.add(n.id, "depends on %q twice", dep)
			case dep == n.id:
				c.add(n.id, "depends on itself")
			case !found:
				c.add(n.id, "depends on unknown node %q", dep)
			default:
				n.deps = append(n.deps, j)
				n.depIDs = append(n.depIDs, dep)
				c.nodes[j].children = append(c.nodes[j].children, int32(i))
			}
			seen[dep] = true
		}
	}
}

// checkProducers records each written key's single producer.
func (c *compiler) checkProducers() {
	for i := range c.nodes {
		if !c.valid[i] {
			continue
		}
		n := &c.nodes[i]
		for _, k := range n.step.Writes {
			name := k.Name()
			if prev, dup := c.produced[name]; dup {
				by := "the flow inputs"
				if prev.producer >= 0 {
					by = fmt.Sprintf("node %q", c.nodes[prev.producer].id)
				}
				c.add(n.id, "writes key %q, which is already produced by %s; a key has one producer", name, by)
				continue
			}
			c.produced[name] = keyInfo{name: name, typ: k.Type(), producer: int32(i)}
		}
	}
}

// checkCycles returns a topological order, or reports every cycle.
func (c *compiler) checkCycles() []int32 {
	n := len(c.nodes)
	indeg := make([]int, n)
	for i := range c.nodes {
		indeg[i] = len(c.nodes[i].deps)
	}
	order := make([]int32, 0, n)
	for i := range c.nodes {
		if indeg[i] == 0 {
			order = append(order, int32(i))
		}
	}
	for h := 0; h < len(order); h++ {
		for _, ch := range c.nodes[order[h]].children {
			if indeg[ch]--; indeg[ch] == 0 {
				order = append(order, ch)
			}
		}
	}
	if len(order) == n {
		return order
	}
	// Depth-first search along depends_on among the nodes left over; each
	// back edge closes a cycle, reported once in its canonical rotation.
	const white, grey, black = 0, 1, 2
	color := make([]uint8, n)
	var stack []int32
	reported := map[string]bool{}
	var visit func(int32)
	visit = func(v int32) {
		color[v] = grey
		stack = append(stack, v)
		for _, d := range c.nodes[v].deps {
			switch color[d] {
			case white:
				visit(d)
			case grey:
				at := slices.Index(stack, d)
				cyc := slices.Clone(stack[at:])
				minAt := 0
				for k := range cyc {
					if cyc[k] < cyc[minAt] {
						minAt = k
					}
				}
				cyc = append(cyc[minAt:], cyc[:minAt]...)
				ids := make([]string, 0, len(cyc)+1)
				for _, k := range cyc {
					ids = append(ids, c.nodes[k].id)
				}
				ids = append(ids, ids[0])
				path := strings.Join(ids, " -> ")
				if !reported[path] {
					reported[path] = true
					c.add(ids[0], "dependency cycle: %s (each depends on the next)", path)
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[v] = black
	}
	for i := range c.nodes {
		if indeg[i] > 0 && color[i] == white {
			visit(int32(i))
		}
	}
	return nil
}

// ancestors returns, per node, the set of nodes it transitively depends on
// (cycles tolerated, so reads can still be checked in a cyclic config).
func (c *compiler) ancestors() [][]bool {
	n := len(c.nodes)
	anc := make([][]bool, n)
	queue := make([]int32, 0, n)
	for i := range c.nodes {
		seen := make([]bool, n)
		queue = append(queue[:0], c.nodes[i].deps...)
		for _, d := range queue {
			seen[d] = true
		}
		for h := 0; h < len(queue); h++ {
			for _, d := range c.nodes[queue[h]].deps {
				if !seen[d] {
					seen[d] = true
					queue = append(queue, d)
				}
			}
		}
		anc[i] = seen
	}
	return anc
}

func (c *compiler) checkReads(anc [][]bool) {
	for i := range c.nodes {
		if !c.valid[i] {
			continue
		}
		n := &c.nodes[i]
		for _, k := range n.step.Reads {
			name := k.Name()
			p, ok := c.produced[name]
			switch {
			case !ok:
				c.add(n.id, "reads key %q, which no node writes and the flow inputs do not include", name)
				continue
			case p.producer == int32(i):
				continue // reported by Register already; cannot happen
			case p.producer >= 0 && !anc[i][p.producer]:
				c.add(n.id, "reads key %q, written by node %q, which is not upstream of it (add it to depends_on)", name, c.nodes[p.producer].id)
			}
			if p.typ != k.Type() {
				c.add(n.id, "reads key %q as %v, but it is produced as %v", name, k.Type(), p.typ)
			}
		}
	}
}

func (c *compiler) checkFallbacks() {
	for i, nc := range c.cfg.Nodes {
		n := &c.nodes[i]
		if len(nc.Fallback) == 0 || !c.valid[i] {
			continue
		}
		if n.criticality == Fatal {
			c.add(n.id, "has a fallback but is fatal, so the fallback would never be used (set criticality: degradable)")
			continue
		}
		n.fallback = make([][]byte, len(n.step.Writes))
		for _, key := range sortedKeys(nc.Fallback) {
			at := slices.IndexFunc(n.step.Writes, func(k AnyKey) bool { return k.Name() == key })
			if at < 0 {
				c.add(n.id, "fallback for key %q, which step %q does not write", key, n.step.Name)
				continue
			}
			raw, err := json.Marshal(nc.Fallback[key])
			if err == nil {
				_, err = decodeFallback(raw, n.step.Writes[at].Type())
			}
			if err != nil {
				c.add(n.id, "fallback for key %q does not fit %v: %v", key, n.step.Writes[at].Type(), err)
				continue
			}
			n.fallback[at] = raw
		}
	}
}

// decodeFallback decodes a fresh value per use, so a run that mutates a
// fallback map or slice cannot change what the next run gets.
func decodeFallback(raw []byte, t reflect.Type) (any, error) {
	p := reflect.New(t)
	if err := json.Unmarshal(raw, p.Interface()); err != nil {
		return nil, err
	}
	return p.Elem().Interface(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (c *compiler) checkConditions(anc [][]bool) {
	for i, nc := range c.cfg.Nodes {
		if nc.Condition == "" {
			continue
		}
		n := &c.nodes[i]
		if len(nc.Condition) > maxConditionLen {
			c.add(n.id, "condition is %d characters, over the limit of %d", len(nc.Condition), maxConditionLen)
			continue
		}
		visible := map[string]reflect.Type{}
		for name, t := range c.inputs {
			visible[name] = t
		}
		for j := range c.nodes {
			if anc[i][j] && c.valid[j] {
				for _, k := range c.nodes[j].step.Writes {
					visible[k.Name()] = k.Type()
				}
			}
		}
		env := make(map[string]any, len(visible))
		for name, t := range visible {
			env[name] = reflect.Zero(t).Interface()
		}
		prog, err := compileCondition(nc.Condition, env)
		if err != nil {
			c.add(n.id, "condition %q does not compile: %s (it can use the flow inputs and keys written upstream: %s)",
				nc.Condition, firstLine(err.Error()), strings.Join(sortedKeys(visible), ", "))
			continue
		}
		n.cond = prog
		names := identifiers(prog)
		for _, name := range names {
			if t, ok := visible[name]; ok {
				n.condKeys = append(n.condKeys, slotRef{name: name, typ: t})
				n.condZero = append(n.condZero, env[name])
			}
		}
	}
}

// compileCondition guards the expression compiler: config text is input,
// and a crash in a library on odd input must become a validation problem.
func compileCondition(src string, env map[string]any) (prog *vm.Program, err error) {
	defer func() {
		if v := recover(); v != nil {
			prog, err = nil, fmt.Errorf("expression compiler failed: %v", v)
		}
	}()
	return expr.Compile(src, expr.Env(env), expr.AsBool())
}

type identVisitor struct{ names []string }

func (v *identVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && !slices.Contains(v.names, id.Value) {
		v.names = append(v.names, id.Value)
	}
}

func identifiers(prog *vm.Program) []string {
	v := &identVisitor{}
	root := prog.Node()
	ast.Walk(&root, v)
	slices.Sort(v.names)
	return v.names
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// build lays the validated graph out for Run: every key gets a slot in one
// flat array so steps read and write by index, not through maps.
func (c *compiler) build(order []int32, deadline time.Duration) *Plan {
	p := &Plan{
		name:     c.cfg.Name,
		version:  c.cfg.Version,
		deadline: deadline,
		cfg:      c.cfg,
		nodes:    c.nodes,
		order:    order,
		keyIndex: map[string]int32{},
	}
	addKey := func(k keyInfo) {
		p.keyIndex[k.name] = int32(len(p.keys))
		p.keys = append(p.keys, k)
	}
	for _, name := range c.cfg.Inputs {
		addKey(c.produced[name])
		p.inputs = append(p.inputs, p.keyIndex[name])
	}
	for i := range p.nodes {
		for _, k := range p.nodes[i].step.Writes {
			addKey(c.produced[k.Name()])
		}
	}
	ref := func(name string, t reflect.Type) slotRef {
		return slotRef{name: name, slot: p.keyIndex[name], typ: t}
	}
	p.pending = make([]int32, len(p.nodes))
	for i := range p.nodes {
		n := &p.nodes[i]
		for _, k := range n.step.Reads {
			n.reads = append(n.reads, ref(k.Name(), k.Type()))
		}
		for _, k := range n.step.Writes {
			n.writes = append(n.writes, ref(k.Name(), k.Type()))
		}
		for j := range n.condKeys {
			n.condKeys[j] = ref(n.condKeys[j].name, n.condKeys[j].typ)
		}
		p.pending[i] = int32(len(n.deps))
		if len(n.deps) == 0 {
			p.roots = append(p.roots, int32(i))
		}
	}
	return p
}
