package logging_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/expresshub/station/station/logging"
)

// Buffer is a log sink safe for concurrent writers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) Sync() error { return nil }

// Count is the number of lines holding s.
func (b *Buffer) Count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, line := range strings.Split(b.b.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// stoppedClock is a clock whose time never moves: every line falls in one
// sampling second, however slow the machine running the test.
type stoppedClock struct{ t time.Time }

func (c stoppedClock) Now() time.Time                         { return c.t }
func (c stoppedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

func TestSecurityLinesAreNeverSampled(t *testing.T) {
	var out Buffer
	log, err := logging.New("json", "info", &out, zap.WithClock(stoppedClock{time.Now()}))
	if err != nil {
		t.Fatal(err)
	}
	sec := logging.Security(log.Named("httpapi"))
	for i := range 150 {
		sec.Warn("refused: other station", zap.Int("i", i))
		log.Warn("store slow", zap.Int("i", i))
	}
	if n := out.Count(`"refused: other station"`); n != 150 {
		t.Fatalf("%d of 150 security lines written", n)
	}
	// Everything else is still sampled: the first 100 in the second.
	if n := out.Count(`"store slow"`); n != 100 {
		t.Fatalf("%d of 150 ordinary lines written, want 100 (sampled)", n)
	}
	if n := out.Count(`"logger":"httpapi.security"`); n != 150 {
		t.Fatalf("%d security lines name their logger", n)
	}
}

func TestSecurityLoggerNames(t *testing.T) {
	for name, want := range map[string]bool{"security": true, "httpapi.security": true, "security.x": true,
		"": false, "httpapi": false, "securityx": false, "insecurity": false} {
		if logging.IsSecurity(name) != want {
			t.Errorf("IsSecurity(%q) = %v", name, !want)
		}
	}
}

var _ zapcore.WriteSyncer = (*Buffer)(nil)
