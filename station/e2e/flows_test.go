package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

// shippedFull is the shipped "full" flow, read back from the database.
func shippedFull(t *testing.T, st *stationtest.Station, ops string) string {
	t.Helper()
	var fv sorting.FlowVersion
	st.Do("GET", "/api/v1/ops/flows/full?version=1", ops, nil, http.StatusOK, &fv)
	return fv.Config
}

// publish PUTs a flow config and returns the answer.
func publish(t *testing.T, st *stationtest.Station, ops, name, src string, want int) sorting.Published {
	t.Helper()
	var p sorting.Published
	st.Do("PUT", "/api/v1/ops/flows/"+name+"?reason=test", ops, src, want, &p)
	return p
}

func TestAFlowPublishedOverTheAPIIsUsedByEveryInstance(t *testing.T) {
	t.Parallel()
	// The resync is an hour: only the Redis signal can deliver in time.
	signalOnly := func(c *config.Config) { c.Release.Resync = time.Hour }
	first := stationtest.Start(t, stationtest.Options{Config: signalOnly})
	instances := []*stationtest.Station{first, stationtest.Start(t, stationtest.Options{Join: first, Config: signalOnly}),
		stationtest.Start(t, stationtest.Options{Join: first, Config: signalOnly})}
	ops, op := first.Login("ops1"), first.Login("op1")
	rdb := redis.NewClient(&redis.Options{Addr: first.Config.Redis.Addr})
	defer rdb.Close()
	waitFor(t, "all three instances to listen for flow signals", func() bool {
		n, err := rdb.PubSubNumSub(context.Background(), first.Config.Redis.Prefix+"flows").Result()
		return err == nil && n[first.Config.Redis.Prefix+"flows"] == 3
	})

	// A real change: a longer route timeout.
	src := strings.Replace(shippedFull(t, first, ops), "timeout: 250ms\n    retry: {attempts: 2, backoff: 5ms}\n  - step: resolve_chute",
		"timeout: 260ms\n    retry: {attempts: 2, backoff: 5ms}\n  - step: resolve_chute", 1)
	if !strings.Contains(src, "260ms") {
		t.Fatal("test edit did not apply")
	}
	// Published on the second instance: the others learn of it by signal.
	p := publish(t, instances[1], ops, "full", src, http.StatusCreated)
	if p.Version != 2 || p.Unchanged {
		t.Fatalf("published %+v, want full v2", p)
	}
	if again := publish(t, instances[2], ops, "full", src, http.StatusOK); !again.Unchanged || again.Version != 2 {
		t.Fatalf("the same config again: %+v", again)
	}
	for i, st := range instances {
		waitFor(t, fmt.Sprintf("instance %d to use full v2", i), func() bool {
			f, err := st.App.Sorting().Flows().ForStation("SG-H01")
			return err == nil && f.Version == 2
		})
		a := sortParcel(t, st, op, sim.ViaStation("SG-H01", i), fmt.Sprintf("pub-%d", i))
		if a.Flow != "full" || a.FlowVersion != 2 || a.Exception != nil {
			t.Fatalf("instance %d sorted with %s v%d (%+v), want full v2", i, a.Flow, a.FlowVersion, a.Exception)
		}
	}
	var fv sorting.FlowVersion
	first.Do("GET", "/api/v1/ops/flows/full", ops, nil, http.StatusOK, &fv)
	if fv.Version != 2 || fv.Previous != 1 || fv.CreatedBy != "ops1" || fv.CreatedAt.IsZero() {
		t.Fatalf("flow view: v%d previous %d by %q at %v", fv.Version, fv.Previous, fv.CreatedBy, fv.CreatedAt)
	}
	var plus, minus []string
	for _, d := range fv.Diff {
		switch d.Op {
		case "+":
			plus = append(plus, d.Line)
		case "-":
			minus = append(minus, d.Line)
		}
	}
	if len(plus) != 1 || len(minus) != 1 || !strings.Contains(plus[0], "260ms") || !strings.Contains(minus[0], "250ms") {
		t.Fatalf("diff: +%q -%q", plus, minus)
	}

	// Pinning the market to v1, on the third instance, reaches all three too.
	first.ExpectError("PUT", "/api/v1/ops/markets/SG/flow", ops, map[string]any{"flow": "full", "version": 1}, http.StatusBadRequest, "reason_required")
	first.ExpectError("PUT", "/api/v1/ops/markets/SG/flow", ops, map[string]any{"flow": "full", "version": 9, "reason": "x"},
		http.StatusBadRequest, "invalid_market_assignment")
	var as sorting.Assignment
	instances[2].Do("PUT", "/api/v1/ops/markets/SG/flow", ops, map[string]any{"flow": "full", "version": 1, "reason": "back to v1"}, http.StatusOK, &as)
	if as.Flow != "full" || as.Version != 1 || as.UpdatedBy != "ops1" {
		t.Fatalf("assignment %+v", as)
	}
	for i, st := range instances {
		waitFor(t, fmt.Sprintf("instance %d to use full v1 for SG", i), func() bool {
			f, err := st.App.Sorting().Flows().ForStation("SG-H02")
			return err == nil && f.Version == 1
		})
	}
	var audit struct{ Entries []sorting.FlowAuditEntry }
	first.Do("GET", "/api/v1/ops/flow-audit", ops, nil, http.StatusOK, &audit)
	if len(audit.Entries) != 2 || audit.Entries[0].Action != "assign" || audit.Entries[0].Subject != "SG" ||
		audit.Entries[0].Reason != "back to v1" || audit.Entries[1].Action != "publish" || audit.Entries[1].Actor != "ops1" {
		t.Fatalf("flow audit: %+v", audit.Entries)
	}
	// Operators cannot publish.
	first.ExpectError("PUT", "/api/v1/ops/flows/full", op, src, http.StatusForbidden, "forbidden")
}

func TestAnInvalidFlowIsRefusedWithEveryProblem(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	ops := st.Login("ops1")
	bad := `name: broken
inputs: [tracking_no, station_id]
nodes:
  - step: no_such_step
  - step: check_origin_site
    depends_on: [check_destination_site]
  - step: check_destination_site
    depends_on: [check_origin_site]
  - step: resolve_chute
  - step: check_station_site
    condition: "station_id =="
`
	e := st.ExpectError("PUT", "/api/v1/ops/flows/broken", ops, bad, http.StatusBadRequest, "invalid_flow")
	problems, _ := e.Error.Details["problems"].([]any)
	text := fmt.Sprint(problems)
	for _, want := range []string{"no_such_step", "cycle", "resolve_chute", "condition"} {
		if !strings.Contains(text, want) {
			t.Errorf("problems do not mention %q: %s", want, text)
		}
	}
	if len(problems) < 4 {
		t.Errorf("%d problems listed, want at least 4: %s", len(problems), text)
	}
	// The name in the path must be the config's.
	e = st.ExpectError("PUT", "/api/v1/ops/flows/other", ops, strings.Replace(shippedFull(t, st, ops), "name: full", "name: fullx", 1),
		http.StatusBadRequest, "invalid_flow")
	if !strings.Contains(fmt.Sprint(e.Error.Details["problems"]), "fullx") {
		t.Errorf("name mismatch not explained: %v", e.Error.Details)
	}
	if n := st.Count(`SELECT count(*) FROM sorting_flows WHERE name IN ('broken', 'other')`); n != 0 {
		t.Fatalf("%d invalid versions stored", n)
	}
	if n := st.Count(`SELECT count(*) FROM flow_audit`); n != 0 {
		t.Fatalf("%d audit entries for refused publications", n)
	}
}

func TestASortInFlightFinishesOnTheVersionItStartedWith(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		c.Downstream.Deadlines = map[string]time.Duration{"GetRoute": 10 * time.Second}
	}})
	ops, op := st.Login("ops1"), st.Login("op1")
	// v2 gives the route step room to be slow; v3 is any other change.
	slow := strings.Replace(shippedFull(t, st, ops), "deadline: 800ms", "deadline: 10s", 1)
	slow = strings.Replace(slow, "timeout: 250ms\n    retry: {attempts: 2, backoff: 5ms}\n  - step: resolve_chute",
		"timeout: 8s\n  - step: resolve_chute", 1)
	publish(t, st, ops, "full", slow, http.StatusCreated)
	if err := st.Sim.SetFault("GetRoute", sim.Fault{AddedLatency: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	before := st.Sim.Calls("GetRoute")
	var wg sync.WaitGroup
	var inFlight sortAnswer
	wg.Go(func() { inFlight = sortParcel(t, st, op, sim.ViaStation("SG-H01", 0), "flight-1") })
	waitFor(t, "the sort to reach the slow route step", func() bool { return st.Sim.Calls("GetRoute") > before })
	publish(t, st, ops, "full", strings.Replace(slow, "deadline: 10s", "deadline: 9s", 1), http.StatusCreated)
	if f, _ := st.App.Sorting().Flows().ForStation("SG-H01"); f.Version != 3 {
		t.Fatalf("after publishing, the station uses v%d, want v3", f.Version)
	}
	wg.Wait()
	if inFlight.FlowVersion != 2 || inFlight.Exception != nil || inFlight.NextHop == nil {
		t.Fatalf("the sort in flight: flow v%d %+v, want v2 and an answer", inFlight.FlowVersion, inFlight.Exception)
	}
	if n := st.Count(`SELECT count(*) FROM sort_results WHERE tracking_no = $1 AND flow_version = 2`, sim.ViaStation("SG-H01", 0)); n != 1 {
		t.Fatalf("%d sort results recorded on v2", n)
	}
	if err := st.Sim.ClearFaults("GetRoute"); err != nil {
		t.Fatal(err)
	}
	if a := sortParcel(t, st, op, sim.ViaStation("SG-H01", 1), "after-1"); a.FlowVersion != 3 {
		t.Fatalf("the next sort used v%d, want v3", a.FlowVersion)
	}
}
