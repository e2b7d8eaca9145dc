package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
	"github.com/expresshub/station/station/stationtest/linkproxy"
)

// TestRedisOutageKeepsScanningPackingAndRelaying cuts the link to Redis
// under a running station: receive, sort, packing and handover keep
// working from PostgreSQL, the login rate limit still holds (local
// fallback), the relay still delivers; after the link is back the station
// serves on, and the order center holds every committed event exactly once.
func TestRedisOutageKeepsScanningPackingAndRelaying(t *testing.T) {
	t.Parallel()
	var proxy *linkproxy.Proxy
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		proxy = linkproxy.New(t, c.Redis.Addr)
		c.Redis.Addr = proxy.Addr()
		c.Auth.LoginPerMinute = 5
	}})
	op := st.Login("op1")
	fx := st.Sim.Fixtures()
	tns := viaParcels(t, fx, "SG-H01", 8)

	flow := func(label string, tns []string) time.Duration {
		t.Helper()
		start := time.Now()
		hops := map[string]string{}
		for _, tn := range tns {
			st.Do("POST", "/api/v1/receive", op, map[string]string{"tracking_no": tn, "scan_id": label + "r" + tn}, http.StatusOK, nil)
			var res sorting.Result
			st.Do("POST", "/api/v1/sort", op, map[string]string{"tracking_no": tn, "scan_id": label + "s" + tn}, http.StatusOK, &res)
			if res.NextHop == nil || res.Exception != nil {
				t.Fatalf("%s: sort %s: %+v", label, tn, res)
			}
			hops[tn] = *res.NextHop
		}
		var bag packing.Bag
		st.Do("POST", "/api/v1/bags", op, map[string]string{"next_hop": hops[tns[0]], "scan_id": label + "b"}, http.StatusCreated, &bag)
		st.Do("POST", "/api/v1/bags/"+bag.ID+"/items", op, map[string]string{"tracking_no": tns[0], "scan_id": label + "i"}, http.StatusOK, nil)
		st.Do("POST", "/api/v1/bags/"+bag.ID+"/seal", op, map[string]any{"weight_g": 800, "scan_id": label + "z"}, http.StatusOK, nil)
		var ho packing.Handover
		st.Do("POST", "/api/v1/handovers", op, map[string]string{"type": "lastmile", "rider_id": "R-" + label, "scan_id": label + "h"}, http.StatusCreated, &ho)
		st.Do("POST", "/api/v1/handovers/"+ho.ID+"/bags", op, map[string]string{"bag_id": bag.ID, "scan_id": label + "hb"}, http.StatusOK, nil)
		st.Do("POST", "/api/v1/handovers/"+ho.ID+"/close", op, map[string]string{"scan_id": label + "hc"}, http.StatusOK, nil)
		return time.Since(start)
	}
	before := flow("up", tns[:2])

	proxy.Cut()
	during := flow("down", tns[2:5])
	// The login limit (5 a minute per operator and per address) holds on
	// the per-instance fallback: guesses beyond it get 429, not a free pass.
	var limited, refused int
	for i := range 10 {
		r := st.Send("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": "sup1", "password": fmt.Sprintf("guess-%d", i)})
		switch r.Status {
		case http.StatusTooManyRequests:
			limited++
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
		case http.StatusUnauthorized:
			refused++
		default:
			t.Errorf("login guess %d with Redis away: %d %s", i, r.Status, r.Body)
		}
	}
	if limited == 0 || refused > 5 {
		t.Errorf("with Redis away, 10 login guesses: %d refused, %d rate limited; want at most 5 checked", refused, limited)
	}
	ready := st.Send("GET", "/readyz", "", nil)
	waitDrained(t, st.App.DB(), 30*time.Second) // the relay delivers without Redis

	proxy.Restore()
	after := flow("back", tns[5:8])
	deadline := time.Now().Add(30 * time.Second)
	for st.Send("GET", "/readyz", "", nil).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("not ready 30s after Redis came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitDrained(t, st.App.DB(), 30*time.Second)

	// Every committed event reached the order center once; none extra.
	rows, err := st.App.DB().Query(t.Context(), `SELECT event_id::text FROM tracking_outbox`)
	if err != nil {
		t.Fatal(err)
	}
	committed := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		committed[id] = true
	}
	stored := st.Sim.TrackingEvents("")
	seen := map[string]bool{}
	for _, e := range stored {
		if !committed[e.EventID] || seen[e.EventID] {
			t.Errorf("order center event %s: committed %v, seen before %v", e.EventID, committed[e.EventID], seen[e.EventID])
		}
		seen[e.EventID] = true
	}
	if len(seen) != len(committed) {
		t.Errorf("order center holds %d of %d committed events", len(seen), len(committed))
	}
	var rd struct {
		Checks map[string]string `json:"checks"`
	}
	_ = json.Unmarshal(ready.Body, &rd)
	report(t, "redis outage: scan+pack+handover flow %v with Redis up, %v with it cut, %v after; login guesses with Redis cut: %d checked, %d rate limited (local fallback); readiness during the cut %d (redis: %q); %d events delivered once each",
		before.Round(time.Millisecond), during.Round(time.Millisecond), after.Round(time.Millisecond), refused, limited,
		ready.Status, rd.Checks["redis"], len(committed))
}

// TestReadinessWithRedisDownIsDegradedNotUnready cuts the link to Redis:
// the instance stays ready (200), so a load balancer keeps it in service,
// and says "degraded" in the readiness body and in station_degraded; once
// Redis is back it says ready again. PostgreSQL and migrations alone decide
// readiness: one Redis outage must not take out every instance.
func TestReadinessWithRedisDownIsDegradedNotUnready(t *testing.T) {
	t.Parallel()
	var proxy *linkproxy.Proxy
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		proxy = linkproxy.New(t, c.Redis.Addr)
		c.Redis.Addr = proxy.Addr()
	}})
	type readiness struct {
		code     int
		Status   string   `json:"status"`
		Degraded []string `json:"degraded"`
	}
	probe := func() (readiness, string) {
		r := st.Send("GET", "/readyz", "", nil)
		rd := readiness{code: r.Status}
		_ = json.Unmarshal(r.Body, &rd)
		m := st.Send("GET", "/metrics", "", nil)
		gauge := "missing"
		for _, v := range []string{"0", "1"} {
			if strings.Contains(string(m.Body), `station_degraded{dependency="redis"} `+v) {
				gauge = v
			}
		}
		return rd, gauge
	}
	if rd, gauge := probe(); rd.code != http.StatusOK || rd.Status != "ready" || gauge != "0" {
		t.Fatalf("with Redis up: readiness %d %q, gauge %s", rd.code, rd.Status, gauge)
	}
	proxy.Cut()
	down, downGauge := probe()
	if down.code != http.StatusOK || down.Status != "degraded" || len(down.Degraded) != 1 || down.Degraded[0] != "redis" || downGauge != "1" {
		t.Errorf("with Redis cut: readiness %d %q degraded %v, gauge %s; want 200 degraded [redis], gauge 1",
			down.code, down.Status, down.Degraded, downGauge)
	}
	op := st.Login("op1") // and the station works
	tn := viaParcels(t, st.Sim.Fixtures(), "SG-H01", 1)[0]
	st.Do("POST", "/api/v1/sort", op, map[string]string{"tracking_no": tn, "scan_id": "redis-down"}, http.StatusOK, nil)

	proxy.Restore()
	var back readiness
	var backGauge string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if back, backGauge = probe(); back.Status == "ready" && backGauge == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after Redis came back: readiness %d %q, gauge %s", back.code, back.Status, backGauge)
		}
	}
	report(t, "readiness with Redis down: /readyz %d %q (degraded %v), station_degraded{dependency=\"redis\"} %s, a sort answered 200; after Redis came back: %d %q, gauge %s",
		down.code, down.Status, down.Degraded, downGauge, back.code, back.Status, backGauge)
}
