package httpapi

import (
	"context"
	"net/http"
	"sort"
	"time"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers 503 while draining or while any dependency check fails, and
// lists each check so an operator sees which one.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := !s.draining.Load()
	if !ok {
		checks["draining"] = "shutting down"
	}
	names := make([]string, 0, len(s.ready))
	for n := range s.ready {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := s.ready[n](ctx); err != nil {
			ok = false
			checks[n] = err.Error()
		} else {
			checks[n] = "ok"
		}
	}
	status := http.StatusOK
	word := "ready"
	if !ok {
		status = http.StatusServiceUnavailable
		word = "not_ready"
	}
	writeJSON(w, status, map[string]any{"status": word, "checks": checks})
	return nil
}
