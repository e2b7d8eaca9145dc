package workorder

import (
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/expresshub/station/fault"
)

// State is where a parcel physically is at a station. The zero value, "",
// is "not here": never seen, or gone before this visit.
type State string

// The parcel's states, in the order of its way through the station.
const (
	StateNone     State = ""
	StateReceived State = "received"  // inbound scan accepted
	StateSorted   State = "sorted"    // next hop and chute decided
	StateBagged   State = "bagged"    // in an open bag
	StateSealed   State = "sealed"    // its bag is sealed
	StateDeparted State = "departed"  // left on a closed handover
	StateAside    State = "exception" // put aside with an exception code
)

// States are all states a parcel can be in, "not here" first.
func States() []State {
	return []State{StateNone, StateReceived, StateSorted, StateBagged, StateSealed, StateDeparted, StateAside}
}

// Parcel is a parcel's state at one station.
type Parcel struct {
	StationID     string    `json:"station_id"`
	TrackingNo    string    `json:"tracking_no"`
	Visit         int       `json:"visit"` // 1 for the first stay; a parcel received after it departed starts the next
	State         State     `json:"state"`
	NextHop       string    `json:"next_hop,omitempty"`
	Chute         int       `json:"chute,omitempty"`
	BagID         string    `json:"bag_id,omitempty"`
	HandoverID    string    `json:"handover_id,omitempty"`
	ExceptionCode string    `json:"exception_code,omitempty"`
	WeightG       int       `json:"weight_g,omitempty"` // from the waybill, when a sort knew it
	WorkOrderID   uuid.UUID `json:"work_order_id"`      // the operation that put it in this state
	VisitStarted  time.Time `json:"visit_started_at"`   // when this visit began
	VisitOrderID  uuid.UUID `json:"visit_work_order_id"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Here reports whether the parcel is at the station now.
func (p Parcel) Here() bool { return p.State != StateNone && p.State != StateDeparted }

// Op is an operation on a parcel, for the state matrix.
type Op string

// The operations that move a parcel.
const (
	OpReceive     Op = "receive"
	OpSort        Op = "sort"
	OpConfirm     Op = "sorter_confirm" // the sorting machine put it into a chute
	OpBagAdd      Op = "bag_add"
	OpBagRemove   Op = "bag_remove"
	OpBagSeal     Op = "bag_seal"       // its bag was sealed: bagged → sealed
	OpHandover    Op = "handover_close" // its bag left: sealed → departed
	OpChuteBagAdd Op = "chute_bag_add"  // a confirm or a bind put it into the chute's bag
)

// Refusals of the state matrix. Repeats are not errors: see ErrRepeat.
var (
	ErrParcelDeparted = fault.New(fault.Conflict, "parcel_departed",
		"the parcel has left this station; receive it again to start a new visit")
	ErrParcelBagged = fault.New(fault.Conflict, "parcel_bagged",
		"the parcel is in a bag; remove it from the bag first")
	ErrParcelSealed = fault.New(fault.Conflict, "parcel_in_sealed_bag",
		"the parcel is in a sealed bag")
	ErrParcelNotSorted = fault.New(fault.Conflict, "not_sorted",
		"parcel is not sorted to a next hop at this station")
	ErrParcelAside = fault.New(fault.Conflict, "parcel_put_aside",
		"the parcel is put aside as an exception; sort it again once the problem is solved")
	ErrParcelNotBagged = fault.New(fault.NotFound, "not_in_bag", "parcel is not in this bag")
	ErrAlreadyBagged   = fault.New(fault.Conflict, "already_bagged", "parcel is already in a bag")
	// ErrRepeat is not a refusal: what was asked already happened (a second
	// receive of a parcel that is here). Callers answer it as a repeat.
	ErrRepeat = fault.New(fault.Conflict, "repeat", "this already happened")
)

// verdict of the matrix for one operation from one state: nil allows it,
// ErrRepeat makes it a repeat, anything else refuses it.
type verdicts map[State]*fault.Error

// matrix is the parcel-state rule of the station: which operation may
// follow which state. Rules that need more than the state (the bag's next
// hop, which bag) are the bag's own (packing.Bag.Add).
var matrix = map[Op]verdicts{
	// A parcel that is here is received once per visit; after it departed,
	// a receive starts its next visit. One put aside is checked again.
	OpReceive: {StateReceived: ErrRepeat, StateSorted: ErrRepeat, StateBagged: ErrRepeat, StateSealed: ErrRepeat},
	// A sort without a receive starts the visit (the sort scan is the
	// arrival, as at a belt); a bagged parcel keeps its bag's next hop.
	OpSort: {StateBagged: ErrParcelBagged, StateSealed: ErrParcelSealed, StateDeparted: ErrParcelDeparted},
	// The machine reports what physically happened, which is never refused:
	// a departed parcel back on the belt starts a new visit, and a bagged one
	// keeps its bag (the confirm moves nothing; see sorting's Confirm).
	OpConfirm: {},
	// Into the bag it is already in is a repeat, answered by packing
	// before it records anything (already_in_this_bag).
	OpBagAdd: {StateNone: ErrParcelNotSorted, StateReceived: ErrParcelNotSorted, StateAside: ErrParcelAside,
		StateDeparted: ErrParcelDeparted, StateBagged: ErrAlreadyBagged, StateSealed: ErrAlreadyBagged},
	OpBagRemove: {StateNone: ErrParcelNotBagged, StateReceived: ErrParcelNotBagged, StateSorted: ErrParcelNotBagged,
		StateAside: ErrParcelNotBagged, StateSealed: ErrParcelSealed, StateDeparted: ErrParcelDeparted},
}

// Check applies the matrix: nil when op may follow p's state, ErrRepeat (with
// the parcel's facts) for a repeat, else the refusal.
func Check(op Op, p Parcel) error {
	v, ok := matrix[op][p.State]
	if !ok || v == nil {
		return nil
	}
	return v.With(p.facts(), "%s", refusalText(v, p))
}

// Matrix is the rule as a table, for the README and the API: for each
// operation and state, "" (allowed), "repeat" or the refusal's code.
func Matrix() map[Op]map[State]string {
	out := make(map[Op]map[State]string, len(matrix))
	for op, vs := range matrix {
		row := make(map[State]string, len(States()))
		for _, s := range States() {
			if v := vs[s]; v != nil {
				row[s] = v.Code
			} else {
				row[s] = ""
			}
		}
		out[op] = row
	}
	return out
}

func (p Parcel) facts() map[string]any {
	f := map[string]any{"tracking_no": p.TrackingNo, "state": string(p.State)}
	if p.BagID != "" {
		f["bag_id"] = p.BagID
	}
	if p.HandoverID != "" {
		f["handover_id"] = p.HandoverID
	}
	if p.ExceptionCode != "" {
		f["exception_code"] = p.ExceptionCode
	}
	if p.NextHop != "" {
		f["next_hop"] = p.NextHop
	}
	return f
}

func refusalText(v *fault.Error, p Parcel) string {
	switch v {
	case ErrParcelDeparted:
		if p.HandoverID != "" {
			return "parcel " + p.TrackingNo + " left this station on handover " + p.HandoverID + "; receive it again to start a new visit"
		}
	case ErrParcelBagged:
		return "parcel " + p.TrackingNo + " is in bag " + p.BagID + "; remove it from the bag first"
	case ErrParcelSealed:
		return "parcel " + p.TrackingNo + " is in sealed bag " + p.BagID
	case ErrParcelAside:
		return "parcel " + p.TrackingNo + " is put aside (" + p.ExceptionCode + "); sort it again once the problem is solved"
	case ErrParcelNotSorted:
		return "parcel " + p.TrackingNo + " was not sorted at " + p.StationID
	}
	return v.Msg
}

// MatrixMarkdown renders the matrix as the README's table: one row per
// operation, one column per state, each cell "ok", "repeat" or the
// refusal's code.
func MatrixMarkdown() string {
	ops := []Op{OpReceive, OpSort, OpConfirm, OpBagAdd, OpBagRemove}
	var b strings.Builder
	b.WriteString("| operation \\ state |")
	for _, s := range States() {
		name := string(s)
		if s == StateNone {
			name = "not here"
		}
		b.WriteString(" " + name + " |")
	}
	b.WriteString("\n| --- |" + strings.Repeat(" --- |", len(States())) + "\n")
	m := Matrix()
	for _, op := range ops {
		b.WriteString("| `" + string(op) + "` |")
		for _, s := range States() {
			cell := m[op][s]
			switch cell {
			case "":
				cell = "ok"
			case "repeat":
			default:
				cell = "`" + cell + "`"
			}
			b.WriteString(" " + cell + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}
