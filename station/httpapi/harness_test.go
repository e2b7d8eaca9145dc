package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/ratelimit"
)

// harness is one HTTP edge on a fresh database and a private Redis prefix.
type harness struct {
	t     *testing.T
	srv   *Server
	http  *httptest.Server
	db    *pgxpool.Pool
	auth  *auth.Service
	logs  *observer.ObservedLogs
	now   time.Time
	ready map[string]Check
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, Config{MaxBodyBytes: 1 << 20, LoginPerMinute: 5, RequestsPerSecond: 1000}, nil)
}

// newHarnessWith is newHarness with its own limits and, when limiter is not
// nil, its own limiter (one whose Redis is unreachable, say).
func newHarnessWith(t *testing.T, cfg Config, limiter *ratelimit.Limiter) *harness {
	t.Helper()
	h := &harness{t: t, db: dbtest.Pool(t), now: time.Now()}
	rdb, prefix := dbtest.Redis(t)
	if limiter == nil {
		limiter = ratelimit.New(rdb, prefix)
	}
	core, logs := observer.New(zap.DebugLevel)
	h.logs = logs
	h.auth = auth.NewService(h.db, time.Hour, auth.WithBcryptCost(bcrypt.MinCost), auth.WithClock(func() time.Time { return h.now }))
	h.ready = map[string]Check{"postgres": func(ctx context.Context) error { return h.db.Ping(ctx) }}
	h.srv = New(cfg, Deps{
		Log: zap.New(core), Auth: h.auth, Limiter: limiter,
		Registry: prometheus.NewRegistry(), Ready: h.ready,
	})
	h.http = httptest.NewServer(h.srv.Handler())
	t.Cleanup(h.http.Close)
	return h
}

func (h *harness) addOperator(id, station string, role auth.Role) {
	h.t.Helper()
	if err := h.auth.AddOperator(context.Background(), auth.Operator{ID: id, StationID: station, Role: role}, "password-"+id); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) login(id string) string {
	h.t.Helper()
	var sess auth.Session
	h.do("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": id, "password": "password-" + id}, http.StatusOK, &sess)
	if sess.Token == "" {
		h.t.Fatal("no token")
	}
	return sess.Token
}

// do sends body (a value to encode, a string sent as is, or nil) and checks
// the status; out, if given, receives the decoded response.
func (h *harness) do(method, path, token string, body any, wantStatus int, out any) *http.Response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, h.http.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (h *harness) expectError(method, path, token string, body any, status int, code string) {
	h.t.Helper()
	var e apiError
	h.do(method, path, token, body, status, &e)
	if e.Error.Code != code {
		h.t.Fatalf("%s %s: code %q, want %q (%s)", method, path, e.Error.Code, code, e.Error.Message)
	}
}
