package sorterapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/station/dbfail"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/workorder"
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
)

// toStatus is the one table from domain errors to gRPC status codes. A
// client's mistake is never Internal; an internal message never leaks.
// field names the request field a tracking-number error is about.
func (s *Server) toStatus(err error, field string) error {
	var batch *sorting.InvalidBatchError
	var seq *sorting.SequenceError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &batch):
		br := &errdetails.BadRequest{}
		for _, i := range batch.Indexes() {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: fmt.Sprintf("tracking_nos[%d]", i), Description: batch.Problems[i], Reason: "INVALID_TRACKING_NO"})
		}
		return withDetails(codes.InvalidArgument, err.Error(), br)
	case errors.Is(err, ident.ErrInvalidTrackingNo):
		return badRequest(field, "INVALID_TRACKING_NO", err)
	case errors.Is(err, sorting.ErrBatchTooLarge), errors.Is(err, sorting.ErrEmptyBatch):
		return badRequest("tracking_nos", "BATCH_SIZE", err)
	case errors.Is(err, sorting.ErrInvalidSorterEvent):
		return withDetails(codes.InvalidArgument, err.Error(), info(ReasonInvalidEvent, nil))
	case errors.Is(err, sorting.ErrNoChuteMap), errors.Is(err, sorting.ErrNoFlow):
		return withDetails(codes.NotFound, "unknown station: it has no chute map or sorting flow", info(ReasonUnknownStation, nil))
	case errors.As(err, &seq):
		return withDetails(codes.FailedPrecondition, err.Error(),
			info(ReasonSequenceBackwards, map[string]string{"newest_sequence": strconv.FormatUint(seq.Newest, 10)}))
	case errors.Is(err, workorder.ErrScanIDReused):
		return withDetails(codes.AlreadyExists, "this sequence number was already used for a different event",
			info(ReasonSequenceReused, nil))
	case dbfail.IsUnavailable(err):
		return status.Error(codes.Unavailable, "the database is not reachable; retry shortly")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	}
	s.log.Error("sorter API internal error", zap.Error(err))
	return status.Error(codes.Internal, "internal error")
}

func badRequest(field, reason string, err error) error {
	return withDetails(codes.InvalidArgument, err.Error(), &errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: err.Error(), Reason: reason}}})
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
