package sorterapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/sorting/belt"
	"github.com/expresshub/station/station/dbfail"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// errorDomain names Station in ErrorInfo details.
const errorDomain = "station.expresshub"

// Reasons in ErrorInfo details: stable, for the machine's software to match.
const (
	ReasonUnknownStation    = "UNKNOWN_STATION"
	ReasonOtherStation      = "OTHER_STATION"
	ReasonInvalidEvent      = "INVALID_SORTER_EVENT"
	ReasonSequenceBackwards = "SEQUENCE_BACKWARDS"
	ReasonSequenceReused    = "SEQUENCE_REUSED"
	ReasonSorterOverloaded  = "SORTER_OVERLOADED"
	ReasonStationOverloaded = "STATION_OVERLOADED"
	ReasonShuttingDown      = "SHUTTING_DOWN"
	ReasonDatabaseUnavail   = "DATABASE_UNAVAILABLE"
)

// errNoAnswerInTime is the cause of a call's server-side deadline: what did
// not answer within it is the database (the belt's other waits are bounded
// tighter), so the machine is told to retry (reason DATABASE_UNAVAILABLE).
var errNoAnswerInTime = fault.New(fault.Unavailable, "database_unavailable", "the database did not answer in time; resend")

// grpcCode maps each kind of domain error to its gRPC code: the one place
// where this edge decides, so a new domain error (fault.New) needs no edit
// here. A conflict with the station's state is FailedPrecondition (the
// machine must not retry the same call as is); a version that moved on
// under the caller is Aborted (read again, then retry).
func grpcCode(k fault.Kind) codes.Code {
	switch k {
	case fault.Invalid:
		return codes.InvalidArgument
	case fault.NotFound:
		return codes.NotFound
	case fault.Conflict:
		return codes.FailedPrecondition
	case fault.Precondition:
		return codes.Aborted
	case fault.Forbidden:
		return codes.PermissionDenied
	case fault.Unauthenticated:
		return codes.Unauthenticated
	case fault.Unavailable:
		return codes.Unavailable
	}
	return codes.Internal
}

// frozen are the answers the machine's software was built against before
// errors carried kinds; they keep their gRPC code, reason and message.
// Nothing new belongs here: a new error's reason is its code in upper case.
var frozen = map[string]struct {
	code   codes.Code
	reason string
	msg    string
}{
	"scan_id_reused": {codes.AlreadyExists, ReasonSequenceReused, "this sequence number was already used for a different event"},
	"no_chute_map":   {codes.NotFound, ReasonUnknownStation, "unknown station: it has no chute map or sorting flow"},
	"no_flow":        {codes.NotFound, ReasonUnknownStation, "unknown station: it has no chute map or sorting flow"},
}

// toStatus maps an error to a gRPC status by its kind (fault). A classified
// error carries an ErrorInfo whose reason is its code in upper case
// (SEQUENCE_BACKWARDS) and whose metadata are its details; an Invalid one
// is also a BadRequest violation of field, the request field the call's
// input is in, when the handler names one. A client's mistake is never
// Internal; an internal message never leaks.
func (s *Server) toStatus(err error, field string) error {
	if err == nil {
		return nil
	}
	if batch, ok := errors.AsType[*belt.InvalidBatchError](err); ok {
		// Every bad index of a pre-sort batch, so the machine can drop them.
		br := &errdetails.BadRequest{}
		for _, i := range batch.Indexes() {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: fmt.Sprintf("tracking_nos[%d]", i), Description: batch.Problems[i], Reason: "INVALID_TRACKING_NO"})
		}
		return withDetails(codes.InvalidArgument, err.Error(), br)
	}
	if e, ok := fault.As(err); ok && e.Kind != fault.Internal {
		if f, ok := frozen[e.Code]; ok {
			return withDetails(f.code, f.msg, info(f.reason, nil))
		}
		c, reason, msg := grpcCode(e.Kind), strings.ToUpper(e.Code), err.Error()
		if e.Kind == fault.Unavailable {
			msg = e.Msg // the wrapped cause is the station's business, not the machine's
		}
		details := []protoadapt.MessageV1{info(reason, infoMetadata(e.Details))}
		if e.Kind == fault.Invalid && field != "" {
			details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: field, Description: err.Error(), Reason: reason}}})
		}
		return withDetails(c, msg, details...)
	}
	switch {
	case dbfail.IsUnavailable(err):
		return withDetails(codes.Unavailable, "the database is not reachable; retry shortly", info(ReasonDatabaseUnavail, nil))
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	}
	s.log.Error("sorter API internal error", zap.Error(err))
	return status.Error(codes.Internal, "internal error")
}

// infoMetadata is an error's details as ErrorInfo metadata, which are
// strings.
func infoMetadata(d map[string]any) map[string]string {
	if len(d) == 0 {
		return nil
	}
	md := make(map[string]string, len(d))
	for k, v := range d {
		md[k] = fmt.Sprint(v)
	}
	return md
}

func info(reason string, md map[string]string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain, Metadata: md}
}

func withDetails(c codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st := status.New(c, msg)
	for _, d := range details {
		if with, err := st.WithDetails(d); err == nil {
			st = with
		}
	}
	return st.Err()
}

// overloaded answers a refused admission.
func overloaded(a admission) error {
	reason, msg := ReasonStationOverloaded, "station is at its concurrency limit for sorters; retry shortly"
	if a == sorterFull {
		reason, msg = ReasonSorterOverloaded, "this sorter has too many calls in flight; retry shortly"
	}
	return withDetails(codes.ResourceExhausted, msg, info(reason, nil),
		&errdetails.RetryInfo{RetryDelay: durationpb.New(20 * time.Millisecond)})
}
