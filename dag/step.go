package dag

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sync"
)

// Func is a step's body. It reads its declared inputs from in, writes its
// declared outputs to out and returns nil, or an error (wrap it with
// Retryable if another attempt may succeed). It must return promptly once
// ctx is done: the engine never abandons a running step, so a step that
// ignores ctx holds up its run.
type Func func(ctx context.Context, in Inputs, out Outputs) error

// Criticality says what a step's failure does to its run.
type Criticality uint8

const (
	// Fatal (the zero value, because failing is the safe default): the
	// node's failure fails the run and cancels the running siblings.
	Fatal Criticality = iota
	// Degradable: the node's failure writes its configured fallback values,
	// records the node in Result.Degraded, and the run goes on.
	Degradable
)

func (c Criticality) String() string {
	switch c {
	case Fatal:
		return "fatal"
	case Degradable:
		return "degradable"
	}
	return fmt.Sprintf("criticality(%d)", uint8(c))
}

// ParseCriticality reads "fatal" or "degradable".
func ParseCriticality(s string) (Criticality, error) {
	switch s {
	case "fatal":
		return Fatal, nil
	case "degradable":
		return Degradable, nil
	}
	return 0, fmt.Errorf("criticality %q is neither fatal nor degradable", s)
}

// Step is a named unit of work a flow config can refer to.
type Step struct {
	// Name is what flow configs call the step by, e.g. "fetch_waybill".
	Name string
	// Reads and Writes declare the keys the step uses. Compile checks that
	// every read key is produced upstream of the node with the same type,
	// and that no key has two producers.
	Reads  []AnyKey
	Writes []AnyKey
	// Effectful steps have side effects outside the run (a database write,
	// a tracking event). Options.DryRun skips them.
	Effectful bool
	// Criticality is the default; a flow config may override it per node.
	Criticality Criticality
	Run         Func
}

// Registry holds the steps and the caller-supplied input keys flow configs
// may use. Fill it at start-up; Compile copies what it needs, so a Plan never
// changes when the Registry does. Safe for concurrent use.
type Registry struct {
	mu     sync.RWMutex
	steps  map[string]Step
	inputs map[string]reflect.Type
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{steps: map[string]Step{}, inputs: map[string]reflect.Type{}}
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Register adds steps. It checks all of them and adds none if any is
// invalid: empty or duplicate name, nil Run, a key declared twice, a key
// both read and written, or a key name that is not an identifier.
func (r *Registry) Register(steps ...Step) error {
	var errs []error
	seen := map[string]bool{}
	r.mu.RLock()
	for _, s := range steps {
		if err := checkStep(s); err != nil {
			errs = append(errs, err)
		}
		if _, dup := r.steps[s.Name]; dup || seen[s.Name] {
			errs = append(errs, fmt.Errorf("dag: step %q is registered twice: %w", s.Name, ErrInvalidStep))
		}
		seen[s.Name] = true
	}
	r.mu.RUnlock()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range steps {
		if _, dup := r.steps[s.Name]; dup {
			return fmt.Errorf("dag: step %q is registered twice: %w", s.Name, ErrInvalidStep)
		}
	}
	for _, s := range steps {
		s.Reads = slices.Clone(s.Reads)
		s.Writes = slices.Clone(s.Writes)
		r.steps[s.Name] = s
	}
	return nil
}

func checkStep(s Step) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("dag: step %q: %s: %w", s.Name, fmt.Sprintf(format, args...), ErrInvalidStep))
	}
	if s.Name == "" {
		bad("empty name")
	}
	if s.Run == nil {
		bad("nil Run")
	}
	if s.Criticality != Fatal && s.Criticality != Degradable {
		bad("unknown %v", s.Criticality)
	}
	reads := map[string]bool{}
	for _, k := range s.Reads {
		switch {
		case k == nil:
			bad("nil key in Reads")
			continue
		case !identRE.MatchString(k.Name()):
			bad("key name %q is not an identifier", k.Name())
		case reads[k.Name()]:
			bad("reads key %q twice", k.Name())
		}
		reads[k.Name()] = true
	}
	writes := map[string]bool{}
	for _, k := range s.Writes {
		switch {
		case k == nil:
			bad("nil key in Writes")
			continue
		case !identRE.MatchString(k.Name()):
			bad("key name %q is not an identifier", k.Name())
		case writes[k.Name()]:
			bad("writes key %q twice", k.Name())
		case reads[k.Name()]:
			bad("both reads and writes key %q", k.Name())
		}
		writes[k.Name()] = true
	}
	return errors.Join(errs...)
}

// DeclareInputs names the keys a caller may pass to Run, with their types.
// A flow config lists which of them it needs under `inputs`.
func (r *Registry) DeclareInputs(keys ...AnyKey) error {
	var errs []error
	for _, k := range keys {
		switch {
		case k == nil:
			errs = append(errs, fmt.Errorf("dag: nil input key: %w", ErrInvalidStep))
		case !identRE.MatchString(k.Name()):
			errs = append(errs, fmt.Errorf("dag: input key name %q is not an identifier: %w", k.Name(), ErrInvalidStep))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if t, ok := r.inputs[k.Name()]; ok && t != k.Type() {
			return fmt.Errorf("dag: input key %q declared as %v and as %v: %w", k.Name(), t, k.Type(), ErrInvalidStep)
		}
	}
	for _, k := range keys {
		r.inputs[k.Name()] = k.Type()
	}
	return nil
}

// Step returns the registered step called name.
func (r *Registry) Step(name string) (Step, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.steps[name]
	return s, ok
}

// StepNames lists the registered steps, sorted, e.g. for an ops page.
func (r *Registry) StepNames() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.steps))
	for n := range r.steps {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (r *Registry) inputType(name string) (reflect.Type, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.inputs[name]
	return t, ok
}
