package reliability

import (
	"context"
	"slices"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// natsBus is the jetstream sink's world in the fleet test: the test's own
// nats-server, a toxiproxy link for the relays' connections and another
// for the order center's consumer, so faults hit each side on its own.
type natsBus struct {
	nats                *natsProc
	relayLink, consLink *toxiLink
}

// The stream and durable consumer the fleet uses: the defaults of
// relay.jetstream and of the simulated order center (station/devenv).
const (
	fleetStream  = "TRACKING"
	fleetDurable = "order-center"
)

func startNATSBus(t testing.TB, toxi *toxiproxy.Client) *natsBus {
	t.Helper()
	n := startNATSProc(t)
	return &natsBus{nats: n, relayLink: newToxiLink(t, toxi, "nats-relay", n.Addr), consLink: newToxiLink(t, toxi, "nats-order-center", n.Addr)}
}

// relayEnv points the station's relays at JetStream through their link.
func (b *natsBus) relayEnv() []string {
	return []string{"STATION_RELAY_SINK=jetstream", "STATION_RELAY_JETSTREAM_URL=nats://" + b.relayLink.Addr()}
}

// consumerEnv makes `station sim` consume the stream through its link.
func (b *natsBus) consumerEnv() []string {
	return []string{"STATION_RELAY_SINK=jetstream", "STATION_RELAY_JETSTREAM_URL=nats://" + b.consLink.Addr()}
}

// faults are NATS's: the links' faults, the relays' and the consumer's in
// turn, and the server killed and restarted.
func (b *natsBus) faults() []fleetFault {
	return interleave(linkFaults(b.relayLink), linkFaults(b.consLink), []fleetFault{natsRestart(b.nats)})
}

// natsRestart kills nats-server and starts it again on the same port and
// store; JetStream recovers the stream, its consumer and the dedup window
// from disk.
func natsRestart(n *natsProc) fleetFault {
	return fleetFault{"nats-server killed (SIGKILL) and restarted on its store", 1200 * time.Millisecond, func(context.Context) (func() error, error) {
		n.kill()
		return n.start, nil
	}}
}

// waitConsumed waits, at most until since+within, until the order center's
// durable consumer has nothing left to read or acknowledge; it returns the
// time from since and the number of messages in the stream (one per
// event: a re-publish within the dedup window is dropped).
func (b *natsBus) waitConsumed(t testing.TB, since time.Time, within time.Duration) (took time.Duration, streamMsgs uint64) {
	t.Helper()
	nc, err := nats.Connect(b.nats.URL(), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var ci *jetstream.ConsumerInfo
		var si *jetstream.StreamInfo
		s, err := js.Stream(ctx, fleetStream)
		if err == nil {
			si, err = s.Info(ctx)
		}
		if err == nil {
			var c jetstream.Consumer
			if c, err = s.Consumer(ctx, fleetDurable); err == nil {
				ci, err = c.Info(ctx)
			}
		}
		cancel()
		took = time.Since(since)
		if err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 {
			return took, si.State.Msgs
		}
		if took > within {
			if err != nil {
				t.Fatalf("order center's consumer %v after the faults stopped: %v", took.Round(time.Millisecond), err)
			}
			t.Errorf("order center's consumer %v after the faults stopped: %d messages unread, %d unacknowledged", took.Round(time.Millisecond), ci.NumPending, ci.NumAckPending)
			return took, si.State.Msgs
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFleetJetStreamFaultsAndLoad is the fleet test with relay.sink
// jetstream: the relays publish to a nats-server of the test's own, and
// the order center consumes the stream through a durable consumer. On top
// of the fleet's faults, the relays' and the consumer's NATS connections
// are slowed, reset, stalled and cut, and the server is killed and
// restarted on its store. The promise is the same: lost 0, duplicated 0,
// per-parcel order kept. Its load runs a third of the fleet test's (at
// least the short form's), to keep `make reliability` bounded.
func TestFleetJetStreamFaultsAndLoad(t *testing.T) {
	t.Parallel()
	runFleet(t, fleetSetup{sink: "jetstream", load: max(fleetShortLoad, fleetLoadTime(t)/3)})
}

// streamOutOfOrder reads the whole stream, in stream order, and counts the
// parcels whose events it holds in another order than their commit (outbox
// id) order: a wrong order in the stream is the relay's doing, one only at
// the order center the consumer's.
func (b *natsBus) streamOutOfOrder(t testing.TB, events []outboxRow, msgs uint64) int {
	t.Helper()
	nc, err := nats.Connect(b.nats.URL(), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, fleetStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("nats: ordered consumer: %v", err)
	}
	inStream := map[string][]string{} // tracking no -> event ids in stream order
	for n := uint64(0); n < msgs; {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("nats: read stream: %v", err)
		}
		got := 0
		for m := range batch.Messages() {
			var e downstreamv1.TrackingEvent
			if err := proto.Unmarshal(m.Data(), &e); err != nil {
				t.Fatalf("stream message %s: %v", m.Headers().Get(jetstream.MsgIDHeader), err)
			}
			inStream[e.GetTrackingNo()] = append(inStream[e.GetTrackingNo()], e.GetEventId())
			got++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("nats: read stream: %v", err)
		}
		if got == 0 {
			t.Fatalf("nats: stream read stopped at %d of %d messages", n, msgs)
		}
		n += uint64(got)
	}
	committed := map[string][]string{}
	for _, e := range events {
		committed[e.TrackingNo] = append(committed[e.TrackingNo], e.EventID)
	}
	wrong := 0
	for tn, want := range committed {
		got := slices.DeleteFunc(slices.Clone(inStream[tn]), func(id string) bool { return !slices.Contains(want, id) })
		if !slices.Equal(got, want) {
			wrong++
			if wrong <= 5 {
				t.Errorf("parcel %s: events in the stream in order %v, committed %v", tn, inStream[tn], want)
			}
		}
	}
	return wrong
}
