package clients

import (
	"context"
	"errors"
	"fmt"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors of downstream calls. Every error a client returns is a
// *CallError that matches exactly one of ErrNotFound, ErrInvalidArgument,
// ErrUnavailable or ErrDownstream with errors.Is, plus context.Canceled or
// context.DeadlineExceeded when the call ran out of time or was cancelled.
var (
	// ErrNotFound: the thing asked about does not exist (NotFound).
	ErrNotFound = errors.New("clients: not found")
	// ErrInvalidArgument: the downstream refused the input
	// (InvalidArgument, OutOfRange); retrying will not help.
	ErrInvalidArgument = errors.New("clients: invalid argument")
	// ErrUnavailable: the dependency did not answer in time or is failing
	// (Unavailable, ResourceExhausted, DeadlineExceeded, circuit open). The
	// sorting layer maps it to DOWNSTREAM_UNAVAILABLE.
	ErrUnavailable = errors.New("clients: downstream unavailable")
	// ErrCircuitOpen: the breaker refused the call without sending it; it
	// also matches ErrUnavailable.
	ErrCircuitOpen = errors.New("clients: circuit open")
	// ErrDownstream: any other failure of the downstream (Internal,
	// FailedPrecondition, Unauthenticated, ...).
	ErrDownstream = errors.New("clients: downstream failed")
)

// CallError is the error of one downstream call.
type CallError struct {
	Service string     // e.g. "basic"
	Method  string     // e.g. "GetSite"
	Code    codes.Code // the gRPC code (Unavailable for an open circuit)
	Err     error      // the cause: a gRPC status error or a breaker error
}

func (e *CallError) Error() string {
	return fmt.Sprintf("clients: %s.%s: %s: %v", e.Service, e.Method, e.Code, e.cause())
}

func (e *CallError) cause() string {
	if s, ok := status.FromError(e.Err); ok {
		return s.Message()
	}
	return e.Err.Error()
}

// Unwrap exposes the sentinel kind, any context error, and the cause (so
// status.Code(err) still answers the gRPC code).
func (e *CallError) Unwrap() []error {
	out := []error{e.Err}
	switch e.Code {
	case codes.NotFound:
		out = append(out, ErrNotFound)
	case codes.InvalidArgument, codes.OutOfRange:
		out = append(out, ErrInvalidArgument)
	case codes.Unavailable, codes.ResourceExhausted:
		out = append(out, ErrUnavailable)
	case codes.DeadlineExceeded:
		out = append(out, ErrUnavailable, context.DeadlineExceeded)
	case codes.Canceled:
		out = append(out, context.Canceled)
	default:
		out = append(out, ErrDownstream)
	}
	return out
}

// GRPCStatus lets status.FromError and status.Code see the call's code even
// for errors that never reached the wire (an open circuit).
func (e *CallError) GRPCStatus() *status.Status {
	if s, ok := status.FromError(e.Err); ok && s.Code() == e.Code {
		return s
	}
	return status.New(e.Code, e.Error())
}

// callError wraps the outcome of one call.
func callError(service, method string, err error) *CallError {
	switch {
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return &CallError{Service: service, Method: method, Code: codes.Unavailable, Err: errors.Join(ErrCircuitOpen, err)}
	case errors.Is(err, context.DeadlineExceeded):
		return &CallError{Service: service, Method: method, Code: codes.DeadlineExceeded, Err: err}
	case errors.Is(err, context.Canceled):
		return &CallError{Service: service, Method: method, Code: codes.Canceled, Err: err}
	}
	return &CallError{Service: service, Method: method, Code: status.Code(err), Err: err}
}

// countsAsFailure decides what trips a breaker: signs that the dependency
// itself is in trouble, never a client's mistake or a missing record.
func countsAsFailure(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded,
		codes.Internal, codes.Unknown, codes.DataLoss:
		return true
	}
	return false
}
