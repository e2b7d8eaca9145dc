package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
	"github.com/expresshub/station/station/stationtest/linkproxy"
)

// behindProxy starts a station whose PostgreSQL link runs through a proxy
// the test can cut.
func behindProxy(t *testing.T, mutate func(*config.Config)) (*stationtest.Station, *linkproxy.Proxy) {
	t.Helper()
	var proxy *linkproxy.Proxy
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		u, err := url.Parse(c.Database.URL)
		if err != nil {
			t.Fatal(err)
		}
		proxy = linkproxy.New(t, u.Host)
		u.Host = proxy.Addr()
		c.Database.URL = u.String()
		if mutate != nil {
			mutate(c)
		}
	}})
	return st, proxy
}

// unavailable checks a 503 database_unavailable with Retry-After and
// returns how long it took.
func unavailable(t *testing.T, st *stationtest.Station, method, path, token string, body any) time.Duration {
	t.Helper()
	start := time.Now()
	r := st.Send(method, path, token, body)
	took := time.Since(start)
	var e stationtest.APIError
	_ = json.Unmarshal(r.Body, &e)
	if r.Status != http.StatusServiceUnavailable || e.Error.Code != "database_unavailable" || r.Header.Get("Retry-After") == "" {
		t.Errorf("%s %s with PostgreSQL away: %d %s (Retry-After %q), want 503 database_unavailable with Retry-After",
			method, path, r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	// Generous: "fast" means bounded by the acquire and connect timeouts,
	// never by how long the outage lasts.
	if took > 10*time.Second {
		t.Errorf("%s %s took %v with PostgreSQL away", method, path, took)
	}
	return took
}

// TestPostgresOutageAnswers503AndRecoversWithoutRestart cuts the link to
// PostgreSQL under a running station: scans, reads, logins and token checks
// answer 503 database_unavailable at once, readiness goes 503 while
// liveness stays 200; once the link is back the same station serves again,
// the refused scans succeed on retry with their scan ids, and the relay
// delivers what was committed.
func TestPostgresOutageAnswers503AndRecoversWithoutRestart(t *testing.T) {
	t.Parallel()
	st, proxy := behindProxy(t, func(c *config.Config) { c.Database.AcquireTimeout = time.Second })
	op := st.Login("op1")
	tns := viaParcels(t, st.Sim.Fixtures(), "SG-H01", 3)
	st.Do("POST", "/api/v1/receive", op, map[string]string{"tracking_no": tns[0], "scan_id": "before"}, http.StatusOK, nil)
	// A sorting machine whose key this instance has never checked (as after
	// a restart): the key cannot be looked up while PostgreSQL is away.
	key, err := st.App.Sorters().AddSorter(context.Background(), auth.Sorter{ID: "asm-outage", StationID: "SG-H01"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(st.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resolve := func() error {
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-sorter-key", key), 20*time.Second)
		defer cancel()
		_, err := stationv1.NewSorterServiceClient(conn).Resolve(ctx, &stationv1.ResolveRequest{TrackingNo: tns[2]})
		return err
	}

	proxy.Cut()
	if err := resolve(); status.Code(err) != codes.Unavailable {
		t.Errorf("sorter Resolve with PostgreSQL away: %v, want Unavailable (a valid key is not a bad key)", err)
	}
	var slowest time.Duration
	for _, c := range []struct {
		method, path, token string
		body                any
	}{
		{"POST", "/api/v1/receive", op, map[string]string{"tracking_no": tns[1], "scan_id": "during-r"}},
		{"POST", "/api/v1/sort", op, map[string]string{"tracking_no": tns[0], "scan_id": "during-s"}},
		{"GET", "/api/v1/bags?status=open", op, nil},
		{"GET", "/api/v1/me", op, nil},
		{"POST", "/api/v1/auth/login", "", map[string]string{"operator_id": "sup1", "password": stationtest.Password}},
	} {
		slowest = max(slowest, unavailable(t, st, c.method, c.path, c.token, c.body))
	}
	r := st.Send("GET", "/readyz", "", nil)
	var ready struct {
		Checks map[string]string `json:"checks"`
	}
	_ = json.Unmarshal(r.Body, &ready)
	if r.Status != http.StatusServiceUnavailable || ready.Checks["postgres"] == "ok" {
		t.Errorf("readiness with PostgreSQL away: %d %s", r.Status, r.Body)
	}
	if r := st.Send("GET", "/healthz", "", nil); r.Status != http.StatusOK {
		t.Errorf("liveness with PostgreSQL away: %d", r.Status)
	}

	proxy.Restore()
	deadline := time.Now().Add(30 * time.Second)
	for st.Send("GET", "/readyz", "", nil).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("not ready 30s after PostgreSQL came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	st.Do("POST", "/api/v1/receive", op, map[string]string{"tracking_no": tns[1], "scan_id": "during-r"}, http.StatusOK, nil)
	st.Do("POST", "/api/v1/sort", op, map[string]string{"tracking_no": tns[0], "scan_id": "during-s"}, http.StatusOK, nil)
	st.Login("sup1")
	if err := resolve(); err != nil {
		t.Errorf("sorter Resolve after PostgreSQL came back: %v", err)
	}
	if n := st.Count(`SELECT count(*) FROM work_orders`); n != 3 {
		t.Errorf("%d work orders, want 3 (one before the outage, two retried after)", n)
	}
	waitDrained(t, st.App.DB(), 30*time.Second)
	if n := len(st.Logs.FilterMessage("panic in handler").All()); n > 0 {
		t.Errorf("%d panics", n)
	}
	report(t, "postgres outage: 5 requests answered 503 database_unavailable, slowest in %v, and an unchecked sorter key Unavailable; ready again and serving without a restart",
		slowest.Round(time.Millisecond))
}

// TestExhaustedPoolAnswers503WithinAcquireTimeout holds every pooled
// connection: requests then wait database.acquire_timeout and answer 503
// database_unavailable, a burst does not pile up, and freed connections
// serve again.
func TestExhaustedPoolAnswers503WithinAcquireTimeout(t *testing.T) {
	t.Parallel()
	const maxConns, acquire = 4, 300 * time.Millisecond
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		c.Database.MaxConns = maxConns
		c.Database.AcquireTimeout = acquire
	}})
	op := st.Login("op1")
	tn := viaParcels(t, st.Sim.Fixtures(), "SG-H01", 1)[0]

	// Take every connection (background workers may hold one for a moment).
	var held []*pgxpool.Conn
	deadline := time.Now().Add(20 * time.Second)
	for len(held) < maxConns {
		c, err := st.App.DB().Acquire(context.Background())
		if err == nil {
			held = append(held, c)
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("could not take the pool's connections: %v", err)
		}
	}
	release := func() {
		for _, c := range held {
			c.Release()
		}
		held = nil
	}
	defer release()

	took := unavailable(t, st, "POST", "/api/v1/receive", op, map[string]string{"tracking_no": tn, "scan_id": "busy"})
	if took < acquire {
		t.Errorf("answered in %v, before the %v acquire timeout", took, acquire)
	}
	// A burst of 20 does not queue: each waits its own acquire timeout.
	start := time.Now()
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	for i := range 20 {
		wg.Go(func() {
			r := st.Send("POST", "/api/v1/sort", op, map[string]string{"tracking_no": tn, "scan_id": fmt.Sprintf("burst-%d", i)})
			statuses <- r.Status
		})
	}
	wg.Wait()
	burst := time.Since(start)
	close(statuses)
	for s := range statuses {
		if s != http.StatusServiceUnavailable {
			t.Errorf("burst request: status %d, want 503", s)
		}
	}
	if burst > 10*time.Second {
		t.Errorf("a burst of 20 took %v with the pool exhausted", burst)
	}
	if r := st.Send("GET", "/readyz", "", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("readiness with the pool exhausted: %d %s", r.Status, r.Body)
	}

	release()
	st.Do("POST", "/api/v1/receive", op, map[string]string{"tracking_no": tn, "scan_id": "busy"}, http.StatusOK, nil)
	if n := st.Count(`SELECT count(*) FROM work_orders`); n != 1 {
		t.Errorf("%d work orders, want 1: the refused requests wrote nothing", n)
	}
	report(t, "pool exhausted (%d conns, acquire timeout %v): 503 database_unavailable in %v; a burst of 20 answered in %v",
		maxConns, acquire, took.Round(time.Millisecond), burst.Round(time.Millisecond))
}

// TestHungDatabaseAnswers503WithinTheRequestDeadline freezes the link to
// PostgreSQL (no reset, no refusal: it stops answering) while pooled
// connections are fresh, so queries go out on them and wait: every request
// is answered 503 database_unavailable at its server-side deadline, inside
// the write timeout, instead of hanging until the connection is dropped
// while its work may still commit. Once the link is back, the refused scans
// go through on retry with their scan ids, each recorded once.
func TestHungDatabaseAnswers503WithinTheRequestDeadline(t *testing.T) {
	t.Parallel()
	const requestTimeout, writeTimeout = 2 * time.Second, 8 * time.Second
	st, proxy := behindProxy(t, func(c *config.Config) {
		c.HTTP.RequestTimeout, c.HTTP.WriteTimeout = requestTimeout, writeTimeout
		// Longer than the request's deadline: that deadline, not the
		// pool's, is what must answer.
		c.Database.AcquireTimeout = 2 * writeTimeout
	})
	op := st.Login("op1")
	tns := viaParcels(t, st.Sim.Fixtures(), "SG-H01", 12)
	hc := &http.Client{Timeout: writeTimeout + 10*time.Second}
	defer hc.CloseIdleConnections()
	send := func(method, path string, body string) (int, string, error) {
		req, err := http.NewRequest(method, st.URL+path, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", "Bearer "+op)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var e stationtest.APIError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code, nil
	}
	sortBody := func(i int, label string) string {
		return fmt.Sprintf(`{"tracking_no":%q,"scan_id":"%s-%d"}`, tns[i], label, i)
	}
	// Warm: every pooled connection in use a moment ago (pgxpool pings only
	// connections idle for a second or more), as under a terminal's load.
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() { _, _, _ = send("POST", "/api/v1/sort", sortBody(i, "warm")) })
	}
	wg.Wait()

	proxy.Freeze()
	type answer struct {
		status int
		code   string
		err    error
		took   time.Duration
	}
	answers := make([]answer, 12)
	for i := range answers {
		wg.Go(func() {
			start := time.Now()
			var a answer
			switch i % 3 {
			case 0, 1:
				a.status, a.code, a.err = send("POST", "/api/v1/sort", sortBody(i, "hung"))
			default:
				a.status, a.code, a.err = send("GET", "/api/v1/bags?status=open", "")
			}
			a.took = time.Since(start)
			answers[i] = a
		})
	}
	wg.Wait()
	var slowest time.Duration
	var refused int
	for i, a := range answers {
		slowest = max(slowest, a.took)
		switch {
		case a.err != nil:
			t.Errorf("request %d with PostgreSQL hung: no answer (%v) after %v", i, a.err, a.took.Round(time.Millisecond))
		case a.status != http.StatusServiceUnavailable || a.code != "database_unavailable":
			t.Errorf("request %d with PostgreSQL hung: %d %s, want 503 database_unavailable", i, a.status, a.code)
		default:
			refused++
		}
	}

	proxy.Restore()
	for i := range answers {
		if i%3 == 2 {
			continue
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			status, code, err := send("POST", "/api/v1/sort", sortBody(i, "hung"))
			if err == nil && status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sort %d retried after PostgreSQL came back: %d %s %v", i, status, code, err)
			}
		}
	}
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE scan_id LIKE 'hung-%'`); n != 8 {
		t.Errorf("%d work orders for the 8 scans refused and retried, want 8 (each once)", n)
	}
	report(t, "hung database (link frozen, request_timeout %v, write_timeout %v): %d of %d requests answered 503 database_unavailable, slowest in %v; the refused scans recorded once each on retry",
		requestTimeout, writeTimeout, refused, len(answers), slowest.Round(time.Millisecond))
}
