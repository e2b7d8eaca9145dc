package relay_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/station/relay"
	"github.com/expresshub/station/station/stationtest/linkproxy"
)

// natsURL is the NATS server with JetStream every development and CI
// machine runs (.ci/run starts it). Tests never skip without it.
const natsURL = "nats://127.0.0.1:4222"

// sink is one way to the order center: a Pusher per relay instance, and
// the order center consuming from it.
type sink struct {
	name   string
	pusher func() relay.Pusher
	cfg    relay.JetStreamConfig // the jetstream sink's
}

// jetStreamSink gives the test its own stream and subjects on the real
// server (deleted at the end) and has the simulated order center consume
// them through a durable consumer.
func (w *world) jetStreamSink() sink { return w.jetStreamSinkConsumedAt(natsURL) }

// jetStreamSinkConsumedAt is jetStreamSink with the order center's
// consumer connecting at consumerURL (a link proxy in front of the server,
// say).
func (w *world) jetStreamSinkConsumedAt(consumerURL string) sink {
	w.t.Helper()
	id := fmt.Sprintf("T%d_%d", time.Now().UnixNano(), w.seq.Add(1))
	cfg := relay.JetStreamConfig{URL: natsURL, Stream: "TRACKING_" + id, SubjectPrefix: "tracking_" + id,
		DedupWindow: relay.DefaultConfig().RetryHorizon() + time.Hour}
	first, err := relay.NewJetStream(context.Background(), cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		nc, err := nats.Connect(natsURL)
		if err != nil {
			return
		}
		defer nc.Close()
		if js, err := jetstream.New(nc); err == nil {
			_ = js.DeleteStream(context.Background(), cfg.Stream)
		}
	})
	w.t.Cleanup(first.Close)
	c, err := w.sim.ConsumeJetStream(context.Background(), sim.JetStreamSource{URL: consumerURL, Stream: cfg.Stream,
		Subject: cfg.SubjectPrefix + ".>", Durable: "order-center"})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(c.Stop)
	return sink{name: "jetstream", cfg: cfg, pusher: func() relay.Pusher {
		j, err := relay.NewJetStream(context.Background(), cfg)
		if err != nil {
			w.t.Fatal(err)
		}
		w.t.Cleanup(j.Close)
		return j
	}}
}

// kafkaSink starts franz-go's in-process Kafka (kfake; no broker can be
// installed on these machines) with the topic in 4 partitions, and has the
// simulated order center consume it in a consumer group.
func (w *world) kafkaSink() sink {
	w.t.Helper()
	const topic = "tracking-events"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(cluster.Close)
	c, err := w.sim.ConsumeKafka(context.Background(), sim.KafkaSource{Brokers: cluster.ListenAddrs(), Topic: topic, Group: "order-center"})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(c.Stop)
	return sink{name: "kafka", pusher: func() relay.Pusher {
		k, err := relay.NewKafka(relay.KafkaConfig{Brokers: cluster.ListenAddrs(), Topic: topic})
		if err != nil {
			w.t.Fatal(err)
		}
		w.t.Cleanup(k.Close)
		return k
	}}
}

func (w *world) grpcSink() sink {
	return sink{name: "grpc", pusher: func() relay.Pusher { return w.orderCenter() }}
}

// relayTo builds a relay instance delivering to p.
func (w *world) relayTo(p relay.Pusher, cfg relay.Config) *relay.Relay {
	w.t.Helper()
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 20 * time.Millisecond
	}
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Millisecond
	}
	return relay.New(w.db, p, cfg, nil, nil)
}

// TestEverySinkDeliversEachEventOnceInParcelOrder runs two relay instances
// end to end against each sink while writers add events, and applies the
// same checks to the order center whatever the sink: nothing lost, nothing
// recorded twice, each parcel's events in outbox order.
func TestEverySinkDeliversEachEventOnceInParcelOrder(t *testing.T) {
	for _, mk := range []func(*world) sink{(*world).grpcSink, (*world).jetStreamSink, (*world).kafkaSink} {
		w := newWorld(t)
		s := mk(w)
		t.Run(s.name, func(t *testing.T) {
			w.t = t
			const parcels, steps = 40, 4
			nos := make([]string, parcels)
			for i := range nos {
				nos[i] = w.parcel()
			}
			ctx, cancel := context.WithCancel(context.Background())
			var relays sync.WaitGroup
			for range 2 {
				r := w.relayTo(s.pusher(), relay.Config{BatchSize: 25, Workers: 2})
				relays.Go(func() { r.Run(ctx) })
			}
			types := []string{"arrived", "sorted", "bagged", "departed"}
			var writers sync.WaitGroup
			for g := range 4 {
				writers.Go(func() {
					for st := range steps {
						for i := g; i < parcels; i += 4 {
							if err := record(context.Background(), w.db, "SG-H01", nos[i], w.seq.Add(1), types[st]); err != nil {
								t.Error(err)
								return
							}
						}
					}
				})
			}
			writers.Wait()
			waitFor(t, "the outbox to drain and the order center to hold every event", func() bool {
				accepted, _ := w.sim.EventTotals()
				return w.count(`SELECT count(*) FROM tracking_outbox WHERE status <> 'delivered'`) == 0 && accepted == parcels*steps
			})
			cancel()
			relays.Wait()
			w.checkDelivered(nos)
			accepted, dups := w.sim.EventTotals()
			if accepted != parcels*steps {
				t.Fatalf("order center accepted %d events, want %d", accepted, parcels*steps)
			}
			t.Logf("%s: accepted %d, duplicates dropped %d", s.name, accepted, dups)
		})
	}
}

// TestJetStreamDropsARepublishedEvent: the event id travels as
// Nats-Msg-Id, so publishing the same events again (an acknowledgement was
// lost, the relay re-sends) is acknowledged and stored once; subjects are
// per station.
func TestJetStreamDropsARepublishedEvent(t *testing.T) {
	w := newWorld(t)
	id := fmt.Sprintf("D%d", time.Now().UnixNano())
	cfg := relay.JetStreamConfig{URL: natsURL, Stream: "TRACKING_" + id, SubjectPrefix: "tracking_" + id, DedupWindow: 3 * time.Hour}
	j, err := relay.NewJetStream(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), cfg.Stream) }()
	events := []clients.TrackingEvent{
		{EventID: "e-1", TrackingNo: w.parcel(), StationID: "SG-H01", Type: clients.EventArrived, OccurredAt: time.Now()},
		{EventID: "e-2", TrackingNo: w.parcel(), StationID: "SG-H02", Type: clients.EventSorted, OccurredAt: time.Now()},
	}
	for range 2 {
		acks, err := j.PushTrackingEvents(context.Background(), events)
		if err != nil || len(acks) != 2 || !acks[0].Delivered() || !acks[1].Delivered() {
			t.Fatalf("%+v %v", acks, err)
		}
	}
	st, err := js.Stream(context.Background(), cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(cfg.SubjectPrefix+".>"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 || info.Config.Duplicates != 3*time.Hour {
		t.Fatalf("stream holds %d messages (want 2), dedup window %s", info.State.Msgs, info.Config.Duplicates)
	}
	if info.State.Subjects[cfg.SubjectPrefix+".SG-H01"] != 1 || info.State.Subjects[cfg.SubjectPrefix+".SG-H02"] != 1 {
		t.Fatalf("per-station subjects: %v", info.State.Subjects)
	}
	msg, err := st.GetLastMsgForSubject(context.Background(), cfg.SubjectPrefix+".SG-H01")
	if err != nil || msg.Header.Get("Nats-Msg-Id") != "e-1" || msg.Header.Get(relay.HeaderEventID) != "e-1" {
		t.Fatalf("%+v %v", msg, err)
	}
	if _, ok := msg.Header[relay.HeaderTraceParent]; !ok {
		t.Fatal("no trace context header")
	}
}

// TestJetStreamDownLeavesTheBatchPendingUntouched: with the NATS
// connection gone the relay learns nothing about the events, so it burns
// no attempts; an event with no station to name a subject is dead at once.
func TestJetStreamDownLeavesTheBatchPendingUntouched(t *testing.T) {
	w := newWorld(t)
	s := w.jetStreamSink()
	no := w.parcel()
	w.record("SG-H01", no, "arrived")
	p := s.pusher()
	p.(*relay.JetStream).Close()
	_, err := w.relayTo(p, relay.Config{}).RunOnce(context.Background())
	if !errors.Is(err, relay.ErrUnavailable) {
		t.Fatalf("with the connection closed: %v", err)
	}
	if n := w.count(`SELECT count(*) FROM tracking_outbox WHERE status = 'pending' AND attempts = 0`); n != 1 {
		t.Fatalf("the event changed while NATS was away")
	}
	r := w.relayTo(s.pusher(), relay.Config{})
	w.record("", w.parcel(), "arrived") // no station: no subject
	res := drain(t, r)
	if res.Delivered != 1 || res.Dead != 1 {
		t.Fatalf("%+v", res)
	}
	waitFor(t, "the order center to consume the event", func() bool { return len(w.received(no)) == 1 })
	w.checkDelivered([]string{no})
}

// TestKafkaKeysByParcelAndCarriesTheEventID: every record's key is the
// tracking number (so a parcel's events share a partition, in outbox
// order), and its headers carry the event id and a trace context slot.
func TestKafkaKeysByParcelAndCarriesTheEventID(t *testing.T) {
	w := newWorld(t)
	const topic = "tracking-events"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	k, err := relay.NewKafka(relay.KafkaConfig{Brokers: cluster.ListenAddrs(), Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var nos []string
	for range 10 {
		no := w.parcel()
		nos = append(nos, no)
		w.record("SG-H01", no, "arrived")
		w.record("SG-H01", no, "sorted", "bagged")
	}
	if res := drain(t, w.relayTo(k, relay.Config{BatchSize: 7})); res.Delivered != 30 {
		t.Fatalf("%+v", res)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	partition := map[string]int32{}
	got := map[string][]string{}
	for n := 0; n < 30; {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		fetches := cl.PollFetches(ctx)
		cancel()
		if err := fetches.Err0(); err != nil {
			t.Fatal(err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			no := string(r.Key)
			if p, ok := partition[no]; ok && p != r.Partition {
				t.Errorf("parcel %s on partitions %d and %d", no, p, r.Partition)
			}
			partition[no] = r.Partition
			headers := map[string]string{}
			for _, h := range r.Headers {
				headers[h.Key] = string(h.Value)
			}
			if _, ok := headers[relay.HeaderTraceParent]; !ok || headers[relay.HeaderEventID] == "" {
				t.Errorf("headers %v", headers)
			}
			got[no] = append(got[no], headers[relay.HeaderEventID])
		})
	}
	for _, no := range nos {
		if want := w.outboxOrder(no); !slices.Equal(got[no], want) {
			t.Fatalf("parcel %s: topic has %v, outbox order %v", no, got[no], want)
		}
	}
}

// TestJetStreamLinkCutsLoseNothing: two relays publish through a link to
// NATS that is cut three times while writers keep adding events. Publishes
// whose acknowledgement never came leave their batch pending; re-sent, the
// stream drops what it already stored (Nats-Msg-Id). The order center ends
// with every event once, in parcel order.
func TestJetStreamLinkCutsLoseNothing(t *testing.T) {
	w := newWorld(t)
	s := w.jetStreamSink()
	link := linkproxy.New(t, "127.0.0.1:4222")
	cfg := s.cfg
	cfg.URL = "nats://" + link.Addr()
	cfg.AckTimeout = 500 * time.Millisecond
	const parcels, steps = 30, 4
	nos := make([]string, parcels)
	for i := range nos {
		nos[i] = w.parcel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var relays sync.WaitGroup
	for range 2 {
		j, err := relay.NewJetStream(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(j.Close)
		r := w.relayTo(j, relay.Config{BatchSize: 10, PushTimeout: 2 * time.Second})
		relays.Go(func() { r.Run(ctx) })
	}
	types := []string{"arrived", "sorted", "bagged", "departed"}
	for st := range steps {
		for _, no := range nos {
			w.record("SG-H01", no, types[st])
		}
		if st < 3 {
			link.Cut()
			time.Sleep(300 * time.Millisecond) // an outage, not a timing assertion
			link.Restore()
		}
	}
	waitFor(t, "the outbox to drain and the order center to hold every event", func() bool {
		accepted, _ := w.sim.EventTotals()
		return w.count(`SELECT count(*) FROM tracking_outbox WHERE status <> 'delivered'`) == 0 && accepted == parcels*steps
	})
	cancel()
	relays.Wait()
	w.checkDelivered(nos)
	if n := w.count(`SELECT count(*) FROM tracking_outbox WHERE attempts > 1 OR status = 'dead'`); n != 0 {
		t.Fatalf("%d events burnt attempts or went dead over link cuts", n)
	}
	if link.Refused() == 0 {
		t.Log("no reconnect was refused while the link was cut")
	}
}

// TestJetStreamConsumerLinkCutsKeepParcelOrder: the order center's
// consumer reads the stream through a link that goes silent while events
// are published, and is then cut. The messages the server sent into the
// silent link are lost on the way, and JetStream sends them again only
// after the ack wait; meanwhile the consumer must not record a parcel's
// later events ahead of them. The order center ends with every event once,
// each parcel's in outbox order.
func TestJetStreamConsumerLinkCutsKeepParcelOrder(t *testing.T) {
	w := newWorld(t)
	link := linkproxy.New(t, "127.0.0.1:4222")
	s := w.jetStreamSinkConsumedAt("nats://" + link.Addr())
	const parcels, steps = 20, 4
	nos := make([]string, parcels)
	for i := range nos {
		nos[i] = w.parcel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var relays sync.WaitGroup
	r := w.relayTo(s.pusher(), relay.Config{BatchSize: 20})
	relays.Go(func() { r.Run(ctx) })
	published := func() bool {
		return w.count(`SELECT count(*) FROM tracking_outbox WHERE status <> 'delivered'`) == 0
	}
	types := []string{"arrived", "sorted", "bagged", "departed"}
	for st := range steps {
		if st%2 == 0 {
			// Every event of this step is published while the consumer's
			// link is silent, and the link is then cut: what the server
			// sent meanwhile never arrives.
			link.Freeze()
		}
		for _, no := range nos {
			w.record("SG-H01", no, types[st])
		}
		waitFor(t, "the relay to publish the step's events", published)
		if st%2 == 0 {
			link.Cut()
			link.Restore()
		}
	}
	waitFor(t, "the order center to hold every event", func() bool {
		accepted, _ := w.sim.EventTotals()
		return accepted == parcels*steps
	})
	cancel()
	relays.Wait()
	w.checkDelivered(nos)
}

// TestJetStreamPublishesNothingBehindTheRelaysBack: a batch published while
// the link to NATS is down fails at once, and none of it reaches the stream
// later on its own. (nats.go keeps what is published while it reconnects
// in a buffer it sends after reconnecting; the relay has by then been told
// the batch failed, so those messages would be stored behind its back,
// possibly ahead of earlier events of their parcels still to be re-sent,
// and the stream's per-parcel order would be lost.)
func TestJetStreamPublishesNothingBehindTheRelaysBack(t *testing.T) {
	w := newWorld(t)
	s := w.jetStreamSink()
	link := linkproxy.New(t, "127.0.0.1:4222")
	cfg := s.cfg
	cfg.URL = "nats://" + link.Addr()
	cfg.AckTimeout = 500 * time.Millisecond
	j, err := relay.NewJetStream(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	event := func(id string) []clients.TrackingEvent {
		return []clients.TrackingEvent{{EventID: id, TrackingNo: w.parcel(), StationID: "SG-H01", Type: clients.EventArrived, OccurredAt: time.Now()}}
	}
	link.Cut()
	time.Sleep(200 * time.Millisecond) // the client sees its connection reset and starts reconnecting
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = j.PushTrackingEvents(ctx, event("while-down"))
	cancel()
	if !errors.Is(err, clients.ErrUnavailable) {
		t.Fatalf("publish with the link down: %v", err)
	}
	link.Restore()
	waitFor(t, "a publish after the link is back", func() bool {
		acks, err := j.PushTrackingEvents(context.Background(), event("after"))
		return err == nil && len(acks) == 1 && acks[0].Delivered()
	})
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetLastMsgForSubject(context.Background(), cfg.SubjectPrefix+".SG-H01"); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want only the one published after the link came back", info.State.Msgs)
	}
}
