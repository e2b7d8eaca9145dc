package dag

import (
	"fmt"
	"reflect"
)

// Key names a value that flows between steps and fixes its Go type. Keys
// are compared by name: two Key values with the same name are the same
// slot, and Compile rejects a flow where their types disagree. Declare keys
// once, next to the steps that produce them:
//
//	var Waybill = dag.NewKey[*Waybill]("waybill")
type Key[T any] struct{ name string }

// NewKey returns the key called name holding values of type T. The name must
// be an identifier ([A-Za-z_][A-Za-z0-9_]*) so flow conditions can refer to
// it; the Registry checks that when a step declaring the key is registered.
func NewKey[T any](name string) Key[T] { return Key[T]{name: name} }

// Name is the key's name, as seen by conditions, traces and Result maps.
func (k Key[T]) Name() string { return k.name }

// Type is T.
func (k Key[T]) Type() reflect.Type { return reflect.TypeFor[T]() }

func (k Key[T]) String() string { return fmt.Sprintf("%s(%v)", k.name, k.Type()) }

// Bind pairs the key with a value: the form flow inputs are passed to Run in.
func (k Key[T]) Bind(v T) Value { return Value{name: k.name, typ: k.Type(), v: v} }

func (Key[T]) isKey() {}

// AnyKey is a Key of any type, for declaring what a step reads and writes.
type AnyKey interface {
	Name() string
	Type() reflect.Type
	isKey()
}

// Value is a key bound to a value; see Key.Bind.
type Value struct {
	name string
	typ  reflect.Type
	v    any
}

// Inputs is a step's read access to the values it declared in Step.Reads.
// It is valid only during the step call; a step must not keep it or hand it
// to a goroutine that outlives the call.
type Inputs struct {
	r       *run
	n       *node
	attempt int
}

// Node is the id of the node running the step (a step may back several).
func (in Inputs) Node() string { return in.n.id }

// Attempt is 1 on the first try and counts up on retries.
func (in Inputs) Attempt() int { return in.attempt }

// Params are the node's `params` from the flow config, decoded from
// YAML/JSON (strings, float64/int, bool, []any, map[string]any). Shared by
// every run: read only.
func (in Inputs) Params() map[string]any { return in.n.params }

// Outputs is a step's write access to the keys it declared in Step.Writes.
// Writes of a failed attempt are discarded. Like Inputs, valid only during
// the step call.
type Outputs struct {
	r *run
	n *node
}

// keyPanic is how Get/Set report misuse of keys from inside a step: the
// engine recovers it and fails the node with ErrUndeclaredKey. It is a
// programming error in the step, and panicking keeps the happy path of
// Get/Set free of error plumbing.
type keyPanic struct{ msg string }

// Get returns the value of k, or T's zero value when it is absent (its
// producer was skipped by a condition or a dry run, or degraded without a
// fallback for k). Use Lookup when absence must be told apart from zero.
func Get[T any](in Inputs, k Key[T]) T {
	v, _ := Lookup(in, k)
	return v
}

// Lookup returns the value of k and whether it is present.
func Lookup[T any](in Inputs, k Key[T]) (T, bool) {
	var zero T
	slot := in.n.readSlot(k.name)
	if slot < 0 {
		panic(keyPanic{fmt.Sprintf("step %q reads key %q, which it does not declare in Reads", in.n.step.Name, k.name)})
	}
	if !in.r.slots[slot].set {
		return zero, false
	}
	raw := in.r.slots[slot].v
	if raw == nil {
		return zero, true // a nil interface value of an interface-typed key
	}
	v, ok := raw.(T)
	if !ok {
		panic(keyPanic{fmt.Sprintf("step %q reads key %q as %v, but it holds %T", in.n.step.Name, k.name, k.Type(), raw)})
	}
	return v, true
}

// Set writes v under k. Writing a key the step did not declare, or with
// another type, fails the node with ErrUndeclaredKey.
func Set[T any](out Outputs, k Key[T], v T) {
	w := out.n.writeRef(k.name)
	if w == nil {
		panic(keyPanic{fmt.Sprintf("step %q writes key %q, which it does not declare in Writes", out.n.step.Name, k.name)})
	}
	if t := reflect.TypeFor[T](); t != w.typ {
		panic(keyPanic{fmt.Sprintf("step %q writes key %q as %v, but declares %v", out.n.step.Name, k.name, t, w.typ)})
	}
	out.r.slots[w.slot] = cell{v: v, set: true}
}
