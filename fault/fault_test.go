package fault

import (
	"errors"
	"fmt"
	"testing"
)

var errBagSealed = New(Conflict, "bag_sealed", "bag is sealed")

func TestSentinelMatchesThroughWrapsAndWith(t *testing.T) {
	refusal := errBagSealed.With(map[string]any{"bag_id": "BG1"}, "bag %s is sealed", "BG1")
	err := fmt.Errorf("packing: add: %w", refusal)
	if !errors.Is(err, errBagSealed) {
		t.Fatal("With lost its sentinel")
	}
	if errors.Is(err, New(Conflict, "bag_sealed", "bag is sealed")) {
		t.Fatal("a different sentinel with the same code matched")
	}
	e, ok := As(err)
	if !ok || e.Kind != Conflict || e.Code != "bag_sealed" || e.Details["bag_id"] != "BG1" || e.Error() != "bag BG1 is sealed" {
		t.Fatalf("As = %+v, %v", e, ok)
	}
	again := refusal.With(map[string]any{"x": 1}, "again")
	if !errors.Is(again, errBagSealed) || again.Details["bag_id"] != "BG1" || again.Details["x"] != 1 {
		t.Fatalf("With of a With: %+v", again)
	}
	if errBagSealed.Details != nil {
		t.Fatal("With changed the sentinel")
	}
}

func TestKindOfUnclassifiedIsInternal(t *testing.T) {
	if k := KindOf(errors.New("boom")); k != Internal {
		t.Fatalf("kind %v", k)
	}
	if k := KindOf(fmt.Errorf("x: %w", errBagSealed)); k != Conflict {
		t.Fatalf("kind %v", k)
	}
	if Kind(200).String() != "kind(200)" || Unavailable.String() != "unavailable" {
		t.Fatal("names")
	}
}

// badID stands for ident's errors: a leaf that cannot import fault.
type badID struct{}

func (badID) Error() string { return "invalid tracking number" }
func (badID) Code() string  { return "invalid_tracking_no" }
func (badID) InvalidInput() {}

type coded struct{}

func (coded) Error() string { return "boom" }
func (coded) Code() string  { return "x" }

func TestInvalidInputOfALeafIsInvalid(t *testing.T) {
	e, ok := As(fmt.Errorf("sort: %w", badID{}))
	if !ok || e.Kind != Invalid || e.Code != "invalid_tracking_no" || e.Msg != "invalid tracking number" {
		t.Fatalf("As = %+v, %v", e, ok)
	}
	if k := KindOf(coded{}); k != Internal {
		t.Fatalf("an error with only a Code method is %v, want internal", k)
	}
	// A classified error wins over a leaf's.
	if e, _ := As(fmt.Errorf("%w: %w", badID{}, errBagSealed)); e.Code != "bag_sealed" {
		t.Fatalf("code %s", e.Code)
	}
}
