package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/expresshub/station/station/auth"
)

func fmtAny(v any) string { return fmt.Sprint(v) }

func TestPanicBecomes500AndIsLogged(t *testing.T) {
	h := newHarness(t)
	mux := http.NewServeMux()
	mux.Handle("GET /boom", h.srv.handle(public, func(w http.ResponseWriter, r *http.Request) error { panic("kaboom") }))
	srv := httptest.NewServer(h.srv.observe(h.srv.recoverPanics(mux)))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d", resp.StatusCode)
	}
	entries := h.logs.FilterMessage("panic in handler").All()
	if len(entries) != 1 || !strings.Contains(fmt.Sprint(entries[0].ContextMap()["stack"]), "goroutine") {
		t.Fatalf("panic not logged with a stack: %+v", entries)
	}
	// The server still answers.
	h.do("GET", "/healthz", "", nil, http.StatusOK, nil)
}

func TestBadBodiesAreRejectedAndNothingWritten(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"malformed", `{"operator_id":`, http.StatusBadRequest, "invalid_json"},
		{"unknown field", `{"operator_id":"a","password":"b","station_id":"SG-H02"}`, http.StatusBadRequest, "invalid_json"},
		{"wrong type", `{"operator_id":5,"password":"b"}`, http.StatusBadRequest, "invalid_json"},
		{"trailing data", `{"operator_id":"a","password":"b"} {}`, http.StatusBadRequest, "invalid_json"},
		{"empty", ``, http.StatusBadRequest, "invalid_json"},
		{"oversized", `{"operator_id":"` + strings.Repeat("a", 2<<20) + `","password":"b"}`, http.StatusRequestEntityTooLarge, "body_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.expectError("POST", "/api/v1/auth/login", "", c.body, c.status, c.code)
		})
	}
	var tokens int
	if err := h.db.QueryRow(context.Background(), `SELECT count(*) FROM auth_tokens`).Scan(&tokens); err != nil {
		t.Fatal(err)
	}
	if tokens != 0 {
		t.Fatalf("%d tokens written by rejected requests", tokens)
	}
}

func TestUnknownAPIRouteIs404JSON(t *testing.T) {
	h := newHarness(t)
	h.expectError("GET", "/api/v1/nothing-here", "", nil, http.StatusNotFound, "not_found")
}

func TestReadinessFollowsDependencies(t *testing.T) {
	h := newHarness(t)
	var down error
	h.ready["redis"] = func(context.Context) error { return down }
	h.do("GET", "/readyz", "", nil, http.StatusOK, nil)
	down = errors.New("connection refused")
	h.do("GET", "/readyz", "", nil, http.StatusServiceUnavailable, nil)
	down = nil
	h.do("GET", "/readyz", "", nil, http.StatusOK, nil)
	h.srv.Drain()
	h.do("GET", "/readyz", "", nil, http.StatusServiceUnavailable, nil)
}

func TestRequestIsLoggedOnceWithOperator(t *testing.T) {
	h := newHarness(t)
	h.addOperator("ana", "SG-H01", auth.RoleOperator)
	token := h.login("ana")
	before := h.logs.FilterMessage("http request").Len()
	h.do("GET", "/api/v1/me", token, nil, http.StatusOK, nil)
	entries := h.logs.FilterMessage("http request").All()[before:]
	if len(entries) != 1 {
		t.Fatalf("%d log lines for one request", len(entries))
	}
	m := entries[0].ContextMap()
	if m["operator"] != "ana" || m["route"] != "GET /api/v1/me" || m["request_id"] == "" {
		t.Fatalf("access log fields: %v", m)
	}
}

func TestMetricsExposeHTTPCounters(t *testing.T) {
	h := newHarness(t)
	h.do("GET", "/healthz", "", nil, http.StatusOK, nil)
	resp, err := http.Get(h.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `station_http_requests_total{method="GET",route="GET /healthz",status="200"}`) {
		t.Fatalf("metrics missing the request counter")
	}
}
