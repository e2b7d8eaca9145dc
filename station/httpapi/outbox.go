package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/expresshub/station/workorder"
)

// failingShown is how many failing pending events the outbox summary
// lists; the rest are paged through GET /api/v1/ops/outbox/pending.
const failingShown = 50

// outboxStats is the ops console's view of the tracking outbox: the counts,
// and the oldest pending events that failed, each with its last error, so a
// failure shows before it turns into a dead letter.
func (s *Server) outboxStats(w http.ResponseWriter, r *http.Request) error {
	st, err := s.outbox.Stats(r.Context())
	if err != nil {
		return err
	}
	failing, err := s.outbox.Pending(r.Context(), 0, failingShown, true)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		workorder.Stats
		FailingEvents []workorder.OutboxEvent `json:"failing_events"`
	}{st, failing})
	return nil
}

// pendingEvents lists pending events with their last error, oldest first;
// ?failing=true keeps those that failed at least once; pages as deadEvents.
func (s *Server) pendingEvents(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := pageQuery(r)
	if err != nil {
		return err
	}
	failing := false
	switch r.URL.Query().Get("failing") {
	case "", "false":
	case "true":
		failing = true
	default:
		return Errorf(http.StatusBadRequest, "invalid_query", "failing must be true or false")
	}
	events, err := s.outbox.Pending(r.Context(), after, limit, failing)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Events []workorder.OutboxEvent `json:"events"`
	}{events})
	return nil
}

func pageQuery(r *http.Request) (after int64, limit int, err error) {
	q := r.URL.Query()
	after, err = queryInt(q.Get("after_id"), 0)
	if err != nil || after < 0 {
		return 0, 0, Errorf(http.StatusBadRequest, "invalid_query", "after_id must be a non-negative integer")
	}
	l, err := queryInt(q.Get("limit"), 100)
	if err != nil || l < 1 || l > workorder.MaxOutboxPage {
		return 0, 0, Errorf(http.StatusBadRequest, "invalid_query", "limit must be between 1 and 500")
	}
	return after, int(l), nil
}

// opsActionRequest is the body of a bulk outbox action; an empty or
// missing body acts on every eligible event.
type opsActionRequest struct {
	IDs    []int64 `json:"ids"`
	Reason string  `json:"reason"`
}

// maxActionIDs bounds the ids one bulk request may name.
const maxActionIDs = 10_000

func (s *Server) opsAction(r *http.Request) (workorder.OpsAction, error) {
	var req opsActionRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return workorder.OpsAction{}, err
		}
	}
	if len(req.IDs) > maxActionIDs {
		return workorder.OpsAction{}, Errorf(http.StatusBadRequest, "invalid_ids", "at most 10000 ids per request; omit ids to act on every event")
	}
	for _, id := range req.IDs {
		if id < 1 {
			return workorder.OpsAction{}, Errorf(http.StatusBadRequest, "invalid_ids", "event ids are positive integers")
		}
	}
	reason := strings.TrimSpace(req.Reason)
	if len(reason) > 500 {
		return workorder.OpsAction{}, Errorf(http.StatusBadRequest, "invalid_reason", "reason is at most 500 characters")
	}
	return workorder.OpsAction{Actor: principal(r).ID, Reason: reason, IDs: req.IDs}, nil
}

// retryPendingNow makes pending events that wait for their backoff due at
// once (all of them, or the ids given), audited.
func (s *Server) retryPendingNow(w http.ResponseWriter, r *http.Request) error {
	return s.bulkOutboxAction(w, r, "outbox events retried now", "retried", s.outbox.RetryNow)
}

// redriveDead re-drives dead events in bulk (all of them, or the ids
// given), audited.
func (s *Server) redriveDead(w http.ResponseWriter, r *http.Request) error {
	return s.bulkOutboxAction(w, r, "outbox dead events re-driven", "redriven", s.outbox.RedriveDead)
}

// bulkOutboxAction runs one audited ops action on the outbox and answers
// how many events it changed under key. Like every ops change, its log
// line is a security line: never sampled.
func (s *Server) bulkOutboxAction(w http.ResponseWriter, r *http.Request, msg, key string,
	act func(context.Context, workorder.OpsAction) (int64, error)) error {
	a, err := s.opsAction(r)
	if err != nil {
		return err
	}
	n, err := act(r.Context(), a)
	if err != nil {
		return err
	}
	s.security.Info(msg, zap.String("request_id", requestID(r.Context())), zap.String("operator", a.Actor),
		zap.Int("asked", len(a.IDs)), zap.Int64(key, n), zap.String("reason", a.Reason))
	writeJSON(w, http.StatusOK, map[string]int64{key: n})
	return nil
}

// outboxAudit lists ops actions on the outbox, newest first.
func (s *Server) outboxAudit(w http.ResponseWriter, r *http.Request) error {
	entries, err := s.outbox.Audit(r.Context(), 200)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
	return nil
}

// deadEvents lists dead events, oldest first; page with ?after_id= (the
// last id of the previous page) and ?limit= (1..500, default 100).
func (s *Server) deadEvents(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := pageQuery(r)
	if err != nil {
		return err
	}
	events, err := s.outbox.Dead(r.Context(), after, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Events []workorder.OutboxEvent `json:"events"`
	}{events})
	return nil
}

// retryDeadEvent re-drives one dead event. Retrying an event that is no
// longer dead is harmless and says so (redriven false).
func (s *Server) retryDeadEvent(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return Errorf(http.StatusBadRequest, "invalid_id", "the event id is a positive integer")
	}
	p := principal(r)
	e, redriven, err := s.outbox.Retry(r.Context(), id, p.ID)
	if err != nil {
		return err
	}
	if redriven {
		s.security.Info("outbox event re-driven", zap.String("request_id", requestID(r.Context())), zap.String("operator", p.ID),
			zap.Int64("outbox_id", e.ID), zap.String("event_id", e.EventID), zap.String("tracking_no", e.TrackingNo))
	}
	writeJSON(w, http.StatusOK, struct {
		Event    workorder.OutboxEvent `json:"event"`
		Redriven bool                  `json:"redriven"`
	}{e, redriven})
	return nil
}

func queryInt(s string, def int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	return strconv.ParseInt(s, 10, 64)
}
