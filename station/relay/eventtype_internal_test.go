package relay

import (
	"strings"
	"testing"

	"github.com/expresshub/station/clients"
	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
	"github.com/expresshub/station/workorder"
)

// TestEveryEventTypeMapsToAnOrderCenterType: every station event type has
// an order center type, and none reaches the order center's enum as
// UNSPECIFIED (which it refuses); the mapping keeps the name.
func TestEveryEventTypeMapsToAnOrderCenterType(t *testing.T) {
	seen := map[downstreamv1.TrackingEventType]workorder.EventType{}
	for _, et := range workorder.EventTypes() {
		ct, err := eventTypeFor(et)
		if err != nil {
			t.Fatalf("%s: %v", et, err)
		}
		pb := clients.TrackingEvent{Type: ct}.Proto().GetType()
		if pb == downstreamv1.TrackingEventType_TRACKING_EVENT_TYPE_UNSPECIFIED {
			t.Fatalf("%s maps to UNSPECIFIED", et)
		}
		if want := "TRACKING_EVENT_TYPE_" + strings.ToUpper(et.String()); pb.String() != want {
			t.Fatalf("%s maps to %s, want %s", et, pb, want)
		}
		if other, dup := seen[pb]; dup {
			t.Fatalf("%s and %s both map to %s", et, other, pb)
		}
		seen[pb] = et
	}
	if _, err := eventTypeFor(workorder.EventType{}); err == nil {
		t.Fatal("the zero event type mapped")
	}
}
