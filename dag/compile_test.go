package dag_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/expresshub/station/dag"
)

var (
	keyX   = dag.NewKey[int]("x")
	keyXs  = dag.NewKey[string]("x")
	keyY   = dag.NewKey[string]("y")
	keyIn  = dag.NewKey[int]("limit")
	keyObj = dag.NewKey[Route]("obj")
)

func nop(context.Context, dag.Inputs, dag.Outputs) error { return nil }

// validationRegistry has steps shaped to trip each validation rule.
func validationRegistry(t *testing.T) *dag.Registry {
	t.Helper()
	reg := dag.NewRegistry()
	if err := reg.DeclareInputs(keyIn); err != nil {
		t.Fatal(err)
	}
	err := reg.Register(
		dag.Step{Name: "a", Writes: []dag.AnyKey{keyX}, Run: nop},
		dag.Step{Name: "b", Reads: []dag.AnyKey{keyX}, Writes: []dag.AnyKey{keyY}, Run: nop},
		dag.Step{Name: "c", Reads: []dag.AnyKey{keyY}, Run: nop},
		dag.Step{Name: "also_x", Writes: []dag.AnyKey{keyX}, Run: nop},
		dag.Step{Name: "x_as_string", Reads: []dag.AnyKey{keyXs}, Run: nop},
		dag.Step{Name: "reads_in", Reads: []dag.AnyKey{keyIn}, Run: nop},
		dag.Step{Name: "obj", Writes: []dag.AnyKey{keyObj}, Criticality: dag.Degradable, Run: nop},
		dag.Step{Name: "writes_in", Writes: []dag.AnyKey{keyIn}, Run: nop},
		dag.Step{Name: "noop", Run: nop},
	)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func compileProblems(t *testing.T, reg *dag.Registry, yaml string) []dag.Problem {
	t.Helper()
	cfg, err := dag.ParseConfig([]byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p, err := dag.Compile(cfg, reg)
	if err == nil {
		t.Fatalf("Compile accepted an invalid config, plan %v", p.Nodes())
	}
	if p != nil {
		t.Fatal("Compile returned a plan with an error")
	}
	if !errors.Is(err, dag.ErrInvalidFlow) {
		t.Fatalf("error %v does not match ErrInvalidFlow", err)
	}
	var ve *dag.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T is not a *ValidationError", err)
	}
	return ve.Problems
}

func TestCompileRejectsEachProblemWithItsNode(t *testing.T) {
	const head = "name: f\nversion: \"1\"\n"
	cases := []struct {
		name, yaml, node, want string
	}{
		{"unknown step", head + "nodes: [{step: nope}]", "nope", `unknown step "nope"`},
		{"duplicate id", head + "nodes: [{step: noop}, {step: noop}]", "noop", "ids must be unique"},
		{"unknown dependency", head + "nodes: [{step: noop, depends_on: [ghost]}]", "noop", `unknown node "ghost"`},
		{"self dependency", head + "nodes: [{step: noop, depends_on: [noop]}]", "noop", "depends on itself"},
		{"cycle with path", head + "nodes: [{step: a, depends_on: [c]}, {step: b, depends_on: [a]}, {step: c, depends_on: [b]}]",
			"a", "dependency cycle: a -> c -> b -> a"},
		{"input with no producer", head + "nodes: [{step: b}]", "b", `reads key "x", which no node writes`},
		{"producer not upstream", head + "nodes: [{step: a}, {step: b}]", "b", `written by node "a", which is not upstream`},
		{"two producers", head + "nodes: [{step: a}, {step: also_x}]", "also_x", `already produced by node "a"`},
		{"input and node produce one key", head + "inputs: [limit]\nnodes: [{step: writes_in}]", "writes_in", "already produced by the flow inputs"},
		{"type mismatch", head + "nodes: [{step: a}, {step: x_as_string, depends_on: [a]}]", "x_as_string", `reads key "x" as string, but it is produced as int`},
		{"negative timeout", head + "nodes: [{step: noop, timeout: -1s}]", "noop", "timeout -1s is negative"},
		{"timeout over deadline", head + "deadline: 100ms\nnodes: [{step: noop, timeout: 1s}]", "noop", "longer than the flow deadline"},
		{"negative deadline", head + "deadline: -5ms\nnodes: [{step: noop}]", "", "deadline -5ms is negative"},
		{"condition syntax", head + "nodes: [{step: a}, {step: b, depends_on: [a], condition: 'x >'}]", "b", "does not compile"},
		{"condition unknown name", head + "nodes: [{step: a}, {step: b, depends_on: [a], condition: 'nope > 1'}]", "b", "does not compile"},
		{"condition not bool", head + "nodes: [{step: a}, {step: b, depends_on: [a], condition: 'x + 1'}]", "b", "does not compile"},
		{"condition on key not upstream", head + "nodes: [{step: a}, {step: noop, condition: 'x > 1'}]", "noop", "does not compile"},
		{"condition on unknown field", head + "nodes: [{step: obj}, {step: noop, depends_on: [obj], condition: 'obj.nope == 1'}]", "noop", "does not compile"},
		{"fallback on fatal", head + "nodes: [{step: a, fallback: {x: 1}}]", "a", "is fatal"},
		{"fallback for unwritten key", head + "nodes: [{step: obj, fallback: {y: 1}}]", "obj", `key "y", which step "obj" does not write`},
		{"fallback of wrong type", head + "nodes: [{step: obj, fallback: {obj: {chute: soon}}}]", "obj", "does not fit"},
		{"unknown input", head + "inputs: [nope]\nnodes: [{step: noop}]", "", `input "nope" is not declared`},
		{"duplicate input", head + "inputs: [limit, limit]\nnodes: [{step: reads_in}]", "", `input "limit" is listed twice`},
		{"retry attempts", head + "nodes: [{step: noop, retry: {attempts: 99}}]", "noop", "retry attempts 99 out of range"},
		{"backoff without retries", head + "nodes: [{step: noop, retry: {backoff: 5ms}}]", "noop", "never applies"},
		{"negative backoff", head + "nodes: [{step: noop, retry: {attempts: 2, backoff: -5ms}}]", "noop", "backoff -5ms is negative"},
		{"bad criticality", head + "nodes: [{step: noop, criticality: sometimes}]", "noop", "neither fatal nor degradable"},
		{"bad id", head + "nodes: [{id: 'a b', step: noop}]", "a b", "node id must be"},
		{"no nodes", head + "nodes: []", "", "flow has no nodes"},
		{"no name", "version: \"1\"\nnodes: [{step: noop}]", "", "flow name is empty"},
		{"no version", "name: f\nnodes: [{step: noop}]", "", "flow version is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			problems := compileProblems(t, validationRegistry(t), tc.yaml)
			for _, p := range problems {
				if p.Node == tc.node && strings.Contains(p.Problem, tc.want) {
					return
				}
			}
			t.Fatalf("no problem {node %q, %q} in %+v", tc.node, tc.want, problems)
		})
	}
}

func TestCompileReportsEveryProblemAtOnce(t *testing.T) {
	problems := compileProblems(t, validationRegistry(t), `
name: f
version: "1"
deadline: 50ms
nodes:
  - step: nope
  - step: b
  - {id: loop1, step: noop, depends_on: [loop2]}
  - {id: loop2, step: noop, depends_on: [loop1]}
  - {id: slow, step: noop, timeout: 1s}
  - {id: cond, step: noop, condition: "("}
`)
	want := map[string]string{
		"nope":  "unknown step",
		"b":     "no node writes",
		"loop1": "dependency cycle: loop1 -> loop2 -> loop1",
		"slow":  "longer than the flow deadline",
		"cond":  "does not compile",
	}
	for node, text := range want {
		found := false
		for _, p := range problems {
			found = found || (p.Node == node && strings.Contains(p.Problem, text))
		}
		if !found {
			t.Errorf("missing problem {%s: %s} in %+v", node, text, problems)
		}
	}
	if len(problems) != len(want) {
		t.Errorf("got %d problems, want %d: %+v", len(problems), len(want), problems)
	}
}

func TestValidationErrorMarshalsForTheAPI(t *testing.T) {
	problems := compileProblems(t, validationRegistry(t), "name: f\nversion: \"2\"\nnodes: [{step: nope}]")
	b, err := json.Marshal(&dag.ValidationError{Flow: "f", Version: "2", Problems: problems})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"flow":"f","version":"2","problems":[{"node":"nope","problem":"unknown step \"nope\""}]}`; string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
}

func TestCompileAcceptsFlowInputsAndDefaultsIDToStep(t *testing.T) {
	reg := validationRegistry(t)
	p := mustCompile(t, reg, `
name: f
version: "1"
inputs: [limit]
nodes:
  - step: reads_in
  - step: a
  - {id: b_node, step: b, depends_on: [a], condition: "x > limit"}
  - {step: c, depends_on: [b_node]}
`)
	if got, want := strings.Join(p.Nodes(), ","), "reads_in,a,b_node,c"; got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
}

func TestParseConfigRejectsUnknownFieldsAndBadDurations(t *testing.T) {
	for name, yaml := range map[string]string{
		"typo field":      "name: f\nversion: \"1\"\nnodes: [{step: a, depend_on: [b]}]",
		"bare number":     "name: f\nversion: \"1\"\ndeadline: 300\nnodes: [{step: a}]",
		"two documents":   "name: f\n---\nname: g\n",
		"empty":           "",
		"not a mapping":   "[1, 2]",
		"bad duration":    "name: f\ndeadline: soon\n",
		"wrong type list": "name: f\nnodes: {step: a}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := dag.ParseConfig([]byte(yaml))
			if !errors.Is(err, dag.ErrInvalidFlow) {
				t.Fatalf("got %v, want ErrInvalidFlow", err)
			}
		})
	}
}

func TestParseConfigReadsJSON(t *testing.T) {
	cfg, err := dag.ParseConfig([]byte(`{"name":"f","version":"3","deadline":"250ms","nodes":[{"step":"a","retry":{"attempts":2,"backoff":"5ms"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Deadline.Std().String() != "250ms" || cfg.Nodes[0].Retry.Attempts != 2 {
		t.Fatalf("parsed %+v", cfg)
	}
	// Shown back as JSON with the same names and duration syntax.
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"deadline":"250ms"`) || !strings.Contains(string(b), `"backoff":"5ms"`) {
		t.Fatalf("marshalled %s", b)
	}
}

func TestRegisterRejectsBadSteps(t *testing.T) {
	reg := dag.NewRegistry()
	err := reg.Register(
		dag.Step{Name: "ok", Run: nop},
		dag.Step{Name: "", Run: nop},
		dag.Step{Name: "norun"},
		dag.Step{Name: "rw", Reads: []dag.AnyKey{keyX}, Writes: []dag.AnyKey{keyX}, Run: nop},
		dag.Step{Name: "badkey", Writes: []dag.AnyKey{dag.NewKey[int]("no-dash")}, Run: nop},
	)
	if !errors.Is(err, dag.ErrInvalidStep) {
		t.Fatalf("got %v", err)
	}
	if _, ok := reg.Step("ok"); ok {
		t.Fatal("a valid step of a rejected batch was registered: batches are all or nothing")
	}
	if err := reg.Register(dag.Step{Name: "ok", Run: nop}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(dag.Step{Name: "ok", Run: nop}); !errors.Is(err, dag.ErrInvalidStep) {
		t.Fatalf("duplicate registration: %v", err)
	}
}
