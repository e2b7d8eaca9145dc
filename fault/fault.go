// Package fault is the station's error model: every error a domain package
// returns for a client's mistake or a refused operation carries a Kind (what
// the edge answers: 400, 404, 409, ...) and a stable Code (what a terminal
// or a machine matches on). The HTTP and gRPC edges map kinds, once, so a new
// domain error never needs an edit at the edge to avoid becoming a 500.
//
// A *Error declared at package level is a sentinel: callers wrap it with
// fmt.Errorf("...: %w", ErrX) and match it with errors.Is. Refusals that
// carry facts (which bag holds the parcel) use With, which keeps the
// sentinel matchable. Like ident, fault imports nothing of the station's.
package fault

import (
	"errors"
	"fmt"
	"maps"
)

// Kind is the class of a failure, which decides the transport status.
type Kind uint8

const (
	// Internal is anything not classified: a bug or an unexpected failure.
	// Its message never reaches a client.
	Internal Kind = iota
	// Invalid: the request is malformed; sending it again will not help.
	Invalid
	// NotFound: the object does not exist (or is not the caller's to see).
	NotFound
	// Conflict: the request contradicts the current state of the station.
	Conflict
	// Precondition: a version the client named is no longer current.
	Precondition
	// Forbidden: the caller may not do this.
	Forbidden
	// Unauthenticated: the caller is not known.
	Unauthenticated
	// Unavailable: a dependency did not answer; a retry may succeed.
	Unavailable
)

var kindNames = [...]string{"internal", "invalid", "not_found", "conflict", "precondition", "forbidden", "unauthenticated", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is a classified error. Msg is safe to show a client for every kind
// but Internal.
type Error struct {
	Kind    Kind
	Code    string         // stable, snake_case: scan_id_reused, parcel_departed, ...
	Msg     string         // what happened, for a person
	Details map[string]any // client-safe facts, e.g. {"bag_id": "..."}
	base    *Error         // the sentinel this one was made from by With
}

// New declares a sentinel.
func New(kind Kind, code, msg string) *Error {
	return &Error{Kind: kind, Code: code, Msg: msg}
}

func (e *Error) Error() string { return e.Msg }

// Is makes a refusal built by With match its sentinel.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && (e == t || e.base == t)
}

// With returns a refusal of the sentinel's kind and code with a specific
// message and client-safe details.
func (e *Error) With(details map[string]any, format string, args ...any) *Error {
	base := e
	if e.base != nil {
		base = e.base
	}
	d := maps.Clone(e.Details)
	if d == nil {
		d = make(map[string]any, len(details))
	}
	maps.Copy(d, details)
	return &Error{Kind: e.Kind, Code: e.Code, Msg: fmt.Sprintf(format, args...), Details: d, base: base}
}

// InvalidInput is how a leaf package that may not import fault (ident)
// classifies its errors: a value a client sent that does not parse, with a
// stable code. As treats one as Invalid, so no edge needs a row for it.
type InvalidInput interface {
	error
	Code() string
	// InvalidInput is a marker: an error that happens to have a Code
	// method is not taken for a client's mistake.
	InvalidInput()
}

// As finds the classified error in err's chain: a *Error, else an
// InvalidInput, which it returns as an Invalid *Error with the same code
// and message.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	var in InvalidInput
	if errors.As(err, &in) {
		return &Error{Kind: Invalid, Code: in.Code(), Msg: in.Error()}, true
	}
	return nil, false
}

// KindOf is the kind of err: Internal when nothing in its chain is
// classified.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}
