package httpapi

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/belt/decisionlog"
	"github.com/expresshub/station/sorting/whatif"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/floor"
	"github.com/expresshub/station/station/logging"
	"github.com/expresshub/station/station/ratelimit"
	"github.com/expresshub/station/workorder"
)

// Config is what the HTTP edge needs from the station configuration.
type Config struct {
	MaxBodyBytes      int64
	LoginPerMinute    int
	RequestsPerSecond int // per operator
	// TerminalRequestsPerSecond limits each terminal named at login,
	// whoever is logged in on it; 0 turns the terminal limit off.
	TerminalRequestsPerSecond int
	// RequestTimeout is every request's server-side deadline; it reaches
	// the database through the request's context. 0: none.
	RequestTimeout time.Duration
}

// Check is one readiness probe: nil when the dependency is usable.
type Check func(ctx context.Context) error

// Deps are the domain services the routes call. Each is built once in main.
type Deps struct {
	Log      *zap.Logger
	Auth     *auth.Service
	Limiter  *ratelimit.Limiter
	Registry *prometheus.Registry // served on /metrics
	Ready    map[string]Check     // readiness checks by name: what the station cannot work without
	// Optional are checks whose failure leaves the station ready but
	// degraded (Redis), by name.
	Optional map[string]Check
	Sorting  *sorting.Service
	Releases *sorting.Releases
	Packing  *packing.Service  // bags and handovers
	Floor    *floor.Floor      // bags under chutes, the supervisors' live floor
	Outbox   *workorder.Outbox // the tracking outbox, for the ops API
	Whatif   *whatif.Replayer  // what-if replays; nil: the route answers 404
	// Decisions are the belt's recorded decisions, for the per-sorter report.
	Decisions *decisionlog.Recorder
}

// Server holds the router and its dependencies.
type Server struct {
	cfg           Config
	log           *zap.Logger
	security      *zap.Logger // refusals, logins, rule changes: never sampled
	auth          *auth.Service
	limiter       *ratelimit.Limiter
	registry      *prometheus.Registry
	metrics       *httpMetrics
	ready         map[string]Check
	optional      map[string]Check
	draining      atomic.Bool
	operatorLimit ratelimit.Limit
	terminalLimit ratelimit.Limit // zero Rate: no terminal limit
	handler       http.Handler
	sorting       *sorting.Service
	releases      *sorting.Releases
	packing       *packing.Service
	floor         *floor.Floor
	outbox        *workorder.Outbox
	whatifs       *whatif.Replayer
	decisions     *decisionlog.Recorder
}

// New builds the HTTP edge.
func New(cfg Config, d Deps) *Server {
	s := &Server{
		cfg:           cfg,
		log:           d.Log,
		security:      logging.Security(d.Log),
		auth:          d.Auth,
		limiter:       d.Limiter,
		registry:      d.Registry,
		ready:         d.Ready,
		optional:      d.Optional,
		sorting:       d.Sorting,
		releases:      d.Releases,
		packing:       d.Packing,
		floor:         d.Floor,
		outbox:        d.Outbox,
		whatifs:       d.Whatif,
		decisions:     d.Decisions,
		operatorLimit: ratelimit.PerSecond(cfg.RequestsPerSecond),
	}
	if cfg.TerminalRequestsPerSecond > 0 {
		s.terminalLimit = ratelimit.PerSecond(cfg.TerminalRequestsPerSecond)
	}
	var reg prometheus.Registerer
	if d.Registry != nil {
		reg = d.Registry
	}
	s.metrics = newHTTPMetrics(reg)
	if reg != nil {
		reg.MustRegister(degradedGauges(d.Optional)...)
	}
	mux := http.NewServeMux()
	s.routes(mux)
	s.handler = s.observe(s.recoverPanics(s.limitBody(mux)))
	return s
}

// Handler is the root handler with every middleware applied.
func (s *Server) Handler() http.Handler { return s.handler }

// Drain makes readiness fail so load balancers stop sending traffic while
// in-flight requests finish.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) metricsHandler() http.Handler {
	if s.registry == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry})
}
