package httpapi

import (
	"net/http"
	"time"
)

// sorterDecisions is the per-sorter report of the belt's decisions over a
// window: late-decision rate, source mix, recirculations after a late
// answer, latency p50 and p99. from is RFC 3339 or a duration back from now
// ("1h", the default); to is RFC 3339, now by default.
func (s *Server) sorterDecisions(w http.ResponseWriter, r *http.Request) error {
	station, err := s.pathStation(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	now := time.Now()
	to := now
	if v := q.Get("to"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return Errorf(http.StatusBadRequest, "invalid_window", "to must be RFC 3339")
		}
		to = t
	}
	from := to.Add(-time.Hour)
	if v := q.Get("from"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			from = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, v); err == nil {
			from = t
		} else {
			return Errorf(http.StatusBadRequest, "invalid_window", "from must be RFC 3339 or a duration like 1h")
		}
	}
	rep, err := s.decisions.Report(r.Context(), station, from, to)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
