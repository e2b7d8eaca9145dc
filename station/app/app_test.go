package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/app"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// pgtestdb's and go-redis' pools are closed at cleanup, after goleak's check of a test.
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

type running struct {
	httpURL  string
	grpcAddr string
	app      *app.App
	cancel   context.CancelFunc
	done     chan error
}

func start(t *testing.T, mutate func(*config.Config)) *running {
	t.Helper()
	cfg := config.Defaults()
	cfg.Database.URL = dbtest.URL(t)
	cfg.Redis.Addr = dbtest.RedisAddr()
	_, prefix := dbtest.Redis(t)
	cfg.Redis.Prefix = prefix
	cfg.Shutdown.Grace = 10 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, zaptest.NewLogger(t), app.Options{HTTPListener: httpLis, GRPCListener: grpcLis})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &running{httpURL: "http://" + httpLis.Addr().String(), grpcAddr: grpcLis.Addr().String(), app: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func login(t *testing.T, r *running, id string, role auth.Role) string {
	t.Helper()
	if err := r.app.Auth().AddOperator(context.Background(), auth.Operator{ID: id, StationID: "SG-H01", Role: role}, "password-"+id); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(r.httpURL+"/api/v1/auth/login", "application/json",
		strings.NewReader(`{"operator_id":"`+id+`","password":"password-`+id+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sess auth.Session
	if err := json.NewDecoder(resp.Body).Decode(&sess); err != nil || sess.Token == "" {
		t.Fatalf("login: %d %v", resp.StatusCode, err)
	}
	return sess.Token
}

func TestReadyWithMigrationsApplied(t *testing.T) {
	r := start(t, nil)
	resp, err := http.Get(r.httpURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz %d: %s", resp.StatusCode, body)
	}
}

// Redis down costs speed, never correctness: the instance stays ready (a
// load balancer keeps it in service) and says it is degraded, in the
// readiness body and in a gauge.
func TestReadinessIsDegradedNotUnreadyWhenRedisIsUnreachable(t *testing.T) {
	// A Redis address that refuses connections: the station still starts.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := lis.Addr().String()
	lis.Close()
	r := start(t, func(c *config.Config) { c.Redis.Addr = deadAddr })
	resp, err := http.Get(r.httpURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Status   string            `json:"status"`
		Checks   map[string]string `json:"checks"`
		Degraded []string          `json:"degraded"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || ready.Status != "degraded" ||
		len(ready.Degraded) != 1 || ready.Degraded[0] != "redis" || ready.Checks["postgres"] != "ok" {
		t.Fatalf("readyz with Redis unreachable: %d %+v (%v), want 200 degraded [redis]", resp.StatusCode, ready, err)
	}
	resp, err = http.Get(r.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `station_degraded{dependency="redis"} 1`) {
		t.Fatalf("metrics with Redis unreachable lack station_degraded{dependency=\"redis\"} 1")
	}
}

// With everything up the gauge says so too.
func TestDegradedGaugeIsZeroWithRedisUp(t *testing.T) {
	r := start(t, nil)
	resp, err := http.Get(r.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `station_degraded{dependency="redis"} 0`) {
		t.Fatal(`metrics lack station_degraded{dependency="redis"} 0`)
	}
}

func TestGracefulShutdownFinishesInFlightRequest(t *testing.T) {
	r := start(t, nil)
	token := login(t, r, "chen", auth.RoleOps)

	conn, err := grpc.NewClient(r.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health before shutdown: %v %v", hc, err)
	}

	// A CPU profile is a real request that takes as long as asked: 2 s.
	type result struct {
		status int
		n      int
		err    error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", r.httpURL+"/debug/pprof/profile?seconds=2", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{status: resp.StatusCode, n: len(b), err: err}
	}()
	time.Sleep(500 * time.Millisecond) // let the request get in flight
	r.cancel()

	res := <-got
	if res.err != nil || res.status != http.StatusOK || res.n == 0 {
		t.Fatalf("in-flight request cut off by shutdown: %+v", res)
	}
	if err := <-r.done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	r.done <- nil // for the cleanup
	if _, err := http.Get(r.httpURL + "/healthz"); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
}
