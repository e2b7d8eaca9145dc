// Package grpcserver is the station's gRPC front door for machines: the server
// with health and reflection, and the interceptor chain (recovery, metrics,
// access log, sorter authentication). Services (the sorter API) register on
// it; it holds no business logic.
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/logging"
)

// Authenticator resolves a machine credential sent as gRPC metadata.
type Authenticator interface {
	AuthenticateSorter(ctx context.Context, key string) (auth.Principal, error)
}

// Server wraps a grpc.Server with health and the interceptor chain.
type Server struct {
	GRPC   *grpc.Server
	health *health.Server
	log    *zap.Logger
}

// Options configure the server.
type Options struct {
	Log      *zap.Logger
	Registry prometheus.Registerer // nil: no metrics
	Auth     Authenticator         // nil: every authenticated method is refused
	Extra    []grpc.ServerOption   // TLS credentials and the like
	// QuietMethods (full method names) are logged at debug level when they
	// succeed: the belt's Resolve runs thousands of times a second, and a
	// log line each would cost more than the answer.
	QuietMethods []string
	// StreamRecheck is how often an open stream's credentials are checked
	// again, so that a revoked or rotated key does not keep a stream it
	// opened; 0 checks only when the stream opens.
	StreamRecheck time.Duration
}

// publicMethods need no credentials: probes and service discovery.
func isPublic(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

// New builds the server. Keepalive enforcement is deliberate: sorters keep
// long-lived streams, so pings every 10 s are allowed even without an active
// stream, but a client pinging faster is cut off instead of burning CPU.
func New(o Options) *Server {
	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1})))
	if o.Registry != nil {
		o.Registry.MustRegister(metrics)
	}
	recov := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		o.Log.Error("panic in gRPC handler", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	a := &authInterceptor{auth: o.Auth, recheck: o.StreamRecheck}
	l := &logInterceptor{log: o.Log, security: logging.Security(o.Log), quiet: map[string]bool{}}
	for _, m := range o.QuietMethods {
		l.quiet[m] = true
	}
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 15 * time.Minute, Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(recov),
			metrics.UnaryServerInterceptor(),
			l.unary,
			a.unary,
		),
		grpc.ChainStreamInterceptor(
			recovery.StreamServerInterceptor(recov),
			metrics.StreamServerInterceptor(),
			l.stream,
			a.stream,
		),
	}
	opts = append(opts, grpc.ForceServerCodecV2(newFrameCodec()))
	opts = append(opts, o.Extra...)
	g := grpc.NewServer(opts...)
	h := health.NewServer()
	healthpb.RegisterHealthServer(g, h)
	reflection.Register(g)
	return &Server{GRPC: g, health: h, log: o.Log}
}

// SetServing flips the overall and per-service health status.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_SERVING
	if !serving {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus("", st)
	for name := range s.GRPC.GetServiceInfo() {
		s.health.SetServingStatus(name, st)
	}
}

// Serve accepts connections on lis until Stop.
func (s *Server) Serve(lis net.Listener) error {
	s.SetServing(true)
	if err := s.GRPC.Serve(lis); err != nil {
		return fmt.Errorf("grpc serve: %w", err)
	}
	return nil
}

// Shutdown reports NOT_SERVING, lets in-flight RPCs and streams finish, and
// falls back to a hard stop when the grace runs out.
func (s *Server) Shutdown(ctx context.Context) {
	s.SetServing(false)
	done := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("gRPC grace expired; stopping open streams")
		s.GRPC.Stop()
		<-done
	}
}

type authInterceptor struct {
	auth    Authenticator
	recheck time.Duration
}

// errKeyRefused ends a stream whose key was refused when checked again.
var errKeyRefused = errors.New("sorter key refused on recheck")

// credentials is the key a call presents, or "". It reads the two keys
// alone: metadata.FromIncomingContext would copy all of the call's metadata
// on every Resolve.
func credentials(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, "x-sorter-key"); len(v) > 0 {
		return v[0]
	}
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) > 0 {
		if scheme, tok, ok := strings.Cut(v[0], " "); ok && strings.EqualFold(scheme, "Bearer") {
			return tok
		}
	}
	return ""
}

func (a *authInterceptor) authenticate(ctx context.Context, method string) (context.Context, error) {
	if isPublic(method) {
		return ctx, nil
	}
	key := credentials(ctx)
	if key == "" || a.auth == nil {
		return nil, status.Error(codes.Unauthenticated, "sorter credentials required (metadata x-sorter-key)")
	}
	p, err := a.auth.AuthenticateSorter(ctx, key)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return nil, status.Error(codes.Unauthenticated, "invalid sorter credentials")
	case err != nil:
		// The key could not be checked (PostgreSQL out of reach, say): the
		// machine must retry, not conclude that its key is bad.
		return nil, status.Error(codes.Unavailable, "sorter credentials cannot be checked now; retry")
	}
	if c, ok := ctx.Value(callerKey{}).(*caller); ok {
		c.sorter = p.ID
	}
	return auth.WithPrincipal(ctx, p), nil
}

func (a *authInterceptor) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (a *authInterceptor) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	if a.recheck <= 0 || isPublic(info.FullMethod) {
		return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
	// A sorter's stream lives for a shift: its key is checked again while
	// it is open, and a refused key (revoked, rotated) ends the stream as
	// it would have refused a new call. A key that cannot be checked (the
	// database out of reach) keeps the stream: the belt must not stop for
	// that.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(a.recheck)
		defer t.Stop()
		key := credentials(ctx)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := a.auth.AuthenticateSorter(ctx, key); errors.Is(err, auth.ErrUnauthenticated) {
				cancel(errKeyRefused)
				return
			}
		}
	}()
	err = h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	if errors.Is(context.Cause(ctx), errKeyRefused) {
		return status.Error(codes.Unauthenticated, "sorter credentials no longer valid (key revoked or rotated); the stream is closed")
	}
	return err
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

type logInterceptor struct {
	log      *zap.Logger
	security *zap.Logger     // refusals: never sampled
	quiet    map[string]bool // read-only after New
}

// callerKey carries a *caller from the log interceptor (outer) to the auth
// interceptor (inner): the principal auth finds lives in an inner context
// the log line never sees, yet a refusal must be logged with who made it.
type callerKey struct{}

type caller struct{ sorter string } // set by auth before the handler runs

func (l *logInterceptor) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	c := &caller{}
	resp, err := h(context.WithValue(ctx, callerKey{}, c), req)
	l.done(c, info.FullMethod, start, err)
	return resp, err
}

func (l *logInterceptor) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	c := &caller{}
	err := h(srv, &ctxStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), callerKey{}, c)})
	l.done(c, info.FullMethod, start, err)
	return err
}

// done logs one line per RPC; health checks are logged at debug level only,
// since probes would drown the log.
func (l *logInterceptor) done(c *caller, method string, start time.Time, err error) {
	quiet := isPublic(method) || (err == nil && l.quiet[method])
	if quiet && !l.log.Core().Enabled(zap.DebugLevel) {
		return // nothing to build: the line would be dropped
	}
	code := status.Code(err)
	fields := []zap.Field{zap.String("method", method), zap.String("code", code.String()), zap.Duration("duration", time.Since(start))}
	if c.sorter != "" {
		fields = append(fields, zap.String("sorter", c.sorter))
	}
	if err != nil {
		fields = append(fields, zap.String("error", status.Convert(err).Message()))
	}
	if code == codes.Unauthenticated || code == codes.PermissionDenied {
		// A refused machine (bad key, another station's sorter): a
		// security line, never sampled. The key itself is never logged.
		l.security.Warn("grpc request", fields...)
		return
	}
	if quiet {
		l.log.Debug("grpc request", fields...)
		return
	}
	l.log.Info("grpc request", fields...)
}
