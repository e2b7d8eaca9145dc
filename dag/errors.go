package dag

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps one of them, so
// callers branch with errors.Is and never on messages.
var (
	// ErrInvalidFlow: a flow config failed to parse or validate. The error
	// is (or wraps) a *ValidationError listing every problem.
	ErrInvalidFlow = errors.New("invalid flow")
	// ErrInvalidStep: a step or input key was rejected by the Registry.
	ErrInvalidStep = errors.New("invalid step")
	// ErrBadInput: Run was given a missing or mistyped flow input.
	ErrBadInput = errors.New("bad flow input")
	// ErrStepFailed: a fatal node failed; every *NodeError matches it.
	ErrStepFailed = errors.New("step failed")
	// ErrTimeout: a node exceeded its own timeout.
	ErrTimeout = errors.New("step timed out")
	// ErrDeadline: the run's deadline (the flow deadline or the caller's
	// context deadline, whichever is sooner) passed before the run finished.
	ErrDeadline = errors.New("flow deadline exceeded")
	// ErrCanceled: the caller canceled the run's context.
	ErrCanceled = errors.New("run canceled")
	// ErrPanic: a step panicked; the panic was recovered.
	ErrPanic = errors.New("step panicked")
	// ErrUndeclaredKey: a step read or wrote a key it did not declare, or
	// with another type than declared. A programming error in the step.
	ErrUndeclaredKey = errors.New("undeclared key")
	// ErrCondition: a node's condition failed to evaluate.
	ErrCondition = errors.New("condition failed")
	// ErrUnknownFlow: Flows has no flow (or version) of that name.
	ErrUnknownFlow = errors.New("unknown flow")
	// ErrVersionExists: a flow version is published once; publish a new
	// version instead of rewriting history.
	ErrVersionExists = errors.New("flow version already published")
)

// NodeError is the error Run returns when a node fails the run. It names the
// node and step so a caller can errors.As for it, and it matches
// ErrStepFailed, its Kind (ErrTimeout, ErrDeadline, ErrCanceled, ErrPanic,
// ErrUndeclaredKey, ErrCondition or ErrStepFailed) and the step's own error.
type NodeError struct {
	Flow     string
	Node     string
	Step     string
	Attempts int
	Kind     error
	Err      error
}

func (e *NodeError) Error() string {
	return fmt.Sprintf("dag: flow %q node %q (step %q): %v: %v", e.Flow, e.Node, e.Step, e.Kind, e.Err)
}

// Unwrap exposes the kind, ErrStepFailed and the cause to errors.Is/As.
func (e *NodeError) Unwrap() []error {
	if e.Kind == ErrStepFailed || e.Kind == nil {
		return []error{ErrStepFailed, e.Err}
	}
	return []error{ErrStepFailed, e.Kind, e.Err}
}

// PanicError carries a recovered panic value and the stack where it happened,
// for logs; the trace keeps only the message.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap makes errors.Is(err, ErrPanic) hold, and reaches a panicked error.
func (e *PanicError) Unwrap() []error {
	if err, ok := e.Value.(error); ok {
		return []error{ErrPanic, err}
	}
	return []error{ErrPanic}
}

// retryableError marks an error as worth another attempt.
type retryableError struct{ err error }

func (e retryableError) Error() string   { return e.err.Error() }
func (e retryableError) Unwrap() error   { return e.err }
func (e retryableError) Retryable() bool { return true }

// Retryable marks err as transient: a node with retry attempts left runs its
// step again. Errors are not retried unless marked (or unless the caller
// supplies Options.Retryable), because retrying a non-idempotent failure is
// worse than failing. Retryable(nil) is nil.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return retryableError{err}
}

// StopsRun reports whether any error in err's chain has a `StopsRun() bool`
// method returning true. Such an error is an outcome the caller wants, not a
// failure to paper over (a parcel found cancelled, say): it ends the run even
// from a degradable node, instead of being replaced by the fallback.
func StopsRun(err error) bool {
	var s interface{ StopsRun() bool }
	return errors.As(err, &s) && s.StopsRun()
}

// IsRetryable reports whether any error in err's chain has a
// `Retryable() bool` method returning true. Errors from other packages (a
// gRPC client wrapper, say) can opt in by implementing that method.
func IsRetryable(err error) bool {
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && r.Retryable()
}
