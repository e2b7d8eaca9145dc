package sorting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/workorder"
)

// Errors of the sort and receive operations (besides ident.ErrInvalidTrackingNo and
// the chute-map errors).
var (
	ErrMissingScanID = fault.New(fault.Invalid, "missing_scan_id", "scan_id is required")
	ErrNoFlow        = fault.New(fault.Conflict, "no_flow", "no sorting flow for this station")
	ErrNotFound      = fault.New(fault.NotFound, "not_found", "no sort result for this parcel at this station")
)

// Scan is one operator or machine request about one parcel.
type Scan struct {
	StationID  string
	TrackingNo string // as sent; Sort normalises it
	ScanID     string
	Actor      workorder.Actor
}

// Result is the answer to a sort: the JSON the terminal shows.
type Result struct {
	TrackingNo  string            `json:"tracking_no"`
	StationID   string            `json:"station_id"`
	NextHop     *string           `json:"next_hop"`
	Chute       int               `json:"chute"`
	Exception   *Exception        `json:"exception"`
	Flow        string            `json:"flow"`
	FlowVersion int               `json:"flow_version"`
	Degraded    []dag.Degradation `json:"degraded"`
	// WeightG is the parcel's weight by its waybill, when the flow read it:
	// what a bag under its chute will carry.
	WeightG     int        `json:"weight_g,omitempty"`
	WorkOrderID string     `json:"work_order_id"`
	SortedAt    time.Time  `json:"sorted_at"`
	Trace       *dag.Trace `json:"trace,omitempty"`
}

// Outcome is a sort's answer: the result and the stored body, returned
// byte for byte on replay.
type Outcome = workorder.Receipt[Result]

// SortOptions adjust one sort.
type SortOptions struct {
	Trace bool // include the DAG trace in the answer
}

// Service runs the sorting flows and records their results.
type Service struct {
	db     *pgxpool.Pool
	router *Router
	shadow *Shadow          // nil: no shadow comparisons
	drops  PresortedAnswers // nil: no sorting machine
	now    func() time.Time
}

// PresortedAnswers is the sorting machine's table of answers decided ahead
// of time (package sorting/belt), as far as a sort needs it: a parcel sorted
// by hand, or found to be a problem at arrival, must not be diverted by an
// older belt answer. QueueDrop adds the answer's tombstone to the work
// order's batch; after the commit, spread(ctx) makes every instance drop it.
type PresortedAnswers interface {
	QueueDrop(b *pgx.Batch, station string, tn ident.TrackingNo, at time.Time) (spread func(context.Context))
}

// NewService builds the sorting service over its router, built once with
// everything it needs: shadow (nil without comparisons) and drops (nil
// without a sorting machine).
func NewService(db *pgxpool.Pool, router *Router, shadow *Shadow, drops PresortedAnswers) *Service {
	return &Service{db: db, router: router, shadow: shadow, drops: drops, now: time.Now}
}

// chooseFlow picks the flow that serves a parcel at a station and starts
// its shadow run when the release rule asks for one. The returned function
// hands the served answer to the shadow; it is a no-op without one.
func (s *Service) chooseFlow(station string, tn ident.TrackingNo) (*Flow, func(Result, *dag.Result), error) {
	noShadow := func(Result, *dag.Result) {}
	c, err := s.router.Choose(station, tn)
	if err != nil {
		return nil, nil, err
	}
	if s.shadow == nil {
		return c.Flow, noShadow, nil
	}
	if c.ServedByCandidate {
		s.shadow.servedByCandidate.WithLabelValues(station).Inc()
	}
	if c.Shadow == nil {
		return c.Flow, noShadow, nil
	}
	return c.Flow, s.shadow.launch(station, tn, c.Flow, c.Shadow), nil
}

// Chutes is the chute-map store the service sorts with.
func (s *Service) Chutes() *ChuteStore { return s.router.chutes }

// Flows is the set of flows the service runs.
func (s *Service) Flows() *FlowSet { return s.router.flows }

// Sort decides the next hop and chute of a parcel at a station and records
// it: sort result, work order and tracking event in one transaction. A scan
// id already used at this station replays the stored answer.
func (s *Service) Sort(ctx context.Context, scan Scan, opts SortOptions) (Outcome, error) {
	tn, err := s.validate(scan)
	if err != nil {
		return Outcome{}, err
	}
	hash := workorder.RequestHash("sort", string(tn))
	// A retried scan is found by its scan key (scan_keys) when the sort
	// is recorded (record replays the stored answer), so a new scan costs no
	// lookup; only a sort that ends without an answer of its own asks
	// whether there was a first one.
	// The chute map is checked first: without one no parcel can be sorted
	// and the supervisor must be told, not every parcel sent to exceptions.
	if _, err := s.router.chutes.Get(ctx, scan.StationID); err != nil {
		return orPrior(ctx, s, scan, hash, err, replayed)
	}
	plan, shadow, err := s.chooseFlow(scan.StationID, tn)
	if err != nil {
		return orPrior(ctx, s, scan, hash, err, replayed)
	}
	res, run := s.router.Run(ctx, plan, scan.StationID, tn, dag.Options{Sequential: plan.Sequential})
	served := res
	if opts.Trace {
		res.Trace = &run.Trace
	}
	out, err := s.record(ctx, scan, hash, res, &run.Trace)
	// The candidate starts once the answer is recorded, so that it takes no
	// CPU from this sort; a retry's run is still a fair comparison of the
	// two flows.
	shadow(served, run)
	return out, err
}

// Run sorts without recording: for shadow comparisons and pre-sort, which
// store results their own way.
func (s *Service) Run(ctx context.Context, flow *Flow, stationID string, tn ident.TrackingNo, dryRun bool) (Result, *dag.Result) {
	return s.router.Run(ctx, flow, stationID, tn, dag.Options{DryRun: dryRun, Sequential: flow.Sequential})
}

func (s *Service) run(ctx context.Context, flow *Flow, stationID string, tn ident.TrackingNo, opts dag.Options) (Result, *dag.Result) {
	return s.router.Run(ctx, flow, stationID, tn, opts)
}

// unavailableReason says which step could not finish, without leaking
// internal addresses or messages to the terminal.
func unavailableReason(err error) string {
	var ne *dag.NodeError
	if errors.As(err, &ne) {
		switch {
		case errors.Is(err, dag.ErrTimeout), errors.Is(err, dag.ErrDeadline), errors.Is(err, context.DeadlineExceeded):
			return fmt.Sprintf("%s did not answer in time", ne.Step)
		default:
			return fmt.Sprintf("%s failed", ne.Step)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, dag.ErrDeadline) {
		return "the sort did not finish in time"
	}
	return "a dependency failed"
}

func (s *Service) validate(scan Scan) (ident.TrackingNo, error) {
	if scan.ScanID == "" {
		return "", ErrMissingScanID
	}
	if len(scan.ScanID) > 128 {
		return "", fmt.Errorf("%w: at most 128 characters", ErrMissingScanID)
	}
	return ident.ParseTrackingNo(scan.TrackingNo)
}

// orPrior answers an operation that could not run with the answer stored
// for its scan id, decoded by replay, if there is one: a retry gets the
// first answer whatever changed since. Otherwise it is failed.
func orPrior[T any](ctx context.Context, s *Service, scan Scan, hash []byte, failed error, replay func([]byte) (T, error)) (T, error) {
	body, err := workorder.Replay(ctx, s.db, scan.StationID, scan.ScanID, hash)
	switch {
	case errors.Is(err, workorder.ErrNotFound):
		var zero T
		return zero, failed
	case err != nil:
		var zero T
		return zero, err
	default:
		return replay(body)
	}
}

func replayed(body []byte) (Outcome, error) {
	var r Result
	if err := json.Unmarshal(body, &r); err != nil {
		return Outcome{}, fmt.Errorf("sorting: stored response: %w", err)
	}
	return Outcome{Value: r, Body: body, Replayed: true}, nil
}

// record writes the sort result, its work order and its tracking event in one
// transaction. A concurrent request with the same scan id that committed
// first wins; this one writes nothing and replays it.
func (s *Service) record(ctx context.Context, scan Scan, hash []byte, res Result, trace *dag.Trace) (Outcome, error) {
	woID := workorder.NewID()
	res.WorkOrderID = woID.String()
	res.SortedAt = s.now().UTC().Truncate(time.Millisecond)
	withTrace := res.Trace
	res.Trace = nil
	body, err := json.Marshal(res)
	if err != nil {
		return Outcome{}, err
	}
	traceJSON, err := json.Marshal(trace)
	if err != nil {
		return Outcome{}, err
	}
	outcome, eventType, payload := "ok", workorder.EventSorted, map[string]any{"chute": res.Chute, "flow": res.Flow, "flow_version": res.FlowVersion}
	var hop, excCode, excReason *string
	move := workorder.Move{Op: workorder.OpSort, TrackingNo: res.TrackingNo, To: workorder.StateSorted, Chute: res.Chute, WeightG: res.WeightG}
	if res.NextHop != nil {
		hop = res.NextHop
		payload["next_hop"] = *res.NextHop
		move.NextHop = *res.NextHop
	}
	if res.Exception != nil {
		outcome, eventType = res.Exception.Code, workorder.EventException
		excCode, excReason = &res.Exception.Code, &res.Exception.Reason
		payload["code"], payload["reason"] = res.Exception.Code, res.Exception.Reason
		move.To, move.ExceptionCode, move.NextHop = workorder.StateAside, res.Exception.Code, ""
	}
	degraded, _ := json.Marshal(res.Degraded)
	order := workorder.Order{
		ID: woID, StationID: scan.StationID, Type: "sort", TrackingNo: res.TrackingNo, Actor: scan.Actor,
		ScanID: scan.ScanID, RequestHash: hash, Outcome: outcome, Response: body,
		Events: []workorder.Event{{TrackingNo: res.TrackingNo, Type: eventType, OccurredAt: res.SortedAt, Payload: payload}},
		Moves:  []workorder.Move{move}, At: res.SortedAt,
	}
	// One round trip and one commit: work order, event, sort result, the
	// parcel's state and the belt's tombstone (a parcel sorted by hand is
	// sorted anew at the belt).
	var spread func(context.Context)
	out, err := workorder.Commit[Result](ctx, s.db, order, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO sort_results (id, work_order_id, station_id, tracking_no, next_hop, chute, exception_code, exception_reason,
			                           flow, flow_version, degraded, trace, source, created_at)
			 VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'manual', $12)`,
			woID, scan.StationID, res.TrackingNo, hop, res.Chute, excCode, excReason, res.Flow, res.FlowVersion, degraded, traceJSON, res.SortedAt)
		if s.drops != nil {
			spread = s.drops.QueueDrop(b, scan.StationID, ident.TrackingNo(res.TrackingNo), res.SortedAt)
		}
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("sorting: record sort of %s: %w", res.TrackingNo, err)
	}
	if out.Replayed {
		return out, nil
	}
	if spread != nil {
		spread(ctx)
	}
	out.Value.Trace = withTrace
	return out, nil
}

// Latest is the newest sort result of a parcel at a station.
func (s *Service) Latest(ctx context.Context, stationID string, tn ident.TrackingNo) (Result, error) {
	var body []byte
	err := s.db.QueryRow(ctx,
		`SELECT w.response FROM sort_results r JOIN work_orders w ON w.id = r.work_order_id
		  WHERE r.station_id = $1 AND r.tracking_no = $2 ORDER BY r.created_at DESC LIMIT 1`,
		stationID, string(tn)).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return Result{}, fmt.Errorf("%s at %s: %w", tn, stationID, ErrNotFound)
	}
	if err != nil {
		return Result{}, fmt.Errorf("sorting: latest %s: %w", tn, err)
	}
	var r Result
	if err := json.Unmarshal(body, &r); err != nil {
		return Result{}, err
	}
	return r, nil
}

// Trace returns the stored trace of a sort result by its work order id.
func (s *Service) Trace(ctx context.Context, stationID, workOrderID string) (json.RawMessage, error) {
	id, err := uuid.Parse(workOrderID)
	if err != nil {
		return nil, ErrNotFound
	}
	// A manual sort's result row takes its work order's id (see record), so
	// this is a primary-key lookup.
	var raw []byte
	err = s.db.QueryRow(ctx,
		`SELECT trace FROM sort_results WHERE id = $1 AND work_order_id = $1 AND station_id = $2`, id, stationID).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sorting: trace %s: %w", workOrderID, err)
	}
	return raw, nil
}
