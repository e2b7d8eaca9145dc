package devenv

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/station/config"
)

// TestDevUsesJetStreamWhenNATSAnswersAndSaysSo: `make run` picks the
// JetStream sink when NATS answers (the simulated order center then
// consumes the stream), gRPC when it does not, and prints which.
func TestDevUsesJetStreamWhenNATSAnswersAndSaysSo(t *testing.T) {
	s := simtest.Start(t, simtest.WithZeroLatency())
	ctx := context.Background()

	cfg := config.Defaults()
	id := fmt.Sprintf("DEV%d", time.Now().UnixNano())
	cfg.Relay.JetStream.Stream, cfg.Relay.JetStream.SubjectPrefix = "TRACKING_"+id, "tracking_"+id
	t.Cleanup(func() {
		if nc, err := nats.Connect(cfg.Relay.JetStream.URL); err == nil {
			if js, err := jetstream.New(nc); err == nil {
				_ = js.DeleteStream(context.Background(), cfg.Relay.JetStream.Stream)
			}
			nc.Close()
		}
	})
	var out bytes.Buffer
	stop, err := chooseSink(ctx, &cfg, s, &out)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if cfg.Relay.Sink != config.SinkJetStream || !strings.HasPrefix(out.String(), "relay sink: jetstream") {
		t.Fatalf("with NATS up: sink %s, said %q", cfg.Relay.Sink, out.String())
	}

	down := config.Defaults()
	down.Relay.JetStream.URL = "nats://127.0.0.1:1" // nothing listens there
	out.Reset()
	stop, err = chooseSink(ctx, &down, s, &out)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if down.Relay.Sink != config.SinkGRPC || !strings.HasPrefix(out.String(), "relay sink: grpc") {
		t.Fatalf("with NATS down: sink %s, said %q", down.Relay.Sink, out.String())
	}
}
