package httpapi

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// probeTimeout bounds each dependency check of a probe or a scrape.
const probeTimeout = 2 * time.Second

// readyz answers 503 while draining or while a check the station cannot
// work without fails (PostgreSQL, migrations). A failing optional check
// (Redis) leaves it ready, reported as "degraded": losing Redis costs speed,
// not correctness, and a load balancer that took every instance out of
// service for it would turn a slowdown into an outage. Every check is
// listed so an operator sees which one failed.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	checks := map[string]string{}
	ok := !s.draining.Load()
	if !ok {
		checks["draining"] = "shutting down"
	}
	for _, n := range sortedNames(s.ready) {
		if err := s.ready[n](ctx); err != nil {
			ok = false
			checks[n] = err.Error()
		} else {
			checks[n] = "ok"
		}
	}
	degraded := []string{}
	for _, n := range sortedNames(s.optional) {
		if err := s.optional[n](ctx); err != nil {
			degraded = append(degraded, n)
			checks[n] = "degraded: " + err.Error()
		} else {
			checks[n] = "ok"
		}
	}
	status, word := http.StatusOK, "ready"
	switch {
	case !ok:
		status, word = http.StatusServiceUnavailable, "not_ready"
	case len(degraded) > 0:
		word = "degraded"
	}
	writeJSON(w, status, map[string]any{"status": word, "checks": checks, "degraded": degraded})
	return nil
}

func sortedNames(m map[string]Check) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// degradedGauges export each optional check as station_degraded{dependency}:
// 1 while it fails, 0 while it passes, checked at every scrape, so an alert
// does not depend on anyone calling /readyz.
func degradedGauges(optional map[string]Check) []prometheus.Collector {
	var cs []prometheus.Collector
	for _, n := range sortedNames(optional) {
		check := optional[n]
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "station_degraded",
			Help:        "1 while an optional dependency (Redis) fails its check: the station serves on, degraded; 0 otherwise.",
			ConstLabels: prometheus.Labels{"dependency": n},
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
			defer cancel()
			if check(ctx) != nil {
				return 1
			}
			return 0
		}))
	}
	return cs
}

// Starting is the whole HTTP edge while the station waits for its database
// at start-up: the process is alive (/healthz 200) but not ready (/readyz
// 503), and every other request is told to retry. A platform that sees the
// port refuse connections would restart a process that is only waiting.
func Starting() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "starting",
			"checks": map[string]string{"postgres": "waiting for the database"}})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: errorPayload{Code: "starting",
			Message: "the station is starting and waits for its database; retry shortly"}})
	})
	return mux
}
