package sorterapi

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/expresshub/station/ident"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/belt"
	"github.com/expresshub/station/station/auth"
)

// Belt is what the server asks of package sorting (*belt.Service).
type Belt interface {
	CheckStation(ctx context.Context, station string) error
	PreSort(ctx context.Context, station string, trackingNos []string) ([]belt.Decision, time.Time, error)
	Resolve(ctx context.Context, station string, tn ident.TrackingNo) (belt.Decision, error)
	Reject(ctx context.Context, station, trackingNo, code, reason string) (belt.Decision, error)
	Confirm(ctx context.Context, ev belt.SorterEvent) (belt.Confirmation, error)
}

// Decisions records each belt decision with its latency and lateness
// (*decisionlog.Recorder). It must not block: it is on the belt's path.
type Decisions interface {
	Decided(station, sorter string, received, deadline time.Time, d belt.Decision)
}

// Config tunes the server. Zero values take the defaults in brackets.
type Config struct {
	// PerSorter bounds one sorter's calls in flight; an open stream counts
	// as one [64].
	PerSorter int
	// Global bounds the sorter calls in flight on this instance [1024].
	Global int
	// StreamWindow bounds the parcels of one stream being decided at once;
	// past it the stream stops reading (gRPC flow control pushes back) [64].
	StreamWindow int
	// StreamBudget is a stream message's time when it names none [150ms].
	StreamBudget time.Duration
	// SafetyMargin is kept back from a Confirm's deadline, so that a
	// database that does not answer is reported before the machine gives
	// up [20ms].
	SafetyMargin time.Duration
	// ConfirmTimeout bounds a Confirm, and a station check, whatever the
	// call's deadline [5s].
	ConfirmTimeout time.Duration
	// PreSortTimeout bounds a PreSort batch whatever the call's deadline
	// [30s]: sorting ahead of time may take seconds, but not forever.
	PreSortTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.PerSorter <= 0 {
		c.PerSorter = 64
	}
	if c.Global <= 0 {
		c.Global = 1024
	}
	if c.StreamWindow <= 0 {
		c.StreamWindow = 64
	}
	if c.StreamBudget <= 0 {
		c.StreamBudget = 150 * time.Millisecond
	}
	if c.SafetyMargin <= 0 {
		c.SafetyMargin = 20 * time.Millisecond
	}
	if c.ConfirmTimeout <= 0 {
		c.ConfirmTimeout = 5 * time.Second
	}
	if c.PreSortTimeout <= 0 {
		c.PreSortTimeout = 30 * time.Second
	}
	return c
}

// Server implements stationv1.SorterServiceServer.
type Server struct {
	stationv1.UnimplementedSorterServiceServer
	belt      Belt
	decisions Decisions
	cfg       Config
	log       *zap.Logger
	limit     *limiter

	drainOnce sync.Once
	draining  chan struct{}
}

// New builds the server; every Resolve's decision is told to decisions
// (nil: recorded nowhere).
func New(belt Belt, decisions Decisions, cfg Config, log *zap.Logger) *Server {
	cfg = cfg.withDefaults()
	return &Server{belt: belt, decisions: decisions, cfg: cfg, log: log, limit: newLimiter(cfg.PerSorter, cfg.Global),
		draining: make(chan struct{})}
}

// decided records a decision answered now for a call received at received
// with ctx's deadline.
func (s *Server) decided(ctx context.Context, station, sorter string, received time.Time, d belt.Decision) {
	if s.decisions == nil {
		return
	}
	dl, _ := ctx.Deadline()
	s.decisions.Decided(station, sorter, received, dl, d)
}

// Register adds the service to a gRPC server.
func (s *Server) Register(r grpc.ServiceRegistrar) { stationv1.RegisterSorterServiceServer(r, s) }

// Drain asks open streams to end: each answers the parcels it already read,
// then ends with Unavailable (reason SHUTTING_DOWN) so the machine
// reconnects to another instance. Call it before the server's graceful
// stop, which otherwise waits for streams that never end on their own.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// admit authenticates the caller as a sorter and takes a concurrency slot.
func (s *Server) admit(ctx context.Context) (auth.Principal, func(), error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Kind != auth.KindSorter {
		return auth.Principal{}, nil, status.Error(codes.Unauthenticated, "sorter credentials required")
	}
	release, a := s.limit.acquire(p.ID)
	if a != admitted {
		return auth.Principal{}, nil, overloaded(a)
	}
	return p, release, nil
}

// station resolves the station a request is about (empty: the sorter's
// own) and checks the sorter may act there.
func (s *Server) station(ctx context.Context, p auth.Principal, requested string) (string, error) {
	st := requested
	if st == "" {
		st = p.StationID
	}
	if !auth.ValidSiteID(st) {
		return "", withDetails(codes.InvalidArgument, "station_id is not a site id like SG-H01", badStation())
	}
	// Bounded like a Confirm: a station whose chute map this instance has
	// not read yet needs the database, which may not answer.
	cctx, cancel := s.bounded(ctx)
	err := s.belt.CheckStation(cctx, st)
	timedOut := cctx.Err() != nil && errors.Is(context.Cause(cctx), errNoAnswerInTime)
	cancel()
	switch {
	case err != nil && timedOut:
		return "", s.toStatus(errNoAnswerInTime, "")
	case err != nil:
		return "", s.toStatus(err, "")
	}
	if !p.CanActAt(st) {
		return "", withDetails(codes.PermissionDenied, "this sorter belongs to another station", info(ReasonOtherStation, nil))
	}
	return st, nil
}

// PreSort sorts a batch ahead of time.
func (s *Server) PreSort(ctx context.Context, req *stationv1.PreSortRequest) (*stationv1.PreSortResponse, error) {
	p, release, err := s.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	st, err := s.station(ctx, p, req.GetStationId())
	if err != nil {
		return nil, err
	}
	bctx, cancel := s.boundedFor(ctx, s.cfg.PreSortTimeout)
	defer cancel()
	ds, expires, err := s.belt.PreSort(bctx, st, req.GetTrackingNos())
	if err != nil && bctx.Err() != nil && errors.Is(context.Cause(bctx), errNoAnswerInTime) {
		return nil, s.toStatus(errNoAnswerInTime, "")
	}
	if err != nil {
		return nil, s.toStatus(err, "tracking_nos")
	}
	out := &stationv1.PreSortResponse{Decisions: make([]*stationv1.Decision, len(ds)), ExpiresAt: timestamppb.New(expires)}
	for i, d := range ds {
		out.Decisions[i] = decisionPB(d)
	}
	return out, nil
}

// Resolve answers one parcel's chute.
func (s *Server) Resolve(ctx context.Context, req *stationv1.ResolveRequest) (*stationv1.ResolveResponse, error) {
	received := time.Now() // the decision's latency counts from here
	p, release, err := s.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	st, err := s.station(ctx, p, req.GetStationId())
	if err != nil {
		return nil, err
	}
	tn, err := ident.ParseTrackingNo(req.GetTrackingNo())
	if err != nil {
		return nil, s.toStatus(err, "tracking_no")
	}
	d, err := s.belt.Resolve(ctx, st, tn)
	if err != nil {
		return nil, s.toStatus(err, "tracking_no")
	}
	s.decided(ctx, st, p.ID, received, d)
	return &stationv1.ResolveResponse{Decision: decisionPB(d)}, nil
}

// slot is one stream parcel being decided; answers leave in slot order.
type slot struct {
	id   uint64
	done chan struct{}
	d    belt.Decision
	err  error
}

// ResolveStream answers parcels in order on one stream. Parcels are decided
// concurrently (up to StreamWindow), answers are sent in request order.
func (s *Server) ResolveStream(stream grpc.BidiStreamingServer[stationv1.ResolveStreamRequest, stationv1.ResolveStreamResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	p, release, err := s.admit(ctx)
	if err != nil {
		return err
	}
	defer release()

	// fail ends the stream for a problem that is not one parcel's (the
	// station's chute map vanished, say); the first such error is its status.
	var failOnce sync.Once
	var failed error
	fail := func(err error) {
		failOnce.Do(func() { failed = err })
		cancel()
	}
	queue := make(chan *slot, s.cfg.StreamWindow)
	sendErr := make(chan error, 1)
	go func() {
		broken := false // after a failed parcel no answer may skip ahead of it
		for sl := range queue {
			select {
			case <-sl.done:
			case <-ctx.Done():
				sendErr <- ctx.Err()
				return
			}
			if broken = broken || sl.err != nil; broken {
				continue // the receiver ends the stream with the failure
			}
			if err := stream.Send(&stationv1.ResolveStreamResponse{RequestId: sl.id, Decision: decisionPB(sl.d)}); err != nil {
				cancel()
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	// finish lets every queued answer go out, then ends the stream with err.
	finish := func(err error) error {
		close(queue)
		if serr := <-sendErr; serr != nil && err == nil {
			err = status.FromContextError(serr).Err()
		}
		return err
	}

	type received struct {
		req *stationv1.ResolveStreamRequest
		err error
	}
	recv := make(chan received)
	go func() {
		for {
			req, err := stream.Recv()
			select {
			case recv <- received{req, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	allowed := map[string]bool{} // stations this stream was checked for
	for {
		var r received
		select {
		case <-s.draining:
			return finish(withDetails(codes.Unavailable, "station is shutting down; reconnect", info(ReasonShuttingDown, nil)))
		case <-ctx.Done():
			if failed != nil {
				return finish(s.toStatus(failed, "tracking_no"))
			}
			return finish(status.FromContextError(ctx.Err()).Err())
		case r = <-recv:
		}
		if errors.Is(r.err, io.EOF) {
			return finish(nil)
		}
		if r.err != nil {
			return finish(r.err)
		}
		st := r.req.GetStationId()
		if !allowed[st] {
			checked, err := s.station(ctx, p, st)
			if err != nil {
				return finish(err)
			}
			allowed[st], st = true, checked
		} else if st == "" {
			st = p.StationID
		}
		budget := s.cfg.StreamBudget
		if ms := r.req.GetBudgetMs(); ms > 0 {
			budget = time.Duration(ms) * time.Millisecond
		}
		received := time.Now()
		sl := &slot{id: r.req.GetRequestId(), done: make(chan struct{})}
		select {
		case queue <- sl:
		case <-ctx.Done():
			return finish(status.FromContextError(ctx.Err()).Err())
		}
		go func(tnRaw string) {
			defer close(sl.done)
			mctx, mcancel := context.WithTimeout(ctx, budget)
			defer mcancel()
			tn, err := ident.ParseTrackingNo(tnRaw)
			if err != nil {
				// One bad read must not end the stream: answer the reject
				// chute in band.
				sl.d, sl.err = s.belt.Reject(mctx, st, tnRaw, sorting.ReasonInvalidTN, err.Error())
				if sl.err != nil {
					fail(sl.err)
					return
				}
				s.decided(mctx, st, p.ID, received, sl.d)
				return
			}
			sl.d, sl.err = s.belt.Resolve(mctx, st, tn)
			if sl.err != nil {
				fail(sl.err)
				return
			}
			s.decided(mctx, st, p.ID, received, sl.d)
		}(r.req.GetTrackingNo())
	}
}

// Confirm records one sorter event. Recording needs PostgreSQL: while it is
// out of reach (refused or silent) the event is refused with Unavailable,
// before the call's deadline, and nothing is written, so the machine resends
// it; its sequence number makes the resend idempotent.
func (s *Server) Confirm(ctx context.Context, req *stationv1.ConfirmRequest) (*stationv1.ConfirmResponse, error) {
	p, release, err := s.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.confirm(ctx, p, req)
	if err != nil && ctx.Err() != nil && errors.Is(context.Cause(ctx), errNoAnswerInTime) {
		return nil, s.toStatus(errNoAnswerInTime, "")
	}
	return c, err
}

// bounded is the server's own bound on a wait for the database:
// ConfirmTimeout, or the machine's deadline less the safety margin when
// that comes first, so a database that does not answer gives Unavailable,
// not a call that outlives the machine's patience.
func (s *Server) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return s.boundedFor(ctx, s.cfg.ConfirmTimeout)
}

// boundedFor is bounded with another limit than ConfirmTimeout.
func (s *Server) boundedFor(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc) {
	d := time.Now().Add(limit)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-s.cfg.SafetyMargin).Before(d) {
		d = dl.Add(-s.cfg.SafetyMargin)
	}
	return context.WithDeadlineCause(ctx, d, errNoAnswerInTime)
}

func (s *Server) confirm(ctx context.Context, p auth.Principal, req *stationv1.ConfirmRequest) (*stationv1.ConfirmResponse, error) {
	st, err := s.station(ctx, p, req.GetStationId())
	if err != nil {
		return nil, err
	}
	outcome, ok := outcomes[req.GetOutcome()]
	if !ok {
		return nil, withDetails(codes.InvalidArgument, "outcome is required", info(ReasonInvalidEvent, nil))
	}
	ev := belt.SorterEvent{StationID: st, SorterID: p.ID, Sequence: req.GetSequence(), Outcome: outcome,
		TrackingNo: req.GetTrackingNo(), Chute: int(req.GetChute())}
	if req.GetOccurredAt() != nil {
		if err := req.GetOccurredAt().CheckValid(); err != nil {
			return nil, withDetails(codes.InvalidArgument, "occurred_at is not a valid time", info(ReasonInvalidEvent, nil))
		}
		ev.OccurredAt = req.GetOccurredAt().AsTime()
	}
	c, err := s.belt.Confirm(ctx, ev)
	if err != nil {
		// No field: a refused event is about the event as a whole (the
		// reason, INVALID_TRACKING_NO or INVALID_SORTER_EVENT, says why).
		return nil, s.toStatus(err, "")
	}
	return &stationv1.ConfirmResponse{WorkOrderId: c.WorkOrderID, Sequence: c.Sequence, Replayed: c.Replayed}, nil
}
