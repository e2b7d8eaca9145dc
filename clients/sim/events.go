package sim

import "time"

// RecordedEvent is a tracking event as the simulated order center stored it.
type RecordedEvent struct {
	EventID     string
	TrackingNo  string
	StationID   string
	Type        string // lower-case event type: "arrived", "sorted", ...
	OccurredAt  time.Time
	OperatorID  string
	SorterID    string
	PayloadJSON string
	// Duplicates counts later pushes of the same event id.
	Duplicates int64
	ReceivedAt time.Time
}

// eventLog keeps accepted events in arrival order, indexed by event id and
// by tracking number. Guarded by Simulator.mu.
type eventLog struct {
	all        []*RecordedEvent
	byID       map[string]*RecordedEvent
	byParcel   map[string][]*RecordedEvent
	accepted   int64
	duplicates int64
}

func newEventLog() eventLog {
	return eventLog{byID: make(map[string]*RecordedEvent), byParcel: make(map[string][]*RecordedEvent)}
}

// add stores e unless its id is known; it reports whether e was new.
func (l *eventLog) add(e RecordedEvent) bool {
	if old, ok := l.byID[e.EventID]; ok {
		old.Duplicates++
		l.duplicates++
		return false
	}
	p := &e
	l.all = append(l.all, p)
	l.byID[e.EventID] = p
	l.byParcel[e.TrackingNo] = append(l.byParcel[e.TrackingNo], p)
	l.accepted++
	return true
}

func (l *eventLog) list(trackingNo string) []RecordedEvent {
	src := l.all
	if trackingNo != "" {
		src = l.byParcel[trackingNo]
	}
	out := make([]RecordedEvent, len(src))
	for i, e := range src {
		out[i] = *e
	}
	return out
}
