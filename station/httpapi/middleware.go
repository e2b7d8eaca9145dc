package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/ratelimit"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	requestInfoKey
)

// requestInfo collects what the access log prints once per request; inner
// middleware and the error writer fill it in.
type requestInfo struct {
	mu        sync.Mutex
	principal string
	errorCode string
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func setErrorCode(ctx context.Context, code string) {
	if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
		info.mu.Lock()
		info.errorCode = code
		info.mu.Unlock()
	}
}

func setPrincipal(ctx context.Context, id string) {
	if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
		info.mu.Lock()
		info.principal = id
		info.mu.Unlock()
	}
}

// statusRecorder remembers the status code for the access log and metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "station_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "station_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency)
	}
	return m
}

// observe is the outermost middleware: it assigns the request id, logs the
// request exactly once and records metrics. The route is the ServeMux pattern,
// never the raw path, so ids do not explode metric cardinality.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		info := &requestInfo{}
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		ctx = context.WithValue(ctx, requestInfoKey, info)
		ctx, cancel := s.withDeadline(ctx, r)
		defer cancel()
		rec := &statusRecorder{ResponseWriter: w}
		r = r.WithContext(ctx)
		next.ServeHTTP(rec, r)

		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			// The request's span (tracing on) is named by its route, known
			// only now that the mux matched it.
			span.SetName(route)
			span.SetAttributes(attribute.String("http.route", route), attribute.String("station.request_id", id))
		}
		elapsed := time.Since(start)
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Inc()
		s.metrics.latency.WithLabelValues(route, r.Method).Observe(elapsed.Seconds())
		info.mu.Lock()
		fields := []zap.Field{
			zap.String("request_id", id), zap.String("method", r.Method), zap.String("route", route),
			zap.Int("status", rec.status), zap.Duration("duration", elapsed), zap.Int("bytes", rec.bytes),
			zap.String("operator", info.principal), zap.String("remote", clientIP(r)),
		}
		if info.errorCode != "" {
			fields = append(fields, zap.String("error_code", info.errorCode))
		}
		info.mu.Unlock()
		s.log.Info("http request", fields...)
	})
}

// recoverPanics turns a panic into 500 "internal" and logs the stack, so one
// bad request never takes the process down.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", zap.String("request_id", requestID(r.Context())),
					zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
				writeError(w, r, s.log, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// errRequestDeadline is the cause of a request's server-side deadline.
var errRequestDeadline = errors.New("the request's server-side deadline passed")

// withDeadline gives a request its server-side deadline (RequestTimeout).
// It reaches the database through the request's context, so a PostgreSQL
// that stops answering costs a request that long, answered 503, instead of
// a request that hangs past the write timeout while its work may still
// commit. Profiling, which runs as long as it is asked to, has none.
func (s *Server) withDeadline(ctx context.Context, r *http.Request) (context.Context, context.CancelFunc) {
	if s.cfg.RequestTimeout <= 0 || strings.HasPrefix(r.URL.Path, "/debug/pprof/") || strings.HasSuffix(r.URL.Path, "/floor/events") {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, s.cfg.RequestTimeout, errRequestDeadline)
}

// limitBody caps every request body; decodeJSON turns the overflow into 413.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBodyBytes {
			writeError(w, r, s.log, Errorf(http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("body exceeds %d bytes", s.cfg.MaxBodyBytes)))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// HandlerFunc is an HTTP handler that returns its error for one adapter to
// write.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// access says who may call a route.
type access struct {
	public bool
	roles  []auth.Role // empty: any authenticated operator
}

var public = access{public: true}

func roles(r ...auth.Role) access { return access{roles: r} }

var anyOperator = access{}

// handle adapts a HandlerFunc: authentication, role check, per-terminal and
// per-operator rate limits, then the error adapter.
func (s *Server) handle(a access, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.public {
			p, err := s.authenticate(r)
			if err != nil {
				if errors.Is(err, auth.ErrUnauthenticated) {
					// The token itself is a secret: never logged.
					s.security.Warn("refused: unauthenticated", zap.String("request_id", requestID(r.Context())),
						zap.String("client", clientIP(r)), zap.String("route", r.Pattern))
				}
				writeError(w, r, s.log, err)
				return
			}
			setPrincipal(r.Context(), p.ID)
			if len(a.roles) > 0 && !p.HasRole(a.roles...) {
				s.security.Warn("refused: role", zap.String("request_id", requestID(r.Context())),
					zap.String("operator", p.ID), zap.String("role", string(p.Role)), zap.String("route", r.Pattern))
				writeError(w, r, s.log, Errorf(http.StatusForbidden, "forbidden", "your role may not do this"))
				return
			}
			if err := s.allow(r.Context(), p); err != nil {
				writeError(w, r, s.log, err)
				return
			}
			r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		}
		if err := h(w, r); err != nil {
			writeError(w, r, s.log, err)
		}
	})
}

// allow takes one request from the caller's terminal budget, then from the
// operator's. The terminal comes from the session row, never from the
// request, so a client cannot spread its load over made-up terminals; and it
// is checked first, so a request the terminal refuses costs the operator
// nothing. Terminal ids are chosen by clients, hence scoped by station.
func (s *Server) allow(ctx context.Context, p auth.Principal) error {
	limited := func(which string, d ratelimit.Decision) error {
		return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: "too many requests from this " + which + "; slow down", RetryAfter: d.RetryAfter,
			Details: map[string]any{"limit": which}}
	}
	if p.Terminal != "" && s.terminalLimit.Rate > 0 {
		if d := s.limiter.Allow(ctx, "term:"+p.StationID+":"+p.Terminal, s.terminalLimit); !d.Allowed {
			return limited("terminal", d)
		}
	}
	if d := s.limiter.Allow(ctx, "op:"+p.ID, s.operatorLimit); !d.Allowed {
		return limited("operator", d)
	}
	return nil
}

func (s *Server) authenticate(r *http.Request) (auth.Principal, error) {
	token, ok := bearerToken(r)
	if !ok {
		return auth.Principal{}, auth.ErrUnauthenticated
	}
	return s.auth.Authenticate(r.Context(), token)
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// principal returns the caller; routes behind handle always have one.
func principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}

// pathStation is the station a route names in {id}, in its canonical form
// (a typed "sg-h01" is SG-H01, not another station), refused when it is
// another station's.
func (s *Server) pathStation(r *http.Request) (string, error) {
	station, err := s.siteID(r)
	if err != nil {
		return "", err
	}
	return station, s.requireStation(r, station)
}

// requireStation refuses objects of another station (403), logging the
// refusal: object-level authorization, OWASP API1.
func (s *Server) requireStation(r *http.Request, station string) error {
	p := principal(r)
	if p.CanActAt(station) {
		return nil
	}
	s.security.Warn("refused: other station", zap.String("request_id", requestID(r.Context())),
		zap.String("operator", p.ID), zap.String("own_station", p.StationID), zap.String("station", station),
		zap.String("route", r.Pattern))
	return Errorf(http.StatusForbidden, "forbidden", "this object belongs to another station")
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
