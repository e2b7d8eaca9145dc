package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/expresshub/station/clients"
)

// KafkaConfig shapes the Kafka sink (relay.kafka.*).
type KafkaConfig struct {
	Brokers []string // seed brokers, host:port
	Topic   string   // one topic for every station; the key spreads parcels over partitions
	// Linger is how long the producer waits to fill a batch per partition.
	Linger time.Duration
}

// DefaultKafkaConfig matches the station's configuration defaults.
func DefaultKafkaConfig() KafkaConfig {
	return KafkaConfig{Brokers: []string{"127.0.0.1:9092"}, Topic: "tracking-events", Linger: 5 * time.Millisecond}
}

// Kafka produces tracking events to a Kafka topic with franz-go's
// idempotent producer (the default: retries never duplicate or reorder a
// partition's records). The key is the tracking number, so all of a
// parcel's events land on one partition in outbox order; the event id and
// the trace context travel in headers. An event counts as delivered once
// the producer reports it acknowledged by all in-sync replicas.
type Kafka struct {
	cl *kgo.Client
}

// NewKafka builds the producer. It connects lazily: a broker that is down
// shows at the first push, as unavailability.
func NewKafka(cfg KafkaConfig) (*Kafka, error) {
	d := DefaultKafkaConfig()
	if len(cfg.Brokers) == 0 {
		cfg.Brokers = d.Brokers
	}
	if cfg.Topic == "" {
		cfg.Topic = d.Topic
	}
	if cfg.Linger <= 0 {
		cfg.Linger = d.Linger
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Hash the key to a partition: one parcel, one partition, in order.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ClientID("station-relay"),
	)
	if err != nil {
		return nil, fmt.Errorf("relay: kafka: %w", err)
	}
	return &Kafka{cl: cl}, nil
}

// Close flushes nothing: what was not acknowledged stays pending in the
// outbox and is sent again.
func (k *Kafka) Close() { k.cl.Close() }

// PushTrackingEvents produces the events in order and waits for every
// acknowledgement. ctx bounds the wait: records the brokers did not
// acknowledge in time make the whole batch unavailable (it stays pending;
// consumers deduplicate by event id what was written anyway).
func (k *Kafka) PushTrackingEvents(ctx context.Context, events []clients.TrackingEvent) ([]clients.EventAck, error) {
	acks := make([]clients.EventAck, len(events))
	errs := make([]error, len(events))
	var wg sync.WaitGroup
	for i, e := range events {
		acks[i].EventID = e.EventID
		data, err := proto.Marshal(e.Proto())
		if err != nil {
			acks[i].Status, acks[i].Reason = clients.AckRejected, "encode: "+err.Error()
			continue
		}
		rec := &kgo.Record{Key: []byte(e.TrackingNo), Value: data, Headers: []kgo.RecordHeader{
			{Key: HeaderEventID, Value: []byte(e.EventID)},
			{Key: HeaderTraceParent, Value: []byte(e.TraceParent)},
		}}
		wg.Add(1)
		k.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	wg.Wait() // every promise runs: on success, failure or ctx's end
	for i, err := range errs {
		switch {
		case err == nil:
			if acks[i].Status == "" {
				acks[i].Status = clients.AckAccepted
			}
		case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.CorruptMessage):
			acks[i].Status, acks[i].Reason = clients.AckRejected, err.Error()
		default:
			return nil, fmt.Errorf("relay: kafka produce: %w: %w", clients.ErrUnavailable, err)
		}
	}
	return acks, nil
}
