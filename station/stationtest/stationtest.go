// Package stationtest starts a whole station in a test: the real app wiring
// on a fresh PostgreSQL database and a private Redis prefix, talking real
// gRPC to a downstream simulator on loopback, with demo operators and chute
// maps. Tests drive it over HTTP like a terminal would. For tests only.
package stationtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/app"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
)

// Station is a running station under test.
type Station struct {
	T        testing.TB
	URL      string // http://127.0.0.1:port
	GRPCAddr string
	App      *app.App
	Sim      *sim.Simulator
	Config   config.Config
	Logs     *observer.ObservedLogs
	client   *http.Client
	stop     func() error
}

// Options adjust the station under test.
type Options struct {
	Sim    []simtest.Option     // simulator options (default: zero latency)
	Config func(*config.Config) // last word on the configuration
	// Join makes this a second instance of the same deployment: it shares
	// the other's database, Redis prefix and simulator, and seeds nothing.
	Join *Station
	// TracerProvider turns tracing on with this provider (a test's, with
	// an in-memory exporter); nil leaves it off, as by default.
	TracerProvider trace.TracerProvider
}

// Password is every test operator's password.
const Password = "password-test"

// Operators created at start: one per role at SG-H01, one operator at SG-H02.
var Operators = []auth.Operator{
	{ID: "op1", StationID: "SG-H01", Role: auth.RoleOperator},
	{ID: "sup1", StationID: "SG-H01", Role: auth.RoleSupervisor},
	{ID: "ops1", StationID: "SG-H01", Role: auth.RoleOps},
	{ID: "op2", StationID: "SG-H02", Role: auth.RoleOperator},
	{ID: "vn1", StationID: "VN-H01", Role: auth.RoleOperator},
	{ID: "br1", StationID: "BR-H01", Role: auth.RoleOperator},
}

// Start runs a station until the test ends.
func Start(t testing.TB, o Options) *Station {
	t.Helper()
	var s *sim.Simulator
	cfg := config.Defaults()
	var prefix string
	if o.Join != nil {
		s, cfg.Database.URL, prefix = o.Join.Sim, o.Join.Config.Database.URL, o.Join.Config.Redis.Prefix
	} else {
		simOpts := append([]simtest.Option{simtest.WithZeroLatency()}, o.Sim...)
		s = simtest.Start(t, simOpts...)
		cfg.Database.URL = dbtest.URL(t)
		_, prefix = dbtest.Redis(t)
	}
	cfg.Redis.Addr = dbtest.RedisAddr()
	cfg.Redis.Prefix = prefix
	cfg.Downstream = cfg.Downstream.WithAddr(s.Addr())
	cfg.Downstream.Token.KeyPrefix = prefix
	cfg.Auth.LoginPerMinute = 1000
	cfg.Auth.BcryptCost = 4 // the minimum: hashing is not what these tests test
	cfg.Auth.RequestsPerSecond = 10000
	cfg.Auth.TerminalRequestsPerSecond = 10000
	cfg.Shutdown.Grace = 5 * time.Second
	if o.Config != nil {
		o.Config(&cfg)
	}
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)

	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log, app.Options{HTTPListener: httpLis, GRPCListener: grpcLis,
		TracerProvider: o.TracerProvider})
	if err != nil {
		cancel()
		t.Fatalf("stationtest: start: %v", err)
	}
	st := &Station{T: t, URL: "http://" + httpLis.Addr().String(), GRPCAddr: grpcLis.Addr().String(),
		App: a, Sim: s, Config: cfg, Logs: logs, client: &http.Client{Timeout: 30 * time.Second}}
	for _, op := range Operators {
		if o.Join != nil {
			break
		}
		if err := a.Auth().AddOperator(ctx, op, Password); err != nil {
			t.Fatal(err)
		}
	}
	for _, station := range []string{"SG-H01", "SG-H02", "VN-H01", "BR-H01"} {
		if o.Join != nil {
			break
		}
		m := sorting.NumberedChuteMap(s.Fixtures().NextHops(station))
		if _, err := a.Sorting().Chutes().Put(ctx, station, m, 0, "test"); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	st.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := st.stop(); err != nil {
			t.Errorf("station stopped with %v", err)
		}
	})
	st.waitReady(done)
	return st
}

// waitReady holds the test until the station answers /readyz 200: HTTP
// listens before Run has reached its database, and until then every API
// route answers 503 "starting". A station that exits or never gets ready
// fails the test; the loop is bounded by a deadline, not a sleep count.
func (s *Station) waitReady(exited <-chan error) {
	s.T.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			s.T.Fatalf("stationtest: the station exited before it was ready: %v", err)
		default:
		}
		resp, err := s.client.Get(s.URL + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.T.Fatalf("stationtest: /readyz not 200 within 60s (last error %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the station down gracefully, as SIGTERM would, and returns
// what Run returned. The test's cleanup stops it otherwise.
func (s *Station) Stop() error { return s.stop() }

// Login returns a bearer token for one of Operators.
func (s *Station) Login(operatorID string) string {
	s.T.Helper()
	var sess auth.Session
	s.Do("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": operatorID, "password": Password}, http.StatusOK, &sess)
	return sess.Token
}

// Response is a raw answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Send makes a request and returns the answer whatever its status.
func (s *Station) Send(method, path, token string, body any, header ...string) Response {
	s.T.Helper()
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
			s.T.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.T.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Do makes a request, checks the status and decodes the body into out.
func (s *Station) Do(method, path, token string, body any, want int, out any) Response {
	s.T.Helper()
	r := s.Send(method, path, token, body)
	if r.Status != want {
		s.T.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			s.T.Fatalf("%s %s: decode %s: %v", method, path, r.Body, err)
		}
	}
	return r
}

// APIError is the error shape of the HTTP API.
type APIError struct {
	Error struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
}

// ExpectError makes a request that must fail with status and code.
func (s *Station) ExpectError(method, path, token string, body any, status int, code string) APIError {
	s.T.Helper()
	var e APIError
	s.Do(method, path, token, body, status, &e)
	if e.Error.Code != code {
		s.T.Fatalf("%s %s: code %q, want %q (%s)", method, path, e.Error.Code, code, e.Error.Message)
	}
	return e
}

// Count runs a count(*) query.
func (s *Station) Count(query string, args ...any) int {
	s.T.Helper()
	var n int
	if err := s.App.DB().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		s.T.Fatal(err)
	}
	return n
}

// Parcel returns the i-th tracking number of kind whose route passes station
// (any route for kinds that never resolve).
func Parcel(fx *sim.Fixtures, station string, kind sim.Kind, i int) string {
	site, ok := fx.Site(station)
	if !ok {
		panic("stationtest: unknown station " + station)
	}
	if kind == sim.Unknown {
		return sim.TrackingNo(site.Market, kind, i)
	}
	for j := 0; j < 100_000; j++ {
		no := sim.TrackingNo(site.Market, kind, j)
		p, err := fx.Parcel(no)
		if err != nil {
			continue
		}
		if fx.Via(p.Origin, p.Destination, station) == (kind != sim.Elsewhere) {
			if i == 0 {
				return no
			}
			i--
		}
	}
	panic(fmt.Sprintf("stationtest: no %v parcel via %s", kind, station))
}
