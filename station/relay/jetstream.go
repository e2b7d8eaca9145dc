package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/expresshub/station/clients"
)

// Message headers every broker sink sets besides the payload (a
// downstreamv1.TrackingEvent in protobuf).
const (
	// HeaderEventID carries the event id; consumers deduplicate on it.
	HeaderEventID = "Event-Id"
	// HeaderTraceParent is the W3C trace context of the event's publish
	// span, a child of the request that wrote the event; empty when that
	// request was not traced (or tracing is off). The header is always
	// there so consumers can rely on its presence.
	HeaderTraceParent = "traceparent"
)

// JetStreamConfig shapes the JetStream sink (relay.jetstream.*).
type JetStreamConfig struct {
	URL string // nats://127.0.0.1:4222
	// Stream is the stream the sink publishes to; it is created, or its
	// subjects and dedup window updated, at start.
	Stream string
	// SubjectPrefix names the subjects: <prefix>.<station id>, one per
	// station, so a consumer can follow one station or all (<prefix>.>).
	SubjectPrefix string
	// DedupWindow is the stream's duplicate window: a re-publish of an
	// event id within it is acknowledged and dropped. It must be longer
	// than the relay's retry horizon (see RetryHorizon), so that an event
	// published whose acknowledgement was lost is never stored twice.
	DedupWindow time.Duration
	// MaxPending bounds the publishes awaiting their acknowledgement.
	MaxPending int
	// AckTimeout bounds the wait for one publish's acknowledgement; a
	// publish not acknowledged by then counts as the server not answering.
	AckTimeout time.Duration
}

// DefaultJetStreamConfig matches the station's configuration defaults.
func DefaultJetStreamConfig() JetStreamConfig {
	return JetStreamConfig{URL: nats.DefaultURL, Stream: "TRACKING", SubjectPrefix: "tracking",
		DedupWindow: 2 * time.Hour, MaxPending: 4000, AckTimeout: 5 * time.Second}
}

// RetryHorizon is how long after its first failed delivery a pending event
// may still be retried by the relay: the sum of its backoffs up to
// max_attempts, each at most MaxBackoff and jittered up to 1.5 times. A
// broker's dedup window must be longer (a manual re-drive of a dead letter
// may come later; it re-sends an event the broker either never stored or,
// past the window, stores again, and consumers deduplicate by event id).
func (c Config) RetryHorizon() time.Duration {
	c = c.withDefaults()
	var total time.Duration
	d := c.BaseBackoff
	for range c.MaxAttempts {
		total += time.Duration(float64(min(d, c.MaxBackoff)) * 1.5)
		d *= 2
	}
	return total
}

// JetStream publishes tracking events to a NATS JetStream stream. It is a
// Pusher: an event counts as delivered once the stream acknowledged its
// publish. Publishes are asynchronous and their acknowledgements awaited
// together per batch, so a batch costs about one round trip.
type JetStream struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string
	prefix string
}

// NewJetStream connects and makes sure the stream exists with the subjects
// and dedup window the sink needs.
func NewJetStream(ctx context.Context, cfg JetStreamConfig) (*JetStream, error) {
	d := DefaultJetStreamConfig()
	if cfg.URL == "" {
		cfg.URL = d.URL
	}
	if cfg.Stream == "" {
		cfg.Stream = d.Stream
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = d.SubjectPrefix
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = d.DedupWindow
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = d.MaxPending
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = d.AckTimeout
	}
	nc, err := nats.Connect(cfg.URL, nats.Name("station-relay"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(false),
		// No reconnect buffer: a publish while the connection is down
		// fails at once. Buffered, it would be sent after reconnecting,
		// when the relay has already been told its batch failed and may
		// be re-sending the parcel's earlier events: stored behind the
		// relay's back, ahead of them, the stream would lose the parcel's
		// order (TestJetStreamPublishesNothingBehindTheRelaysBack).
		nats.ReconnectBufSize(-1))
	if err != nil {
		return nil, fmt.Errorf("relay: jetstream: connect %s: %w", cfg.URL, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("relay: jetstream: %w", err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       cfg.Stream,
		Subjects:   []string{cfg.SubjectPrefix + ".>"},
		Duplicates: cfg.DedupWindow,
		Storage:    jetstream.FileStorage,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("relay: jetstream: stream %s: %w", cfg.Stream, err)
	}
	return &JetStream{nc: nc, js: js, stream: cfg.Stream, prefix: cfg.SubjectPrefix}, nil
}

// Close drops the connection; publishes awaiting acknowledgement fail.
func (j *JetStream) Close() { j.nc.Close() }

// Subject is where a station's events go.
func (j *JetStream) Subject(stationID string) string { return j.prefix + "." + stationID }

// validSubjectToken reports whether s may stand as one subject token.
func validSubjectToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ". *>\t\r\n")
}

// PushTrackingEvents publishes the events in order and waits for every
// acknowledgement. An event the sink cannot address, encode or fit in a
// message is rejected (dead at once). When the server does not answer (disconnected, no
// responders, timeout, ctx over) nothing is said about any event: the
// error matches clients.ErrUnavailable and the relay leaves the batch
// pending; events already stored are dropped as duplicates when re-sent.
func (j *JetStream) PushTrackingEvents(ctx context.Context, events []clients.TrackingEvent) ([]clients.EventAck, error) {
	acks := make([]clients.EventAck, len(events))
	futures := make([]jetstream.PubAckFuture, len(events))
	for i, e := range events {
		acks[i].EventID = e.EventID
		if !validSubjectToken(e.StationID) {
			acks[i].Status, acks[i].Reason = clients.AckRejected, fmt.Sprintf("station_id %q cannot name a subject", e.StationID)
			continue
		}
		data, err := proto.Marshal(e.Proto())
		if err != nil {
			acks[i].Status, acks[i].Reason = clients.AckRejected, "encode: "+err.Error()
			continue
		}
		msg := nats.NewMsg(j.Subject(e.StationID))
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, e.EventID)
		msg.Header.Set(HeaderEventID, e.EventID)
		msg.Header.Set(HeaderTraceParent, e.TraceParent)
		f, err := j.js.PublishMsgAsync(msg, jetstream.WithExpectStream(j.stream))
		if errors.Is(err, nats.ErrMaxPayload) {
			acks[i].Status, acks[i].Reason = clients.AckRejected, fmt.Sprintf("%d bytes: %v", len(data), err)
			continue
		}
		if err != nil {
			return nil, j.failed(err)
		}
		futures[i] = f
	}
	// Every publish is on the wire; now collect the acknowledgements.
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			acks[i].Status = clients.AckAccepted // a duplicate publish is acknowledged too: stored once
		case err := <-f.Err():
			return nil, j.failed(err)
		case <-ctx.Done():
			return nil, j.failed(ctx.Err())
		}
	}
	return acks, nil
}

// failed wraps a publish failure: the server did not answer, refused the
// publish as a whole or the connection is gone. Nothing is known about
// the batch's events, so it stays pending, with no attempt counted, and
// the relay pauses.
func (j *JetStream) failed(err error) error {
	return fmt.Errorf("relay: jetstream publish: %w: %w", clients.ErrUnavailable, err)
}
