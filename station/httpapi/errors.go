package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/station/dbfail"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
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

// statusOf maps each kind of domain error to its HTTP status: the one
// place where this edge decides, so a new domain error (fault.New) needs no
// edit here. The code and, for a client's mistake, the message and details
// come from the error itself.
func statusOf(k fault.Kind) int {
	switch k {
	case fault.Invalid:
		return http.StatusBadRequest
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Conflict:
		return http.StatusConflict
	case fault.Precondition:
		return http.StatusPreconditionFailed
	case fault.Forbidden:
		return http.StatusForbidden
	case fault.Unauthenticated:
		return http.StatusUnauthorized
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// toAPIError classifies err: an edge's own *Error as it is; a domain error
// by its kind (fault); then what the database said; anything else is 500
// "internal" with no internal message.
func toAPIError(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	if e, ok := fault.As(err); ok && e.Kind != fault.Internal {
		status := statusOf(e.Kind)
		apiErr := &Error{Status: status, Code: e.Code, Message: e.Msg}
		if status < 500 {
			// A client's mistake: the wrapped detail helps them fix it.
			apiErr.Message, apiErr.Details = err.Error(), e.Details
		}
		if status == http.StatusServiceUnavailable {
			apiErr.RetryAfter = time.Second
		}
		return apiErr
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
	if apiErr.Status >= 500 && r.Context().Err() != nil && errors.Is(context.Cause(r.Context()), errRequestDeadline) {
		// The request's own deadline ran out. What waits without a bound
		// of its own is the database (downstream calls and Redis have
		// tighter ones), so the client is told to retry with its scan id.
		apiErr = &Error{Status: http.StatusServiceUnavailable, Code: "database_unavailable",
			Message: "the database did not answer in time; retry shortly", RetryAfter: time.Second}
	}
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

// writeJSON encodes v before the status goes out: a value that cannot be
// encoded (a time past year 9999, a NaN) is a 500 with an error body, never
// a 200 with an empty one the client takes for an answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":{"code":"internal","message":"internal error: the answer could not be encoded"}}`+"\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeRawJSON writes a stored response body exactly as it was first sent.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
