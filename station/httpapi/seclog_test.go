package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/logging"
	"github.com/expresshub/station/station/ratelimit"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) Sync() error { return nil }

func (b *syncBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.b.String(), s)
}

// stoppedClock never moves: every line falls in one sampling second.
type stoppedClock struct{ t time.Time }

func (c stoppedClock) Now() time.Time                         { return c.t }
func (c stoppedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

// TestCrossStationRefusalsAreNeverSampled runs the edge with the production
// logger (which samples repeated lines) and a clock that puts every line in
// one second: 150 cross-station refusals give 150 refusal lines, and the
// logins before them a line each.
func TestCrossStationRefusalsAreNeverSampled(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var out syncBuffer
	log, err := logging.New("json", "info", &out, zap.WithClock(stoppedClock{time.Now()}))
	if err != nil {
		t.Fatal(err)
	}
	rdb, prefix := dbtest.Redis(t)
	h.srv = New(Config{MaxBodyBytes: 1 << 20, LoginPerMinute: 1000, RequestsPerSecond: 10000}, Deps{
		Log: log, Auth: h.auth, Limiter: ratelimit.New(rdb, prefix), Registry: prometheus.NewRegistry(), Ready: h.ready,
	})
	h.http.Close()
	h.http = httptest.NewServer(h.srv.Handler())
	t.Cleanup(h.http.Close)
	h.addOperator("op-1", "SG-H01", auth.RoleOperator)
	var tokens []string
	for range 110 {
		tokens = append(tokens, h.login("op-1"))
	}
	for i := range 150 {
		h.expectError("GET", "/api/v1/stations/SG-H02/chutes", tokens[i%len(tokens)], nil, http.StatusForbidden, "forbidden")
	}
	if n := out.count(`"msg":"refused: other station"`); n != 150 {
		t.Fatalf("%d of 150 cross-station refusals logged", n)
	}
	if n := out.count(`"msg":"login"`); n != 110 {
		t.Fatalf("%d of 110 logins logged", n)
	}
	if strings.Contains(out.b.String(), "password-op-1") || strings.Contains(out.b.String(), tokens[0]) {
		t.Fatal("a password or token reached the log")
	}
}
