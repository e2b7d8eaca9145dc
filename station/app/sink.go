package app

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/relay"
)

// trackingSink builds where the relay delivers (relay.sink): the order
// center over gRPC, or a broker the order center consumes from. A broker
// sink is closed with the app.
func (a *App) trackingSink(ctx context.Context, rc relay.Config) (relay.Pusher, error) {
	cfg := a.cfg.Relay
	switch cfg.Sink {
	case config.SinkJetStream:
		// A re-send within the dedup window is dropped by the stream; the
		// relay may re-send for as long as it retries.
		if h := rc.RetryHorizon(); cfg.JetStream.DedupWindow <= h {
			return nil, fmt.Errorf("%w: relay.jetstream.dedup_window %s must be longer than the relay's retry horizon %s",
				config.ErrInvalid, cfg.JetStream.DedupWindow, h)
		}
		js, err := relay.NewJetStream(ctx, relay.JetStreamConfig{URL: cfg.JetStream.URL, Stream: cfg.JetStream.Stream,
			SubjectPrefix: cfg.JetStream.SubjectPrefix, DedupWindow: cfg.JetStream.DedupWindow,
			// Room for two batches per worker awaiting their acks, so a
			// batch never stalls on the publish window.
			MaxPending: max(relay.DefaultJetStreamConfig().MaxPending, 2*rc.BatchSize*max(rc.Workers, 1))})
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, js.Close)
		a.log.Info("relay sink: jetstream", zap.String("url", config.RedactURL(cfg.JetStream.URL)),
			zap.String("stream", cfg.JetStream.Stream), zap.String("subjects", cfg.JetStream.SubjectPrefix+".<station>"))
		return js, nil
	case config.SinkKafka:
		var brokers []string
		for _, b := range strings.Split(cfg.Kafka.Brokers, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
		k, err := relay.NewKafka(relay.KafkaConfig{Brokers: brokers, Topic: cfg.Kafka.Topic})
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, k.Close)
		a.log.Info("relay sink: kafka", zap.Strings("brokers", brokers), zap.String("topic", cfg.Kafka.Topic))
		return k, nil
	default:
		a.log.Info("relay sink: grpc (the order center's PushTrackingEvents)")
		return a.clients.OrderCenter, nil
	}
}
