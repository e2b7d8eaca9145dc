package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/station/dbfail"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/relay"
	"github.com/expresshub/station/workorder"
)

// Error is an error with a stable code for clients. Handlers return one for a
// client's mistake; anything else becomes 500 "internal" with the details in
// the log only.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	Details    map[string]any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds a client-facing error.
func Errorf(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// mapping is the one table from domain errors to HTTP. The first entry that
// errors.Is matches wins, so more specific errors come first.
var mapping = []struct {
	target error
	status int
	code   string
}{
	{auth.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
	{auth.ErrForbidden, http.StatusForbidden, "forbidden"},
	{auth.ErrInvalidOperator, http.StatusBadRequest, "invalid_operator"},
	{auth.ErrOperatorExists, http.StatusConflict, "operator_exists"},
	{auth.ErrInvalidTerminal, http.StatusBadRequest, "invalid_terminal_id"},
	{workorder.ErrScanIDReused, http.StatusConflict, "scan_id_reused"},
	{ident.ErrInvalidTrackingNo, http.StatusBadRequest, "invalid_tracking_no"},
	{ident.ErrInvalidSiteID, http.StatusBadRequest, "invalid_site_id"},
	{sorting.ErrMissingScanID, http.StatusBadRequest, "missing_scan_id"},
	{sorting.ErrNoChuteMap, http.StatusConflict, "no_chute_map"},
	{sorting.ErrInvalidChuteMap, http.StatusBadRequest, "invalid_chute_map"},
	{sorting.ErrVersionConflict, http.StatusPreconditionFailed, "version_conflict"},
	{sorting.ErrSitesUnavailable, http.StatusServiceUnavailable, "dependency_unavailable"},
	{sorting.ErrNoFlow, http.StatusConflict, "no_flow"},
	{sorting.ErrNotFound, http.StatusNotFound, "not_found"},
	{sorting.ErrInvalidRule, http.StatusBadRequest, "invalid_release_rule"},
	{sorting.ErrRuleConflict, http.StatusPreconditionFailed, "version_conflict"},
	{sorting.ErrMatchRateTooLow, http.StatusConflict, "match_rate_too_low"},
	{sorting.ErrReasonRequired, http.StatusBadRequest, "reason_required"},
	{sorting.ErrMismatchNotFound, http.StatusNotFound, "not_found"},
	// Packing and handover.
	{packing.ErrOtherStation, http.StatusForbidden, "forbidden"},
	{packing.ErrMissingScanID, http.StatusBadRequest, "missing_scan_id"},
	{packing.ErrInvalidNextHop, http.StatusBadRequest, "invalid_next_hop"},
	{packing.ErrUnknownNextHop, http.StatusBadRequest, "unknown_next_hop"},
	{packing.ErrWeightOutOfBounds, http.StatusBadRequest, "invalid_weight"},
	{packing.ErrInvalidBagStatus, http.StatusBadRequest, "invalid_status"},
	{packing.ErrInvalidHandover, http.StatusBadRequest, "invalid_handover"},
	{packing.ErrUnknownTrip, http.StatusBadRequest, "unknown_trip"},
	{packing.ErrBagNotFound, http.StatusNotFound, "bag_not_found"},
	{packing.ErrNotInBag, http.StatusNotFound, "not_in_bag"},
	{packing.ErrHandoverNotFound, http.StatusNotFound, "handover_not_found"},
	{packing.ErrNotSorted, http.StatusConflict, "not_sorted"},
	{packing.ErrWrongNextHop, http.StatusConflict, "wrong_next_hop"},
	{packing.ErrAlreadyBagged, http.StatusConflict, "already_bagged"},
	{packing.ErrBagSealed, http.StatusConflict, "bag_sealed"},
	{packing.ErrBagEmpty, http.StatusConflict, "bag_empty"},
	{packing.ErrBagNotSealed, http.StatusConflict, "bag_not_sealed"},
	{packing.ErrTripOtherStation, http.StatusConflict, "trip_other_station"},
	{packing.ErrHandoverClosed, http.StatusConflict, "handover_closed"},
	{packing.ErrHandoverEmpty, http.StatusConflict, "handover_empty"},
	{packing.ErrBagOnHandover, http.StatusConflict, "bag_on_handover"},
	{packing.ErrNotOnTrip, http.StatusConflict, "next_hop_not_on_trip"},
	{packing.ErrDependencyUnavailable, http.StatusServiceUnavailable, "dependency_unavailable"},
	// Tracking relay (ops).
	{relay.ErrNotFound, http.StatusNotFound, "event_not_found"},
}

// detailer is a domain error that carries client-safe facts about a
// refusal (which bag holds the parcel); they go out as error.details.
type detailer interface {
	error
	Details() map[string]any
}

type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// toAPIError classifies err.
func toAPIError(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	for _, m := range mapping {
		if errors.Is(err, m.target) {
			msg := m.target.Error()
			if m.status < 500 {
				msg = err.Error() // a client's mistake: the wrapped detail helps them fix it
			}
			apiErr := &Error{Status: m.status, Code: m.code, Message: msg}
			if d, ok := errors.AsType[detailer](err); ok && m.status < 500 {
				apiErr.Details = d.Details()
			}
			if m.status == http.StatusServiceUnavailable {
				apiErr.RetryAfter = time.Second
			}
			return apiErr
		}
	}
	if f, ok := fault.As(err); ok && f.Kind != fault.Internal {
		status := map[fault.Kind]int{fault.Invalid: http.StatusBadRequest, fault.NotFound: http.StatusNotFound,
			fault.Conflict: http.StatusConflict, fault.Precondition: http.StatusPreconditionFailed,
			fault.Forbidden: http.StatusForbidden, fault.Unauthenticated: http.StatusUnauthorized,
			fault.Unavailable: http.StatusServiceUnavailable}[f.Kind]
		return &Error{Status: status, Code: f.Code, Message: f.Msg, Details: f.Details}
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && (pgErr.Code == "22021" || pgErr.Code == "22P05") {
		// Text a client sent that PostgreSQL cannot store (a NUL, bytes
		// that are not UTF-8, in a path, query or body value): the
		// statement failed, nothing was written.
		return &Error{Status: http.StatusBadRequest, Code: "invalid_text", Message: "text values must be UTF-8 without NUL characters"}
	}
	if dbfail.IsUnavailable(err) {
		return &Error{Status: http.StatusServiceUnavailable, Code: "database_unavailable",
			Message: "the database is not reachable; retry shortly", RetryAfter: time.Second}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Status: http.StatusServiceUnavailable, Code: "timeout", Message: "the request took too long; retry"}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
}

func writeError(w http.ResponseWriter, r *http.Request, log *zap.Logger, err error) {
	apiErr := toAPIError(err)
	if apiErr.Status >= 500 {
		log.Error("request failed", zap.String("request_id", requestID(r.Context())), zap.Error(err))
	}
	if apiErr.RetryAfter > 0 {
		secs := int((apiErr.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	setErrorCode(r.Context(), apiErr.Code)
	writeJSON(w, apiErr.Status, errorBody{Error: errorPayload{Code: apiErr.Code, Message: apiErr.Message, Details: apiErr.Details}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeRawJSON writes a stored response body exactly as it was first sent.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
