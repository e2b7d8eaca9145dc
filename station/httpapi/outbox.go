package httpapi

import (
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/expresshub/station/workorder"
)

// outboxStats is the ops console's view of the tracking outbox.
func (s *Server) outboxStats(w http.ResponseWriter, r *http.Request) error {
	st, err := s.outbox.Stats(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// deadEvents lists dead events, oldest first; page with ?after_id= (the
// last id of the previous page) and ?limit= (1..500, default 100).
func (s *Server) deadEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	after, err := queryInt(q.Get("after_id"), 0)
	if err != nil || after < 0 {
		return Errorf(http.StatusBadRequest, "invalid_query", "after_id must be a non-negative integer")
	}
	limit, err := queryInt(q.Get("limit"), 100)
	if err != nil || limit < 1 || limit > workorder.MaxOutboxPage {
		return Errorf(http.StatusBadRequest, "invalid_query", "limit must be between 1 and 500")
	}
	events, err := s.outbox.Dead(r.Context(), after, int(limit))
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
		s.log.Info("outbox event re-driven", zap.String("request_id", requestID(r.Context())), zap.String("operator", p.ID),
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
