package reliability

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest/linkproxy"
)

// The belt's figures: 1,000 pre-sorted parcels resolved while PostgreSQL
// is out of reach, after the chute map's in-process cache (2 s) has run
// out. Each call gives the machine a belt's deadline; the server keeps its
// safety margin inside it.
const (
	beltParcels  = 1000
	beltMisses   = 20              // parcels never pre-sorted, resolved during the outage too
	beltDeadline = time.Second     // a belt has less; generous for the race detector on a shared 2-core machine, and still far below any unbounded wait (the chute map load alone took 3 s)
	chuteMapTTL  = 2 * time.Second // sorting.NewChuteStore's TTL in station/app
)

// TestBeltServesPresortedChutesWithPostgresCut cuts the PostgreSQL link
// (connections reset, new ones refused): every pre-sorted parcel still gets
// its chute, from the last good chute map and the belt's table in memory
// and Redis, and a Confirm is refused with Unavailable so the machine
// resends it.
func TestBeltServesPresortedChutesWithPostgresCut(t *testing.T) {
	t.Parallel()
	testBeltWithPostgresOut(t, "cut", (*linkproxy.Proxy).Cut)
}

// TestBeltServesPresortedChutesWithPostgresFrozen freezes the link
// instead: PostgreSQL stops answering without any error, the harder case,
// where every unbounded wait becomes a hang.
func TestBeltServesPresortedChutesWithPostgresFrozen(t *testing.T) {
	t.Parallel()
	testBeltWithPostgresOut(t, "frozen", (*linkproxy.Proxy).Freeze)
}

func testBeltWithPostgresOut(t *testing.T, how string, fault func(*linkproxy.Proxy)) {
	st, proxy := behindProxy(t, func(c *config.Config) {
		// A flood of pre-sorts on a loaded test machine would open the
		// downstream breakers; they are not what this test is about.
		c.Downstream.Breaker.ConsecutiveFailures, c.Downstream.Breaker.MinRequests = 1<<30, 1<<30
		c.Sorter.Parallelism = 8
		c.Sorter.PreSortTimeout = 5 * time.Second
	})
	ctx := context.Background()
	key, err := st.App.Sorters().AddSorter(ctx, auth.Sorter{ID: "asm-" + how, StationID: "SG-H01"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(st.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cli := stationv1.NewSorterServiceClient(conn)
	call := func(d time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "x-sorter-key", key), d)
	}

	all := viaParcels(t, st.Sim.Fixtures(), "SG-H01", beltParcels+beltMisses)
	tns, misses := all[:beltParcels], all[beltParcels:]
	// Pre-sort every parcel. A sort that could not reach a dependency in
	// time (the machine is loaded) is answered with the reject chute and not
	// stored; it is pre-sorted again, as a machine's scheduler would.
	want := make(map[string]int32, len(tns))
	todo := tns
	for try := 0; len(todo) > 0; try++ {
		if try == 5 {
			t.Fatalf("%d parcels still not pre-sorted after %d tries", len(todo), try)
		}
		var decisions []*stationv1.Decision
		for lo := 0; lo < len(todo); lo += 100 { // in batches, as a machine's scheduler sends them
			pctx, cancel := call(5 * time.Minute)
			pre, err := cli.PreSort(pctx, &stationv1.PreSortRequest{TrackingNos: todo[lo:min(lo+100, len(todo))]})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			decisions = append(decisions, pre.GetDecisions()...)
		}
		todo = nil
		for _, d := range decisions {
			if d.GetChuteKind() == stationv1.ChuteKind_CHUTE_KIND_REJECT {
				todo = append(todo, d.GetTrackingNo())
				continue
			}
			want[d.GetTrackingNo()] = d.GetChute()
		}
	}
	// The belt runs before the outage: key, chute map and chute states are
	// what any running belt has in memory.
	rctx, cancel := call(5 * time.Second)
	_, err = cli.Resolve(rctx, &stationv1.ResolveRequest{TrackingNo: tns[0]})
	cancel()
	if err != nil {
		t.Fatal(err)
	}

	fault(proxy)
	defer proxy.Restore()
	time.Sleep(chuteMapTTL + 500*time.Millisecond) // the cached chute map is now stale

	var answered, wrong, unavailable, other atomic.Int64
	var firstErr atomic.Value
	var slowest atomic.Int64
	work := make(chan string)
	var wg sync.WaitGroup
	loopStart := time.Now()
	var lateMu sync.Mutex
	var late []string // when the failed calls started and how long they took
	for range 8 {
		wg.Go(func() {
			for tn := range work {
				start := time.Now()
				rctx, cancel := call(beltDeadline)
				res, err := cli.Resolve(rctx, &stationv1.ResolveRequest{TrackingNo: tn})
				cancel()
				took := time.Since(start)
				for prev := slowest.Load(); int64(took) > prev && !slowest.CompareAndSwap(prev, int64(took)); prev = slowest.Load() {
				}
				switch {
				case err == nil && res.GetDecision().GetChute() == want[tn]:
					answered.Add(1)
				case err == nil:
					wrong.Add(1)
					firstErr.CompareAndSwap(nil, tn+": chute "+res.GetDecision().String())
				case status.Code(err) == codes.Unavailable:
					unavailable.Add(1)
					firstErr.CompareAndSwap(nil, tn+": "+err.Error())
				default:
					other.Add(1)
					firstErr.CompareAndSwap(nil, tn+": "+err.Error())
				}
				if err != nil {
					lateMu.Lock()
					if len(late) < 10 {
						late = append(late, fmt.Sprintf("%v+%v", start.Sub(loopStart).Round(time.Millisecond), took.Round(time.Millisecond)))
					}
					lateMu.Unlock()
				}
			}
		})
	}
	for _, tn := range tns {
		work <- tn
	}
	close(work)
	wg.Wait()
	if answered.Load() != beltParcels {
		t.Errorf("PostgreSQL %s: %d of %d pre-sorted parcels got their chute; %d another chute, %d Unavailable, %d other errors; first: %v; failed calls (start+took): %v",
			how, answered.Load(), beltParcels, wrong.Load(), unavailable.Load(), other.Load(), firstErr.Load(), late)
	}

	// A parcel never pre-sorted still gets a chute within the deadline:
	// sorted on the fly, or the reject chute when that cannot be done in
	// time.
	var missSorted, missRejected int
	for _, tn := range misses {
		rctx, cancel := call(beltDeadline)
		res, err := cli.Resolve(rctx, &stationv1.ResolveRequest{TrackingNo: tn})
		cancel()
		switch {
		case err != nil:
			t.Errorf("PostgreSQL %s: a parcel never pre-sorted: %v, want a chute", how, err)
		case res.GetDecision().GetChuteKind() == stationv1.ChuteKind_CHUTE_KIND_REJECT:
			missRejected++
		default:
			missSorted++
		}
	}

	// A station whose chute map this instance never read cannot be
	// served: Unavailable within the deadline, so the machine retries.
	rctx, cancel = call(beltDeadline)
	_, err = cli.Resolve(rctx, &stationv1.ResolveRequest{StationId: "SG-H02", TrackingNo: tns[0]})
	cancel()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("PostgreSQL %s: Resolve at a station whose map was never read: %v, want Unavailable", how, err)
	}

	// A pre-sort batch stores its answers in PostgreSQL: with no deadline
	// of its own, the server's bound (sorter.presort_timeout) answers it
	// Unavailable instead of holding the call for as long as the link is
	// out. The client's minute is only the test's guard against a hang.
	pctx, cancel := call(time.Minute)
	_, err = cli.PreSort(pctx, &stationv1.PreSortRequest{TrackingNos: misses})
	cancel()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("PreSort with PostgreSQL %s and no deadline of the machine's: %v, want Unavailable", how, err)
	}

	// Confirm needs PostgreSQL: refused with Unavailable within the call's
	// deadline, so the machine resends it.
	cctx, cancel := call(5 * time.Second)
	_, err = cli.Confirm(cctx, &stationv1.ConfirmRequest{Sequence: 1, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED,
		TrackingNo: tns[0], Chute: want[tns[0]]})
	cancel()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Confirm with PostgreSQL %s: %v, want Unavailable", how, err)
	}

	proxy.Restore()
	// Once it is back, the resent Confirm is recorded.
	var confirmed error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		cctx, cancel := call(5 * time.Second)
		_, confirmed = cli.Confirm(cctx, &stationv1.ConfirmRequest{Sequence: 1, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED,
			TrackingNo: tns[0], Chute: want[tns[0]]})
		cancel()
		if confirmed == nil {
			break
		}
	}
	if confirmed != nil {
		t.Errorf("Confirm resent after PostgreSQL came back: %v", confirmed)
	}
	report(t, "belt with PostgreSQL %s: %d of %d pre-sorted resolves answered with their chute (deadline %v, slowest %v); Unavailable %d, other errors %d; %d parcels never pre-sorted: %d sorted on the fly, %d to the reject chute, none without a chute; Confirm refused with Unavailable during the outage and recorded when resent after it",
		how, answered.Load(), beltParcels, beltDeadline, time.Duration(slowest.Load()).Round(time.Millisecond), unavailable.Load(), other.Load()+wrong.Load(), beltMisses, missSorted, missRejected)
}
