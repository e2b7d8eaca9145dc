package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/relay"
)

// TestJetStreamSinkRefusesADedupWindowShorterThanTheRetryHorizon: a
// re-send after the window would be stored twice, so the station does not
// start with such a window.
func TestJetStreamSinkRefusesADedupWindowShorterThanTheRetryHorizon(t *testing.T) {
	cfg := config.Defaults()
	cfg.Relay.Sink = config.SinkJetStream
	rc := relay.Config{MaxAttempts: cfg.Relay.MaxAttempts}
	cfg.Relay.JetStream.DedupWindow = rc.RetryHorizon() - time.Second
	a := &App{cfg: cfg, log: zap.NewNop()}
	if _, err := a.trackingSink(context.Background(), rc); !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("window %s under a horizon of %s: %v", cfg.Relay.JetStream.DedupWindow, rc.RetryHorizon(), err)
	}
	if h := rc.RetryHorizon(); h < 10*time.Minute || h >= config.Defaults().Relay.JetStream.DedupWindow {
		t.Fatalf("retry horizon %s against the default window %s", h, config.Defaults().Relay.JetStream.DedupWindow)
	}
}
