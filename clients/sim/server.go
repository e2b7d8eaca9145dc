package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// Simulator serves the six downstream services and SimAdminService on one
// gRPC server. A Simulator serves once: after Stop, build a new one.
type Simulator struct {
	cfg      Config
	log      *slog.Logger
	fx       *Fixtures
	srv      *grpc.Server
	health   *health.Server
	started  time.Time
	stopping chan struct{}
	stopOnce sync.Once
	serving  sync.WaitGroup // Serve calls started by Start

	mu      sync.Mutex
	lis     net.Listener
	profile LatencyProfile
	faults  map[string]*faultState
	calls   map[string]int64
	rng     *rand.Rand
	tokens  map[string]time.Time // token -> expiry
	bags    map[string]string    // request id -> bag id
	bagSeq  int64
	events  eventLog
}

type faultState struct {
	Fault
	n int64 // calls seen since the fault was set
}

// New builds a simulator from a config; it serves nothing until Serve or
// Start. A nil logger discards.
func New(cfg Config, log *slog.Logger) (*Simulator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 5 * time.Minute
	}
	prof, err := Profile(cfg.Latency)
	if err != nil {
		return nil, err
	}
	if prof, err = prof.With(cfg.LatencyOverrides); err != nil {
		return nil, err
	}
	s := &Simulator{
		cfg:      cfg,
		log:      log,
		fx:       NewFixtures(cfg.Seed),
		started:  time.Now(),
		stopping: make(chan struct{}),
		profile:  prof,
		faults:   make(map[string]*faultState),
		calls:    make(map[string]int64),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x1a7e)),
		tokens:   make(map[string]time.Time),
		bags:     make(map[string]string),
		events:   newEventLog(),
	}
	for m, f := range cfg.Faults {
		if err := s.SetFault(m, f); err != nil {
			return nil, err
		}
	}
	s.srv = grpc.NewServer(grpc.ChainUnaryInterceptor(s.intercept))
	downstreamv1.RegisterOrderCenterServiceServer(s.srv, orderCenter{s: s})
	downstreamv1.RegisterBasicServiceServer(s.srv, basic{s: s})
	downstreamv1.RegisterFinanceServiceServer(s.srv, finance{s: s})
	downstreamv1.RegisterDeliveryServiceServer(s.srv, delivery{s: s})
	downstreamv1.RegisterContainerServiceServer(s.srv, container{s: s})
	downstreamv1.RegisterLinehaulServiceServer(s.srv, linehaul{s: s})
	downstreamv1.RegisterSimAdminServiceServer(s.srv, admin{s: s})
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.srv, s.health)
	reflection.Register(s.srv)
	return s, nil
}

// Fixtures returns the world the simulator plays.
func (s *Simulator) Fixtures() *Fixtures { return s.fx }

// Serve answers on lis until ctx ends or Stop is called, then stops
// gracefully. It returns nil after a stop.
func (s *Simulator) Serve(ctx context.Context, lis net.Listener) error {
	s.mu.Lock()
	if s.lis != nil {
		s.mu.Unlock()
		return errors.New("sim: already serving")
	}
	s.lis = lis
	s.mu.Unlock()
	select {
	case <-s.stopping:
		return nil
	default:
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-done:
		}
	}()
	s.log.Info("downstream simulator serving", "addr", lis.Addr().String(), "seed", s.cfg.Seed, "latency", s.profile.Name)
	if err := s.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("sim: serve: %w", err)
	}
	return nil
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves in the
// background until Stop.
func (s *Simulator) Start(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sim: listen %s: %w", addr, err)
	}
	s.serving.Add(1)
	errc := make(chan error, 1)
	go func() {
		defer s.serving.Done()
		errc <- s.Serve(context.Background(), lis)
	}()
	// Serve records the listener before it blocks; wait for that so Addr
	// answers as soon as Start returns.
	for s.Addr() == "" {
		select {
		case err := <-errc:
			_ = lis.Close()
			if err == nil {
				err = errors.New("sim: stopped before serving")
			}
			return err
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// Addr is the address being served, "" before Serve.
func (s *Simulator) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lis == nil {
		return ""
	}
	return s.lis.Addr().String()
}

// Stop ends every pending call (hung and sleeping calls return Unavailable),
// stops serving and waits for Start's goroutine. Safe to call more than once.
func (s *Simulator) Stop() {
	s.stopOnce.Do(func() {
		close(s.stopping)
		s.health.Shutdown()
		stopped := make(chan struct{})
		go func() {
			s.srv.GracefulStop()
			close(stopped)
		}()
		t := time.NewTimer(2 * time.Second)
		defer t.Stop()
		select {
		case <-stopped:
		case <-t.C:
			s.srv.Stop()
			<-stopped
		}
	})
	s.serving.Wait()
}

// intercept plays latency and faults for the downstream services and counts
// their calls; admin, health and reflection calls pass untouched.
func (s *Simulator) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, "/downstream.v1.") || strings.HasPrefix(info.FullMethod, "/downstream.v1.SimAdminService/") {
		return next(ctx, req)
	}
	delay, fault, fail := s.admit(info.FullMethod)
	if err := s.sleep(ctx, delay); err != nil {
		return nil, err
	}
	if fault.Hang {
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-s.stopping:
			return nil, status.Error(codes.Unavailable, "sim: stopping")
		}
	}
	if fail {
		code := fault.Code
		if code == codes.OK {
			code = codes.Unavailable
		}
		return nil, status.Errorf(code, "sim: injected fault on %s", info.FullMethod)
	}
	return next(ctx, req)
}

// admit counts a call and decides, under one lock, its latency and fault.
func (s *Simulator) admit(method string) (time.Duration, Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	l := s.profile.For(method)
	d := l.Base
	if l.Jitter > 0 {
		d += time.Duration(s.rng.Int64N(int64(l.Jitter) + 1))
	}
	fs, ok := s.faults[method]
	if !ok {
		return d, Fault{}, false
	}
	fs.n++
	r := fs.ErrorRate
	fail := r > 0 && math.Ceil(float64(fs.n)*r) > math.Ceil(float64(fs.n-1)*r)
	return d + fs.AddedLatency, fs.Fault, fail
}

// sleep waits d, returning early with the caller's status when it gives up.
func (s *Simulator) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-s.stopping:
		return status.Error(codes.Unavailable, "sim: stopping")
	}
}

// SetFault replaces the fault of a method (short or full name).
func (s *Simulator) SetFault(method string, f Fault) error {
	full, err := FullMethod(method)
	if err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[full] = &faultState{Fault: f}
	s.log.Info("sim fault set", "method", full, "error_rate", f.ErrorRate, "code", f.Code.String(), "hang", f.Hang, "added_latency", f.AddedLatency)
	return nil
}

// ClearFaults removes the fault of a method, or every fault when method is "".
func (s *Simulator) ClearFaults(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if method == "" {
		clear(s.faults)
		return nil
	}
	full, err := FullMethod(method)
	if err != nil {
		return err
	}
	delete(s.faults, full)
	return nil
}

// SetLatency replaces the latency profile.
func (s *Simulator) SetLatency(p LatencyProfile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profile = p
}

// Latency returns the current latency profile.
func (s *Simulator) Latency() LatencyProfile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profile
}

// Calls returns how many calls a method (short or full name) received since
// the last reset; every attempt counts, retries and failures included.
func (s *Simulator) Calls(method string) int64 {
	full, err := FullMethod(method)
	if err != nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[full]
}

// CallCounts returns the calls of every method called since the last reset,
// by full name.
func (s *Simulator) CallCounts() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// TotalCalls sums CallCounts.
func (s *Simulator) TotalCalls() int64 {
	var n int64
	for _, v := range s.CallCounts() {
		n += v
	}
	return n
}

// Reset zeroes call counts (and the fault call sequence); with clearEvents it
// also forgets recorded tracking events.
func (s *Simulator) Reset(clearEvents bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	for _, f := range s.faults {
		f.n = 0
	}
	if clearEvents {
		s.events = newEventLog()
	}
}

// TrackingEvents returns the events recorded for a tracking number in
// arrival order (all events when trackingNo is "").
func (s *Simulator) TrackingEvents(trackingNo string) []RecordedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events.list(strings.ToUpper(strings.TrimSpace(trackingNo)))
}

// EventTotals returns how many distinct events were accepted and how many
// duplicates were received, over every tracking number.
func (s *Simulator) EventTotals() (accepted, duplicates int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events.accepted, s.events.duplicates
}
