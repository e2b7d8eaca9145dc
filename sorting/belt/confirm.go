package belt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/workorder"
)

// Confirm errors.
var (
	ErrInvalidSorterEvent = fault.New(fault.Invalid, "invalid_sorter_event", "invalid sorter event")
	ErrSequenceBackwards  = fault.New(fault.Conflict, "sequence_backwards", "sorter sequence number went backwards")
)

// SorterOutcome is what physically happened at the sorting machine.
type SorterOutcome string

const (
	OutcomeSorted       SorterOutcome = "sorted"
	OutcomeNoRead       SorterOutcome = "no_read"
	OutcomeChuteFull    SorterOutcome = "chute_full"
	OutcomeChuteCleared SorterOutcome = "chute_cleared"
	OutcomeRecirculated SorterOutcome = "recirculated"
	OutcomeRejected     SorterOutcome = "rejected"
	OutcomeMissort      SorterOutcome = "missort"
)

// needs says which fields an outcome requires.
var outcomeNeeds = map[SorterOutcome]struct{ trackingNo, chute bool }{
	OutcomeSorted:       {true, true},
	OutcomeNoRead:       {false, false},
	OutcomeChuteFull:    {false, true},
	OutcomeChuteCleared: {false, true},
	OutcomeRecirculated: {true, false},
	OutcomeRejected:     {true, false},
	OutcomeMissort:      {true, true},
}

// SorterEvent is one report of the sorting machine.
type SorterEvent struct {
	StationID  string
	SorterID   string
	Sequence   uint64 // positive, increasing per sorter; the idempotency key
	Outcome    SorterOutcome
	TrackingNo string // as sent; required where the outcome is about a parcel
	Chute      int
	OccurredAt time.Time // zero: when Station received it
}

// SequenceError is a sequence number not above the sorter's newest one.
type SequenceError struct {
	Sequence, Newest uint64
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("sequence %d is not above the newest recorded %d", e.Sequence, e.Newest)
}

// Unwrap is ErrSequenceBackwards with the newest sequence as a detail, so
// the machine learns where to resume without the edge knowing this type.
func (e *SequenceError) Unwrap() error {
	return ErrSequenceBackwards.With(map[string]any{"newest_sequence": e.Newest}, "%s", e.Error())
}

// Confirmation is the recorded answer to a sorter event. It carries the
// fields of a sorting.Result, so a confirmed sort reads like any other sort result
// (Service.Latest) once it is the parcel's newest.
type Confirmation struct {
	sorting.Result
	SorterID   string        `json:"sorter_id"`
	Sequence   uint64        `json:"sequence"`
	Outcome    SorterOutcome `json:"outcome"`
	OccurredAt time.Time     `json:"occurred_at"`
	Replayed   bool          `json:"-"`
	// Bag is what the bag under the chute did with the parcel, at a chute
	// of a next hop.
	Bag *ChuteBag `json:"bag,omitempty"`
}

// ChuteBag is what happened to a parcel the machine put into a chute of a
// next hop: whether the bag hanging there took it, and the bag's fill.
type ChuteBag struct {
	BagID  string `json:"bag_id,omitempty"`
	Added  bool   `json:"added"`
	Reason string `json:"reason,omitempty"` // why not: no_bag, wrong_next_hop, already_bagged, ...
	// Level is the bag's fill: ok, seal_soon or seal_now; Full (at seal_now)
	// makes the chute full until a new bag is bound.
	Level   string  `json:"level,omitempty"`
	Parcels int     `json:"parcels"`
	Grams   int     `json:"grams"`
	Ratio   float64 `json:"ratio"`
	Full    bool    `json:"full"`
}

// Bags are the bags hanging under chutes (package packing, through an
// adapter in the wiring): AddAtChute puts a parcel into the bag under
// chute in the confirm's transaction, never forcing it in, and returns the
// bag add's own work order (nil when nothing was added).
type Bags interface {
	AddAtChute(ctx context.Context, tx *workorder.Tx, confirmScanID string, actor workorder.Actor, chute int, p workorder.Parcel) (ChuteBag, *workorder.Order, error)
}

// Confirm records a sorter event: a work order and its tracking event
// (sorter_confirmed) through the outbox, the chute's state for chute_full
// and chute_cleared, and for a parcel sorted into a chute its sort result.
// A replayed sequence returns the original answer and writes nothing; a
// sequence not above the sorter's newest is a *SequenceError.
func (b *Service) Confirm(ctx context.Context, ev SorterEvent) (Confirmation, error) {
	tn, err := ev.validate()
	if err != nil {
		return Confirmation{}, err
	}
	if err := b.checkOccurredAt(ev.OccurredAt); err != nil {
		return Confirmation{}, err
	}
	m, err := b.router.Chutes().Get(ctx, ev.StationID)
	if err != nil {
		return Confirmation{}, err
	}
	role := chuteRole(m.ChuteMap, ev.Chute)
	if ev.Chute != 0 && role.kind == "" {
		return Confirmation{}, fmt.Errorf("%w: chute %d is not on the chute map of %s", ErrInvalidSorterEvent, ev.Chute, ev.StationID)
	}
	scanID := "sorter:" + ev.SorterID + ":" + strconv.FormatUint(ev.Sequence, 10)
	occurred := ""
	if !ev.OccurredAt.IsZero() {
		occurred = ev.OccurredAt.UTC().Format(time.RFC3339Nano)
	}
	hash := workorder.RequestHash("sorter_confirm", string(ev.Outcome), string(tn), strconv.Itoa(ev.Chute), occurred)
	now := b.now().UTC().Truncate(time.Millisecond)
	at := ev.OccurredAt.UTC()
	if ev.OccurredAt.IsZero() {
		at = now
	}
	req := workorder.Request{StationID: ev.StationID, ScanID: scanID, Hash: hash, Type: "sorter_confirm", Now: now,
		Actor: workorder.Actor{Kind: workorder.ActorSorter, ID: ev.SorterID}}
	out, err := workorder.Transact(ctx, b.db, req, func(ctx context.Context, tx *workorder.Tx) (Confirmation, workorder.Order, error) {
		return b.confirmTx(ctx, tx, ev, tn, role, at, scanID)
	})
	if err != nil {
		if se, ok := errors.AsType[*SequenceError](err); ok {
			return Confirmation{}, se
		}
		return Confirmation{}, fmt.Errorf("sorting: confirm %s: %w", scanID, err)
	}
	c := out.Value
	c.Replayed = out.Replayed
	if !out.Replayed && (ev.Outcome == OutcomeChuteFull || ev.Outcome == OutcomeChuteCleared || c.Bag != nil && c.Bag.Full) {
		b.chutesChanged(ctx, ev.StationID)
	}
	b.metrics.outcomes.WithLabelValues(string(ev.Outcome)).Inc()
	if c.Bag != nil && !out.Replayed {
		b.metrics.chuteBag(ev.StationID, ev.Chute, c.Bag)
	}
	if b.cfg.OnFloorChange != nil && !out.Replayed {
		b.cfg.OnFloorChange(ev.StationID)
	}
	return c, nil
}

// confirmTx records one sorter event inside its work order's transaction.
func (b *Service) confirmTx(ctx context.Context, tx *workorder.Tx, ev SorterEvent, tn ident.TrackingNo, role chuteUse, at time.Time, scanID string) (Confirmation, workorder.Order, error) {
	// One sorter's events are recorded one at a time, so "newest" is well
	// defined; other sorters are not held up.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 11))`, "sorter:"+ev.SorterID); err != nil {
		return Confirmation{}, workorder.Order{}, err
	}
	var newest int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM sorter_confirms WHERE sorter_id = $1`, ev.SorterID).
		Scan(&newest); err != nil {
		return Confirmation{}, workorder.Order{}, err
	}
	if ev.Sequence <= uint64(newest) {
		return Confirmation{}, workorder.Order{}, &SequenceError{Sequence: ev.Sequence, Newest: uint64(newest)}
	}
	// What the belt decided for the parcel, to name its flow and exception.
	var known entry
	var hasEntry bool
	if tn != "" {
		known, hasEntry, _ = b.loadPG(ctx, ev.StationID, tn)
	}
	c := Confirmation{
		Result: sorting.Result{TrackingNo: string(tn), StationID: ev.StationID, Chute: ev.Chute, Flow: "sorter",
			WorkOrderID: tx.ID.String(), SortedAt: at, Degraded: []dag.Degradation{}},
		SorterID: ev.SorterID, Sequence: ev.Sequence, Outcome: ev.Outcome, OccurredAt: at,
	}
	if hasEntry {
		c.Flow, c.FlowVersion = known.Flow, known.Version
	}
	writeSort := false
	if ev.Outcome == OutcomeSorted {
		switch {
		case role.kind == sorting.ChuteNextHop:
			c.NextHop, writeSort = &role.hop, true
		case role.kind == sorting.ChuteOverflow && hasEntry && known.NextHop != "":
			c.NextHop, writeSort = &known.NextHop, true
		case role.kind == sorting.ChuteException && hasEntry && known.ExcCode != "":
			c.Exception, writeSort = &sorting.Exception{Code: known.ExcCode, Reason: known.ExcReason}, true
		}
	}
	payload := map[string]any{"outcome": string(ev.Outcome), "sorter_id": ev.SorterID, "sequence": ev.Sequence}
	if ev.Chute != 0 {
		payload["chute"] = ev.Chute
	}
	if c.NextHop != nil {
		payload["next_hop"] = *c.NextHop
	}
	order := workorder.Order{Type: "sorter_confirm", TrackingNo: string(tn), Outcome: string(ev.Outcome)}
	if tn != "" {
		order.Events = []workorder.Event{{TrackingNo: string(tn), Type: workorder.EventSorterConfirmed, OccurredAt: at, Payload: payload}}
	}
	if ev.Chute != 0 {
		order.SubjectID = "chute:" + strconv.Itoa(ev.Chute)
	}
	var tnArg, chuteArg any
	if tn != "" {
		tnArg = string(tn)
	}
	if ev.Chute != 0 {
		chuteArg = ev.Chute
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO sorter_confirms (sorter_id, seq, station_id, work_order_id, tracking_no, outcome, chute, occurred_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		ev.SorterID, int64(ev.Sequence), ev.StationID, tx.ID, tnArg, string(ev.Outcome), chuteArg, at); err != nil {
		return Confirmation{}, workorder.Order{}, err
	}
	switch ev.Outcome {
	case OutcomeChuteFull, OutcomeChuteCleared:
		err := setChuteTx(ctx, tx, ev.StationID, ev.Chute, ev.Outcome == OutcomeChuteFull, ev.SorterID)
		return c, order, err
	}
	if !writeSort {
		return c, order, nil
	}
	// The parcel's state follows the chute it went into, unless a bag
	// already holds it: the machine reports, it does not unbag.
	p, err := tx.Parcel(ctx, string(tn))
	if err != nil {
		return Confirmation{}, workorder.Order{}, err
	}
	if p.State != workorder.StateBagged && p.State != workorder.StateSealed {
		// The weight the belt's sort read: a parcel the machine sorted was
		// never weighed by hand, and its bag counts kilograms.
		move := workorder.Move{Op: workorder.OpConfirm, TrackingNo: string(tn), To: workorder.StateSorted, Chute: ev.Chute,
			WeightG: known.WeightG}
		if c.NextHop != nil {
			move.NextHop = *c.NextHop
		}
		if c.Exception != nil {
			move.To, move.ExceptionCode = workorder.StateAside, c.Exception.Code
		}
		order.Moves = []workorder.Move{move}
		p.State, p.NextHop, p.Chute, p.ExceptionCode = move.To, move.NextHop, move.Chute, move.ExceptionCode
		if move.WeightG > 0 {
			p.WeightG = move.WeightG
		}
	}
	// A bag hanging under the chute takes the parcel, in this transaction,
	// with its own work order; a full bag makes the chute full for Resolve.
	if b.bags != nil && role.kind == sorting.ChuteNextHop {
		add, also, err := b.bags.AddAtChute(ctx, tx, scanID, workorder.Actor{Kind: workorder.ActorSorter, ID: ev.SorterID}, ev.Chute, p)
		if err != nil {
			return Confirmation{}, workorder.Order{}, err
		}
		c.Bag = &add
		if also != nil {
			order.Also = append(order.Also, *also)
		}
		if add.Full {
			if err := setChuteTx(ctx, tx, ev.StationID, ev.Chute, true, "bag:"+add.BagID); err != nil {
				return Confirmation{}, workorder.Order{}, err
			}
		}
	}
	var code, reason *string
	if c.Exception != nil {
		code, reason = &c.Exception.Code, &c.Exception.Reason
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO sort_results (id, work_order_id, station_id, tracking_no, next_hop, chute, exception_code, exception_reason,
		                          flow, flow_version, source, created_at)
		VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $9, 'sorter', $10)`,
		tx.ID, ev.StationID, string(tn), c.NextHop, ev.Chute, code, reason, c.Flow, c.FlowVersion, tx.Now)
	return c, order, err
}

func (ev SorterEvent) validate() (ident.TrackingNo, error) {
	need, ok := outcomeNeeds[ev.Outcome]
	switch {
	case !ok:
		return "", fmt.Errorf("%w: outcome %q is not one of sorted, no_read, chute_full, chute_cleared, recirculated, rejected, missort",
			ErrInvalidSorterEvent, ev.Outcome)
	case ev.Sequence == 0 || ev.Sequence > math.MaxInt64:
		return "", fmt.Errorf("%w: sequence must be between 1 and %d", ErrInvalidSorterEvent, int64(math.MaxInt64))
	case ev.SorterID == "":
		return "", fmt.Errorf("%w: no sorter", ErrInvalidSorterEvent)
	case need.chute && ev.Chute == 0:
		return "", fmt.Errorf("%w: %s needs a chute", ErrInvalidSorterEvent, ev.Outcome)
	case ev.Chute < 0 || ev.Chute > sorting.MaxChute:
		return "", fmt.Errorf("%w: chute %d is not between 1 and %d", ErrInvalidSorterEvent, ev.Chute, sorting.MaxChute)
	case need.trackingNo && ev.TrackingNo == "":
		return "", fmt.Errorf("%w: %s needs a tracking number", ErrInvalidSorterEvent, ev.Outcome)
	}
	if ev.TrackingNo == "" {
		return "", nil
	}
	return ident.ParseTrackingNo(ev.TrackingNo)
}

// role of a chute on a map: a next hop's, or a special chute.
type chuteUse struct {
	kind sorting.ChuteKind // "" when the chute is not on the map
	hop  string
}

func chuteRole(m sorting.ChuteMap, chute int) chuteUse {
	switch chute {
	case 0:
		return chuteUse{}
	case m.ExceptionChute:
		return chuteUse{kind: sorting.ChuteException}
	case m.OverflowChute:
		return chuteUse{kind: sorting.ChuteOverflow}
	case m.RejectChute:
		return chuteUse{kind: sorting.ChuteReject}
	}
	for hop, cs := range m.NextHops {
		for _, c := range cs {
			if c == chute {
				return chuteUse{kind: sorting.ChuteNextHop, hop: hop}
			}
		}
	}
	return chuteUse{}
}
