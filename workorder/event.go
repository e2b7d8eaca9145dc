package workorder

import "fmt"

// EventType is what happened to a parcel, as the order center names it. It
// is a closed set: the zero value is invalid and no code outside this file
// can make a new one, so a misspelt event type does not compile. The relay
// maps every value to the order center's enum (a test checks that none maps
// to UNSPECIFIED).
type EventType struct{ name string }

// The tracking event types.
var (
	EventArrived         = EventType{"arrived"}
	EventSorted          = EventType{"sorted"}
	EventException       = EventType{"exception"}
	EventBagged          = EventType{"bagged"}
	EventUnbagged        = EventType{"unbagged"}
	EventBagSealed       = EventType{"bag_sealed"}
	EventDeparted        = EventType{"departed"}
	EventSorterConfirmed = EventType{"sorter_confirmed"}
)

// EventTypes are all of them, in the order center's enum order.
func EventTypes() []EventType {
	return []EventType{EventArrived, EventSorted, EventException, EventBagged, EventUnbagged,
		EventBagSealed, EventDeparted, EventSorterConfirmed}
}

// String is the stored, lower-case name ("bag_sealed").
func (t EventType) String() string { return t.name }

// IsZero reports an unset type.
func (t EventType) IsZero() bool { return t.name == "" }

// ParseEventType reads a stored name back; an unknown one is an error, never
// a guess.
func ParseEventType(s string) (EventType, error) {
	for _, t := range EventTypes() {
		if t.name == s {
			return t, nil
		}
	}
	return EventType{}, fmt.Errorf("workorder: unknown tracking event type %q", s)
}
