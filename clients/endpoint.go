package clients

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// endpoint is what every typed client shares: the service's name, its
// breaker, metrics and deadlines.
type endpoint struct {
	service   string
	breaker   *gobreaker.TwoStepCircuitBreaker[struct{}]
	metrics   *metrics
	deadlines map[string]time.Duration
}

func newEndpoint(service string, cfg Config, m *metrics, log *slog.Logger) *endpoint {
	deadlines := DefaultDeadlines()
	for k, v := range cfg.Deadlines {
		deadlines[k] = v
	}
	bc := cfg.Breaker
	m.breaker.WithLabelValues(service).Set(0)
	return &endpoint{
		service:   service,
		metrics:   m,
		deadlines: deadlines,
		breaker: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:         service,
			MaxRequests:  1,
			Interval:     bc.Window,
			BucketPeriod: bc.Window / 10,
			Timeout:      bc.OpenFor,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= bc.ConsecutiveFailures ||
					(c.Requests >= bc.MinRequests && c.TotalFailures*2 >= c.Requests)
			},
			IsSuccessful: func(err error) bool { return err == nil || !countsAsFailure(status.Code(err)) },
			// A caller that gave up says nothing about the dependency.
			IsExcluded: func(err error) bool { return status.Code(err) == codes.Canceled },
			OnStateChange: func(name string, from, to gobreaker.State) {
				m.breaker.WithLabelValues(name).Set(float64(to))
				log.Warn("downstream circuit breaker", "service", name, "from", from.String(), "to", to.String())
			},
		}),
	}
}

// deadline is the cap of a method.
func (e *endpoint) deadline(method string) time.Duration {
	if d, ok := e.deadlines[method]; ok {
		return d
	}
	return 500 * time.Millisecond
}

// invoke runs one downstream call: under the method's deadline cap (the
// caller's earlier deadline wins), through the breaker, measured. gRPC's
// retry policy (see serviceConfig) acts inside rpc, so the breaker and the
// metrics see one outcome per logical call.
func invoke[Resp any](ctx context.Context, e *endpoint, method string, rpc func(context.Context) (Resp, error)) (Resp, error) {
	var zero Resp
	if err := ctx.Err(); err != nil {
		// Out of time before starting: not the dependency's fault, and no
		// reason to bother it.
		return zero, callError(e.service, method, err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.deadline(method))
	defer cancel()
	start := time.Now()
	done, err := e.breaker.Allow()
	if err != nil {
		e.metrics.observe(e.service, method, "CircuitOpen", 0)
		return zero, callError(e.service, method, err)
	}
	resp, err := rpc(ctx)
	code := status.Code(err)
	if err != nil && code == codes.Unknown {
		// A context error surfacing without a status (rare: before the
		// stream started) still means deadline or cancel.
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code = codes.DeadlineExceeded
		case errors.Is(err, context.Canceled):
			code = codes.Canceled
		}
	}
	if err != nil {
		done(status.Error(code, ""))
	} else {
		done(nil)
	}
	e.metrics.observe(e.service, method, code.String(), time.Since(start))
	if err != nil {
		ce := callError(e.service, method, err)
		ce.Code = code
		return zero, ce
	}
	return resp, nil
}
