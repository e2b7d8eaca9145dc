package reliability

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/expresshub/station/migrations/dbtest"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/sorting"
)

// fleetLoadEnv sets how long the fleet test drives load under faults; `make
// reliability` sets it for the long form (station/reliability/report).
const fleetLoadEnv = "RELIABILITY_FLEET_LOAD"

// fleetShortLoad is the load time of the short form that `make test` runs.
// It is long enough for each of the 23 faults to come round once.
const fleetShortLoad = 24 * time.Second

const (
	fleetStation   = "SG-H01"
	fleetPassword  = "fleet-test-password"
	fleetInstances = 3
	fleetTerminals = 6
	fleetSorterID  = "SRT-FLEET-1"
	fleetBatch     = 8 // parcels a terminal or the sorter takes at a time
	fleetKillEvery = 3 * time.Second
	fleetDrainMax  = 60 * time.Second
)

func fleetLoadTime(t testing.TB) time.Duration {
	t.Helper()
	v := os.Getenv(fleetLoadEnv)
	if v == "" {
		return fleetShortLoad
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 150s", fleetLoadEnv, v)
	}
	return d
}

// TestFleetFaultsAndLoad runs three `station serve` processes over one
// PostgreSQL and one Redis, with the downstream simulator as order center,
// every link through toxiproxy. Six terminals (receive, sort, bag, remove,
// seal, handover) and a sorting machine (PreSort, Resolve, Confirm) drive
// load across the instances, retrying what went unanswered on another
// instance with the same scan id or sequence, while chaos SIGKILLs a random
// instance every few seconds and, one at a time, slows, resets, stalls and
// cuts the links, stops and restarts Redis, and makes the simulator fail
// and lag. Then it checks the promises of DESIGN.md section 6: every
// acknowledged write has exactly one work order, every committed event
// reached the order center once and per parcel in order, no parcel is in
// two bags, bags and handovers hold exactly what was acknowledged, and the
// outbox drains within 60s of the faults stopping, with no dead letter.
func TestFleetFaultsAndLoad(t *testing.T) {
	t.Parallel()
	runFleet(t, fleetSetup{sink: "grpc", load: fleetLoadTime(t)})
}

// fleetSetup is what differs between the runs of the fleet test: where
// the relays deliver, and for how long load runs.
type fleetSetup struct {
	sink string // relay.sink: grpc (the order center's PushTrackingEvents) or jetstream
	load time.Duration
}

// runFleet is the fleet test: the world, the load, the faults and the
// checks, for one relay sink.
func runFleet(t *testing.T, setup fleetSetup) {
	loadTime := setup.load

	// The world: the order center, PostgreSQL (the machine's, a fresh
	// database), a Redis of our own, and toxiproxy in front of all three.
	// With the jetstream sink, a nats-server of our own too, with the
	// relays' connections and the order center's consumer each through a
	// link of their own.
	toxi := startToxiproxy(t)
	var (
		bus     *natsBus
		simEnv  []string
		relayJS []string
	)
	if setup.sink == "jetstream" {
		bus = startNATSBus(t, toxi)
		simEnv, relayJS = bus.consumerEnv(), bus.relayEnv()
	}
	sim := startSimProc(t, simEnv...)
	dbURL := dbtest.URL(t)
	db := dbtest.PoolFor(t, dbURL)
	redis := startRedisProc(t)
	pgURL, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pgLink := newToxiLink(t, toxi, "postgres", pgURL.Host)
	redisLink := newToxiLink(t, toxi, "redis", redis.Addr)
	ocLink := newToxiLink(t, toxi, "order-center", sim.Addr)
	pgURL.Host = pgLink.Addr()
	env := serveEnv{DatabaseURL: pgURL.String(), RedisAddr: redisLink.Addr(), Prefix: "fleet:", DownstreamAddr: ocLink.Addr(), Extra: relayJS}

	var operators []string
	for i := range fleetTerminals {
		operators = append(operators, fmt.Sprintf("op%d", i+1))
		addOperator(t, env, operators[i], fleetStation, "operator", fleetPassword)
	}
	addOperator(t, env, "sup1", fleetStation, "supervisor", fleetPassword)
	sorterKey := addSorter(t, env, fleetSorterID, fleetStation)

	procs := make([]*serveProc, fleetInstances)
	for i := range procs {
		procs[i] = newServe(t, env)
		procs[i].start()
	}
	d := &fleetDriver{ledger: newFleetLedger()}
	for _, p := range procs {
		d.http = append(d.http, newClient(t, p.URL))
		d.sorters = append(d.sorters, sorterClient(t, p.GRPCAddr, sorterKey))
	}
	c := d.http[0]
	sup := c.login(t, "sup1", fleetPassword)
	c.must(t, "PUT", "/api/v1/stations/"+fleetStation+"/chutes", sup, sorting.NumberedChuteMap(sim.Fx.NextHops(fleetStation)), http.StatusOK, nil)
	terminals := make([]*terminal, fleetTerminals)
	for i, op := range operators {
		terminals[i] = &terminal{d: d, name: op, token: d.http[i%len(d.http)].login(t, op, fleetPassword), rival: map[string]string{}}
	}
	sorter := &sorterMachine{d: d, id: fleetSorterID}

	// Parcels for the whole run, generously: a terminal batch takes a few
	// seconds under faults, the sorter's less. The fleet used about 120 a
	// second once sorting got faster (60 a second ran out at 80 s of 150).
	tns := viaParcels(t, sim.Fx, fleetStation, int(loadTime.Seconds()+10)*200)
	batches := make(chan []string, len(tns)/fleetBatch+1)
	for i := 0; i+fleetBatch <= len(tns); i += fleetBatch {
		batches <- tns[i : i+fleetBatch]
	}
	close(batches)

	faults := interleave(linkFaults(pgLink), linkFaults(redisLink), linkFaults(ocLink), simFaults(sim), []fleetFault{redisRestart(redis)})
	if bus != nil {
		// Every other fault is one of NATS's, so even the short form sees
		// each of them.
		faults = interleave(bus.faults(), faults)
	}
	var (
		counts        faultCounts
		startFailures atomic.Int64
	)
	ctx, cancel := context.WithTimeout(context.Background(), loadTime+3*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var (
		chaos     sync.WaitGroup
		errMu     sync.Mutex
		chaosErrs []error
	)
	chaosFail := func(err error) {
		if err != nil {
			errMu.Lock()
			chaosErrs = append(chaosErrs, err)
			errMu.Unlock()
		}
	}
	chaos.Go(func() { chaosFail(runFaults(ctx, stop, faults, &counts)) })
	chaos.Go(func() { chaosFail(runKiller(ctx, stop, procs, fleetKillEvery, &counts, &startFailures)) })

	loadStart := time.Now()
	loadDone := make(chan error, 1)
	go func() { loadDone <- runLoad(ctx, stop, batches, terminals, sorter) }()
	var loadErr error
	select {
	case <-time.After(loadTime):
	case loadErr = <-loadDone:
		loadDone = nil
	}
	close(stop)
	chaos.Wait()
	faultsStopped := time.Now()
	if loadDone != nil {
		loadErr = <-loadDone
	}
	loadTook := time.Since(loadStart)
	if len(chaosErrs) > 0 {
		t.Fatalf("chaos: %v", chaosErrs)
	}
	if loadErr != nil {
		t.Fatalf("load: %v", loadErr)
	}
	for _, p := range procs {
		waitReady(t, p, 30*time.Second)
	}

	drained, pending, dead := drainOutbox(t, db, faultsStopped, fleetDrainMax)
	if pending > 0 || dead > 0 {
		t.Errorf("outbox %v after the faults stopped: %d events pending, %d dead", drained.Round(time.Millisecond), pending, dead)
	}
	var (
		caughtUp   time.Duration
		streamMsgs uint64
	)
	if bus != nil {
		// The outbox is drained once the stream acknowledged every publish;
		// the order center reads the stream at its own pace.
		caughtUp, streamMsgs = bus.waitConsumed(t, faultsStopped, fleetDrainMax)
	}
	l := d.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	wo := checkWorkOrders(t, db, l)
	events := committedEvents(t, db)
	ev := compareEvents(t, events, sim.TrackingEvents(t))
	ev.wrongCounts = checkEventCounts(t, db, l, events)
	pk := checkPacking(t, db, l)

	lost := wo.missing + ev.lost
	duplicated := wo.unacked + ev.storedTwice + ev.extra + pk.inTwoBags
	requests := d.requests.Load()
	report(t, "fleet load: %d `station serve` instances over one PostgreSQL and one Redis, every link through toxiproxy; %d terminals and a sorter for %v: %d requests (%.0f/s), %d sent again to another instance after no answer, a 5xx or a 429 (%d over a limit)",
		fleetInstances, fleetTerminals, loadTook.Round(time.Second), requests, float64(requests)/loadTook.Seconds(), d.resent.Load(), d.exhausted.Load())
	report(t, "fleet writes acknowledged: %d (%s); %d business exceptions; %d races of one parcel into two bags at once, each won by exactly one add",
		wo.acked, kinds(wo.byKind), l.exceptions, l.races)
	report(t, "fleet faults injected, %d in all: %s; %d restarts exited during start-up (database unreachable) and were started again",
		counts.total(), counts.String(), startFailures.Load())
	if bus != nil {
		report(t, "fleet sink jetstream: a nats-server -js of the test's own (file storage, killed and restarted on the same port and store), the relays' and the order center's connections each through toxiproxy; NATS faults: %s; the order center's durable consumer read the stream to its end %v after the faults stopped",
			counts.only("nats"), caughtUp.Round(time.Millisecond))
		report(t, "fleet check, the stream holds each committed event once (Nats-Msg-Id dedup): %s (%d messages, %d events committed)",
			verdictOf(streamMsgs == uint64(len(events))), streamMsgs, len(events))
		if streamMsgs != uint64(len(events)) {
			t.Errorf("stream %s holds %d messages for %d committed events", fleetStream, streamMsgs, len(events))
		}
		if streamMsgs > uint64(len(events)) {
			duplicated += int(streamMsgs) - len(events) // a re-publish the dedup window let through
		}
		wrong := bus.streamOutOfOrder(t, events, streamMsgs)
		report(t, "fleet check, the stream holds each parcel's events in commit order: %s (%d parcels out of order)", verdictOf(wrong == 0), wrong)
	}
	report(t, "fleet check, every acknowledged write has exactly one work order: %s (%d acknowledged, %d committed; missing %d, mismatched %d, never acknowledged %d; %d retried, %d answered as replays)",
		verdictOf(wo.missing+wo.mismatched+wo.unacked == 0), wo.acked, wo.committed, wo.missing, wo.mismatched, wo.unacked, wo.retried, wo.replayed)
	report(t, "fleet check, every committed event reached the order center once, in per-parcel order: %s (%d committed, %d stored; lost %d, stored twice %d, extra %d, out of order %d; %d redelivered pushes absorbed by dedup; %d work orders with a wrong event count)",
		verdictOf(ev.lost+ev.storedTwice+ev.extra+ev.outOfOrder+ev.wrongCounts == 0), ev.events, ev.stored, ev.lost, ev.storedTwice, ev.extra, ev.outOfOrder, ev.redelivered, ev.wrongCounts)
	report(t, "fleet check, no parcel in two bags: %s (%d parcels in %d bags; %d in two)", verdictOf(pk.inTwoBags == 0), pk.parcels, pk.bags, pk.inTwoBags)
	report(t, "fleet check, bags and handovers hold exactly the acknowledged adds, removals, seals and closes: %s (%d bags, %d differ; %d handovers, %d differ)",
		verdictOf(pk.bagsWrong+pk.handoversWrong == 0), pk.bags, pk.bagsWrong, pk.handovers, pk.handoversWrong)
	report(t, "fleet check, outbox drained within %v of the faults stopping: %s (%v; %d pending, %d dead letters)",
		fleetDrainMax, verdictOf(pending == 0 && dead == 0), drained.Round(time.Millisecond), pending, dead)
	report(t, "fleet check, a valid sorter key is never refused: %s (%d calls answered Unauthenticated with the right key, sent again)",
		verdictOf(d.falseUnauthenticated.Load() == 0), d.falseUnauthenticated.Load())
	if n := d.falseUnauthenticated.Load(); n > 0 {
		t.Errorf("%d sorter calls with a valid key were answered Unauthenticated (the gRPC auth interceptor turns a failed key lookup, such as an unreachable database, into Unauthenticated instead of Unavailable)", n)
	}
	report(t, "fleet result: lost %d, duplicated %d (pass line: 0 and 0)", lost, duplicated)
	if lost > 0 || duplicated > 0 {
		t.Errorf("lost %d, duplicated %d", lost, duplicated)
	}
}

// addSorter registers a sorting machine with the station command and
// returns its key.
func addSorter(t testing.TB, e serveEnv, id, station string) string {
	t.Helper()
	out := runStation(t, e.vars(), "sorter", "add", "--id", id, "--station", station)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// sorterClient dials one instance's gRPC port as the sorter. Reconnects are
// quick: a killed instance is back within a second or two.
func sorterClient(t testing.TB, addr, key string) stationv1.SorterServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(sorterCreds(key)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return stationv1.NewSorterServiceClient(conn)
}

// waitReady waits until an instance answers /readyz with 200: after the
// faults every instance recovers by itself.
func waitReady(t testing.TB, p *serveProc, within time.Duration) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(within)
	for {
		resp, err := hc.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s not ready %v after the faults stopped", p.URL, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kinds lists acknowledged writes by kind, in the hub's order.
func kinds(byKind map[string]int) string {
	var parts []string
	for _, k := range []string{"receive", "sort", "bag_open", "bag_add", "bag_remove", "bag_seal", "handover_open", "handover_add", "handover_close", "sorter_confirm"} {
		parts = append(parts, fmt.Sprintf("%s %d", k, byKind[k]))
	}
	return strings.Join(parts, ", ")
}
