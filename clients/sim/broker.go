package sim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// The order center's side of the broker sinks: instead of (or besides)
// taking pushes over gRPC, it consumes the tracking events the relay
// published, through a durable consumer, and records each through the same
// path as a push, deduplicating by event id. So the lost / duplicated /
// order checks read the same event log whatever the sink.

// Consumer is a running broker consumer; Stop ends it and waits.
type Consumer struct {
	stop func()
	done chan struct{}
}

// Stop ends the consumer and waits for it to finish the event in hand.
func (c *Consumer) Stop() {
	c.stop()
	<-c.done
}

// record decodes one message and records it; a message that does not
// decode is logged and dropped (it would never decode on redelivery).
func (s *Simulator) record(data []byte) {
	var e downstreamv1.TrackingEvent
	if err := proto.Unmarshal(data, &e); err != nil {
		s.log.Warn("order center: undecodable tracking event dropped", "err", err)
		return
	}
	s.mu.Lock()
	ack := s.acceptLocked(&e, time.Now())
	s.mu.Unlock()
	if ack.GetStatus() == downstreamv1.AckStatus_ACK_STATUS_REJECTED {
		s.log.Warn("order center: tracking event rejected", "event_id", e.GetEventId(), "reason", ack.GetReason())
	}
}

// JetStreamSource names what the order center consumes from JetStream.
type JetStreamSource struct {
	URL     string
	Stream  string
	Subject string // filter, e.g. "tracking.>"
	Durable string // the durable consumer's name: a restart resumes where it left off
}

// jetStreamAckWait is how long the server waits for the order center's
// ack before it sends a message again. Recording takes microseconds; the
// wait is what a message lost on the way (a dropped connection) costs,
// during which nothing after it is delivered.
const jetStreamAckWait = 2 * time.Second

// ConsumeJetStream starts consuming tracking events from a JetStream
// stream through a durable pull consumer with explicit acks: a message is
// acknowledged after it is recorded, so a crash redelivers it and the
// event log deduplicates it. One message at a time is in flight, so the
// order center records the stream in stream order even when deliveries
// are lost on the way.
func (s *Simulator) ConsumeJetStream(ctx context.Context, src JetStreamSource) (*Consumer, error) {
	nc, err := nats.Connect(src.URL, nats.Name("sim-order-center"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("sim: jetstream: connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("sim: jetstream: %w", err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, src.Stream, jetstream.ConsumerConfig{
		Durable:       src.Durable,
		FilterSubject: src.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       jetStreamAckWait,
		// One message awaiting its ack at a time: the only way a durable
		// consumer keeps stream order (and so each parcel's order) when a
		// delivery is lost. A message the server sent into a connection
		// that then dropped is sent again only after the ack wait; with
		// more in flight, the ones after it would be recorded first (the
		// JetStream fleet test saw parcels' events out of order under
		// link faults and a NATS restart). A redelivered message that was
		// recorded (its ack was lost) is deduplicated by event id. The
		// cost is a round trip per message, far above the fleet's rate; an
		// order center that needs more reads one consumer per partition of
		// the subjects.
		MaxAckPending: 1,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("sim: jetstream: consumer %s on %s: %w", src.Durable, src.Stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		s.record(m.Data())
		if err := m.Ack(); err != nil {
			s.log.Warn("order center: ack failed; the event comes again and is deduplicated", "err", err)
		}
	}, jetstream.PullMaxMessages(500))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("sim: jetstream: consume: %w", err)
	}
	done := make(chan struct{})
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cc.Drain()
			<-cc.Closed()
			nc.Close()
			close(done)
		})
	}
	return &Consumer{stop: stop, done: done}, nil
}

// KafkaSource names what the order center consumes from Kafka.
type KafkaSource struct {
	Brokers []string
	Topic   string
	Group   string // the consumer group: committed offsets survive a restart
}

// ConsumeKafka starts consuming tracking events from a Kafka topic in a
// consumer group, committing offsets only after the records are recorded
// (at least once; the event log deduplicates). A partition is read in
// order, and a parcel's events share a partition (keyed by tracking
// number), so per-parcel order holds.
func (s *Simulator) ConsumeKafka(ctx context.Context, src KafkaSource) (*Consumer, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(src.Brokers...),
		kgo.ConsumerGroup(src.Group),
		kgo.ConsumeTopics(src.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("sim: kafka: %w", err)
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cl.Close()
		for cctx.Err() == nil {
			fetches := cl.PollFetches(cctx)
			fetches.EachError(func(topic string, p int32, err error) {
				if !errors.Is(err, context.Canceled) {
					s.log.Warn("order center: kafka fetch", "topic", topic, "partition", p, "err", err)
				}
			})
			var recs []*kgo.Record
			fetches.EachRecord(func(r *kgo.Record) {
				s.record(r.Value)
				recs = append(recs, r)
			})
			if len(recs) > 0 {
				if err := cl.CommitRecords(cctx, recs...); err != nil && cctx.Err() == nil {
					s.log.Warn("order center: kafka commit; the records come again and are deduplicated", "err", err)
				}
			}
		}
	}()
	return &Consumer{stop: cancel, done: done}, nil
}
