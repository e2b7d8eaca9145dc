package sorting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/workorder"
)

// Receipt is the answer to an inbound scan.
type Receipt struct {
	TrackingNo string     `json:"tracking_no"`
	StationID  string     `json:"station_id"`
	Accepted   bool       `json:"accepted"`
	Exception  *Exception `json:"exception"`
	// Duplicate: the parcel was already here (received, sorted or bagged in
	// this visit); nothing was recorded, and WorkOrderID and ReceivedAt
	// name the visit's first operation.
	Duplicate   bool      `json:"duplicate,omitempty"`
	State       string    `json:"state,omitempty"` // with Duplicate: where the parcel is now
	WorkOrderID string    `json:"work_order_id"`
	ReceivedAt  time.Time `json:"received_at"`
}

// ReceiveOutcome is a receive's answer and its stored body.
type ReceiveOutcome = workorder.Receipt[Receipt]

// Receive records a parcel's arrival at a station: the waybill must exist,
// the parcel must be routed via the station and be neither cancelled nor
// intercepted; otherwise it is flagged with the exception's code, never
// silently accepted.
func (s *Service) Receive(ctx context.Context, scan Scan) (ReceiveOutcome, error) {
	tn, err := s.validate(scan)
	if err != nil {
		return ReceiveOutcome{}, err
	}
	hash := workorder.RequestHash("receive", string(tn))
	// As in Sort: a retry is found when the receipt is recorded.
	flow, err := s.router.flows.Latest(ReceiveFlow)
	if err != nil {
		return orPrior(ctx, s, scan, hash, err, receiptReplay)
	}
	_, runErr := dag.Run(ctx, flow.Plan, []dag.Value{KeyTrackingNo.Bind(string(tn)), KeyStationID.Bind(scan.StationID)},
		dag.Options{Metrics: s.router.metrics})
	rc := Receipt{TrackingNo: string(tn), StationID: scan.StationID, Accepted: runErr == nil}
	if runErr != nil {
		var exc *Exception
		if !errors.As(runErr, &exc) {
			exc = &Exception{Code: CodeDownstreamUnavailable, Reason: unavailableReason(runErr)}
		}
		rc.Exception = exc
	}
	woID := workorder.NewID()
	rc.WorkOrderID = woID.String()
	rc.ReceivedAt = s.now().UTC().Truncate(time.Millisecond)
	body, err := json.Marshal(rc)
	if err != nil {
		return ReceiveOutcome{}, err
	}
	outcome, eventType, payload := "ok", workorder.EventArrived, map[string]any{}
	move := workorder.Move{Op: workorder.OpReceive, TrackingNo: rc.TrackingNo, To: workorder.StateReceived}
	var code, reason *string
	if rc.Exception != nil {
		outcome, eventType = rc.Exception.Code, workorder.EventException
		code, reason = &rc.Exception.Code, &rc.Exception.Reason
		payload["code"], payload["reason"], payload["stage"] = rc.Exception.Code, rc.Exception.Reason, "receive"
		move.To, move.ExceptionCode = workorder.StateAside, rc.Exception.Code
	}
	order := workorder.Order{
		ID: woID, StationID: scan.StationID, Type: "receive", TrackingNo: rc.TrackingNo, Actor: scan.Actor,
		ScanID: scan.ScanID, RequestHash: hash, Outcome: outcome, Response: body,
		Events: []workorder.Event{{TrackingNo: rc.TrackingNo, Type: eventType, OccurredAt: rc.ReceivedAt, Payload: payload}},
		Moves:  []workorder.Move{move}, At: rc.ReceivedAt,
	}
	var spread func(context.Context)
	out, err := workorder.Commit[Receipt](ctx, s.db, order, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO receipts (id, work_order_id, station_id, tracking_no, exception_code, exception_reason, created_at)
			 VALUES ($1, $1, $2, $3, $4, $5, $6)`, woID, scan.StationID, rc.TrackingNo, code, reason, rc.ReceivedAt)
		if s.drops != nil && dropsBeltAnswer(rc.Exception) {
			// Found intercepted, cancelled, ... at arrival: an answer
			// pre-sorted before that must not divert the parcel.
			spread = s.drops.QueueDrop(b, scan.StationID, tn, rc.ReceivedAt)
		}
	})
	if se, ok := errors.AsType[*workorder.StateError](err); ok && errors.Is(se, workorder.ErrRepeat) {
		return duplicateReceipt(se.Parcel)
	}
	if err != nil {
		return ReceiveOutcome{}, fmt.Errorf("sorting: record receipt of %s: %w", tn, err)
	}
	if spread != nil && !out.Replayed {
		spread(ctx)
	}
	return out, nil
}

// duplicateReceipt answers a receive of a parcel that is already here: the
// visit's first operation, and where the parcel is now. Nothing is recorded,
// so a retry gets the same answer while the parcel stays.
func duplicateReceipt(p workorder.Parcel) (ReceiveOutcome, error) {
	rc := Receipt{TrackingNo: p.TrackingNo, StationID: p.StationID, Accepted: true, Duplicate: true,
		State: string(p.State), WorkOrderID: p.VisitOrderID.String(), ReceivedAt: p.VisitStarted}
	body, err := json.Marshal(rc)
	if err != nil {
		return ReceiveOutcome{}, err
	}
	return ReceiveOutcome{Value: rc, Body: body}, nil
}

func receiptReplay(body []byte) (ReceiveOutcome, error) {
	var rc Receipt
	if err := json.Unmarshal(body, &rc); err != nil {
		return ReceiveOutcome{}, fmt.Errorf("sorting: stored receipt: %w", err)
	}
	return ReceiveOutcome{Value: rc, Body: body, Replayed: true}, nil
}

// ParcelView is a parcel's state at a station and the work orders that put
// it there, oldest first.
type ParcelView struct {
	workorder.Parcel
	WorkOrders []workorder.Entry `json:"work_orders"`
}

// ErrParcelUnknown: the station has recorded nothing of the parcel (other
// stations' records are not the caller's to see).
var ErrParcelUnknown = fault.New(fault.NotFound, "not_found", "the parcel is not known at this station")

// Parcel is where a parcel is at a station and how it got there.
func (s *Service) Parcel(ctx context.Context, stationID string, tn ident.TrackingNo) (ParcelView, error) {
	p, entries, err := workorder.History(ctx, s.db, stationID, string(tn))
	if err != nil {
		return ParcelView{}, err
	}
	if p.State == workorder.StateNone && len(entries) == 0 {
		return ParcelView{}, fmt.Errorf("%s at %s: %w", tn, stationID, ErrParcelUnknown)
	}
	return ParcelView{Parcel: p, WorkOrders: entries}, nil
}

// dropsBeltAnswer reports whether an exception found at arrival changes the
// parcel's sort: every business exception does, a dependency that did not
// answer says nothing about the parcel.
func dropsBeltAnswer(exc *Exception) bool {
	return exc != nil && exc.Code != CodeDownstreamUnavailable
}
