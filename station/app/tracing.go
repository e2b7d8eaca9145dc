package app

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/expresshub/station/station/tracing"
)

// startTracing sets a.tracer: the provider the options name, or the one
// otel.* builds (shut down with the app, last), or nil when tracing is off.
// With tracing off nothing below instruments anything, so the request
// paths run exactly as without OpenTelemetry.
func (a *App) startTracing(ctx context.Context) error {
	if a.opts.TracerProvider != nil {
		a.tracer = a.opts.TracerProvider
		return nil
	}
	c := a.cfg.OTel
	tp, err := tracing.New(ctx, tracing.Config{Endpoint: c.Endpoint, Insecure: c.Insecure, SampleRatio: c.SampleRatio, ServiceName: c.ServiceName})
	if err != nil || tp == nil {
		return err
	}
	a.tracer = tp
	a.closers = append(a.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			a.log.Warn("otel: spans not flushed at shutdown", zap.Error(err))
		}
	})
	a.log.Info("tracing: exporting spans over OTLP", zap.String("endpoint", c.Endpoint), zap.Float64("sample_ratio", c.SampleRatio))
	return nil
}

// pgxTracer is the pool's tracer: the acquire deadline (acquire.go), and
// with tracing on, a span per query inside a traced request. otelpgx
// comes first so the acquire deadline's context is the one pgxpool ends.
func (a *App) pgxTracer() pgx.QueryTracer {
	deadline := acquireDeadline{d: a.cfg.Database.AcquireTimeout}
	if a.tracer == nil {
		return deadline
	}
	// otelpgx starts no span without a recording parent: the relay's and
	// the jobs' queries open no trace of their own.
	return multitracer.New(otelpgx.NewTracer(otelpgx.WithTracerProvider(a.tracer), otelpgx.WithTrimSQLInSpanName(),
		otelpgx.WithDisableConnectionDetailsInAttributes()), deadline)
}

// traceRedis adds a span per Redis command inside a traced request.
func (a *App) traceRedis() error {
	if a.tracer == nil {
		return nil
	}
	return redisotel.InstrumentTracing(a.rdb, redisotel.WithTracerProvider(tracing.ChildOnly(a.tracer)),
		redisotel.WithCallerEnabled(false), redisotel.WithDialFilter(true))
}

// grpcClientTracing gives each downstream call a span inside a traced
// request (or relay batch) and sends the trace context in its metadata.
func (a *App) grpcClientTracing() []grpc.DialOption {
	if a.tracer == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(tracing.ChildOnly(a.tracer)), otelgrpc.WithPropagators(tracing.Propagator())))}
}

// grpcServerTracing gives each call of the sorting machine a span,
// continuing the caller's trace when its metadata carries one.
func (a *App) grpcServerTracing() []grpc.ServerOption {
	if a.tracer == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(a.tracer), otelgrpc.WithPropagators(tracing.Propagator())))}
}

// traceHTTP gives each API request a span, continuing the caller's trace
// when it sends a traceparent header. Probes, metrics and the web UI's
// files are not traced.
func (a *App) traceHTTP(h http.Handler) http.Handler {
	if a.tracer == nil {
		return h
	}
	return otelhttp.NewHandler(h, "http",
		otelhttp.WithTracerProvider(a.tracer),
		otelhttp.WithPropagators(tracing.Propagator()),
		otelhttp.WithFilter(func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern
			}
			return "HTTP " + r.Method
		}))
}
