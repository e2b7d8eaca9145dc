package sorterapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/belt"
	"github.com/expresshub/station/workorder"
)

// errBelt answers every call with the error it holds.
type errBelt struct{ v atomic.Value }

func (b *errBelt) err() error { return b.v.Load().(box).err }

type box struct{ err error }

func (*errBelt) CheckStation(context.Context, string) error { return nil }
func (b *errBelt) Resolve(context.Context, string, ident.TrackingNo) (belt.Decision, error) {
	return belt.Decision{}, b.err()
}
func (b *errBelt) PreSort(context.Context, string, []string) ([]belt.Decision, time.Time, error) {
	return nil, time.Time{}, b.err()
}
func (b *errBelt) Reject(context.Context, string, string, string, string) (belt.Decision, error) {
	return belt.Decision{}, b.err()
}
func (b *errBelt) Confirm(context.Context, belt.SorterEvent) (belt.Confirmation, error) {
	return belt.Confirmation{}, b.err()
}

// errorEdge serves the sorter API over real gRPC with a belt that fails
// every call; resolve sets the error and returns the status the machine
// sees for a Resolve.
func errorEdge(t *testing.T) (resolve func(error) *status.Status) {
	t.Helper()
	belt := &errBelt{}
	cli := serveGate(t, belt, Config{})
	return func(err error) *status.Status {
		t.Helper()
		belt.v.Store(box{err})
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-sorter-key", "sorter-1"), 10*time.Second)
		defer cancel()
		_, got := cli.Resolve(ctx, &stationv1.ResolveRequest{TrackingNo: "SG1000000001"})
		return status.Convert(got)
	}
}

func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			return i
		}
	}
	return nil
}

// A domain error nobody has heard of at the edge is answered by its kind,
// with its code as the reason: adding one never needs an edit here. A
// conflict with the station's state is FailedPrecondition.
func TestANewDomainErrorMapsByItsKind(t *testing.T) {
	resolveWith := errorEdge(t)
	errXY := fault.New(fault.Conflict, "x_y", "the x is already y")
	st := resolveWith(fmt.Errorf("resolve: %w", errXY.With(map[string]any{"x": "X1", "n": 7}, "x X1 is already y")))
	info := errorInfo(st)
	if st.Code() != codes.FailedPrecondition || st.Message() != "resolve: x X1 is already y" || info == nil ||
		info.GetReason() != "X_Y" || info.GetDomain() != errorDomain || info.GetMetadata()["x"] != "X1" || info.GetMetadata()["n"] != "7" {
		t.Fatalf("status %v %q %v", st.Code(), st.Message(), st.Details())
	}
	for kind, code := range map[fault.Kind]codes.Code{
		fault.Invalid:         codes.InvalidArgument,
		fault.NotFound:        codes.NotFound,
		fault.Conflict:        codes.FailedPrecondition,
		fault.Precondition:    codes.Aborted,
		fault.Forbidden:       codes.PermissionDenied,
		fault.Unauthenticated: codes.Unauthenticated,
		fault.Unavailable:     codes.Unavailable,
	} {
		st := resolveWith(fault.New(kind, "new_"+kind.String(), "m"))
		if st.Code() != code || errorInfo(st).GetReason() != strings.ToUpper("new_"+kind.String()) {
			t.Errorf("%v: %v %v, want %v", kind, st.Code(), st.Details(), code)
		}
	}
}

// An invalid input is also a BadRequest violation of the field the call
// names, so the machine knows which field to fix.
func TestInvalidInputNamesTheField(t *testing.T) {
	resolveWith := errorEdge(t)
	st := resolveWith(fmt.Errorf("resolve: %w", fault.New(fault.Invalid, "bad_thing", "bad thing")))
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			br = b
		}
	}
	if st.Code() != codes.InvalidArgument || br == nil || len(br.GetFieldViolations()) != 1 ||
		br.GetFieldViolations()[0].GetField() != "tracking_no" || br.GetFieldViolations()[0].GetReason() != "BAD_THING" {
		t.Fatalf("status %v %v", st.Code(), st.Details())
	}
}

// The answers the machine was built against before errors had kinds.
func TestFrozenAnswersStay(t *testing.T) {
	resolveWith := errorEdge(t)
	for _, c := range []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{workorder.ErrScanIDReused, codes.AlreadyExists, ReasonSequenceReused},
		{sorting.ErrNoChuteMap, codes.NotFound, ReasonUnknownStation},
		{sorting.ErrNoFlow, codes.NotFound, ReasonUnknownStation},
		{&belt.SequenceError{Sequence: 5, Newest: 7}, codes.FailedPrecondition, ReasonSequenceBackwards},
		{fmt.Errorf("%w: no sorter", belt.ErrInvalidSorterEvent), codes.InvalidArgument, ReasonInvalidEvent},
		{belt.ErrBatchTooLarge, codes.InvalidArgument, "BATCH_SIZE"},
		{belt.ErrEmptyBatch, codes.InvalidArgument, "BATCH_SIZE"},
		{ident.ErrInvalidTrackingNo, codes.InvalidArgument, "INVALID_TRACKING_NO"},
	} {
		st := resolveWith(fmt.Errorf("op: %w", c.err))
		if st.Code() != c.code || errorInfo(st).GetReason() != c.reason {
			t.Errorf("%v: %v %v, want %v %s", c.err, st.Code(), st.Details(), c.code, c.reason)
		}
	}
	st := resolveWith(&belt.SequenceError{Sequence: 5, Newest: 7})
	if md := errorInfo(st).GetMetadata(); md["newest_sequence"] != "7" {
		t.Fatalf("metadata %v", md)
	}
}

// Unavailable says only what its sentinel says; anything unclassified is
// Internal with no internal text.
func TestUnclassifiedErrorIsInternalWithoutItsMessage(t *testing.T) {
	resolveWith := errorEdge(t)
	for _, err := range []error{
		errors.New("pq: secret column exploded"),
		fault.New(fault.Internal, "secret_code", "secret internal state"),
	} {
		st := resolveWith(fmt.Errorf("resolve: %w", err))
		if st.Code() != codes.Internal || st.Message() != "internal error" || len(st.Details()) != 0 {
			t.Fatalf("%v: %v %q %v", err, st.Code(), st.Message(), st.Details())
		}
	}
	down := fault.New(fault.Unavailable, "thing_down", "the thing is unavailable; retry shortly")
	st := resolveWith(fmt.Errorf("%w: %w", down, errors.New("dial 10.0.0.7: secret-host")))
	if st.Code() != codes.Unavailable || st.Message() != "the thing is unavailable; retry shortly" {
		t.Fatalf("%v %q", st.Code(), st.Message())
	}
}
