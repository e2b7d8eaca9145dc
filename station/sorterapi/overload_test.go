package sorterapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/expresshub/station/ident"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/sorting/belt"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/grpcserver"
)

// The concurrency limits under concurrent load, over real gRPC through the
// station's interceptor chain. The belt here is a gate: every admitted
// Resolve waits inside the handler until the test opens it, so the test
// sees exactly how many calls the limits let in and can measure the most
// that were ever in flight at once. (TestOverloadIsRefusedNotQueued covers
// one refused call on a whole station; this covers the counts under load.)

// gateBelt holds every Resolve until open is closed, counting calls in flight.
type gateBelt struct {
	open chan struct{}

	mu        sync.Mutex
	inflight  map[string]int // by sorter
	total     int
	maxTotal  int
	maxSorter map[string]int
}

func newGateBelt() *gateBelt {
	return &gateBelt{open: make(chan struct{}), inflight: map[string]int{}, maxSorter: map[string]int{}}
}

func (b *gateBelt) Resolve(ctx context.Context, station string, tn ident.TrackingNo) (belt.Decision, error) {
	p, _ := auth.FromContext(ctx)
	b.mu.Lock()
	b.total++
	b.inflight[p.ID]++
	b.maxTotal = max(b.maxTotal, b.total)
	b.maxSorter[p.ID] = max(b.maxSorter[p.ID], b.inflight[p.ID])
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.total--
		b.inflight[p.ID]--
		b.mu.Unlock()
	}()
	select {
	case <-b.open:
		return belt.Decision{TrackingNo: string(tn), Chute: 1, NextHop: "SG-H02", Source: belt.FromPresort}, nil
	case <-ctx.Done():
		return belt.Decision{}, ctx.Err()
	}
}

func (b *gateBelt) inFlight() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

func (b *gateBelt) maxima() (total int, bySorter map[string]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for k, v := range b.maxSorter {
		out[k] = v
	}
	return b.maxTotal, out
}

func (*gateBelt) CheckStation(context.Context, string) error { return nil }

func (*gateBelt) PreSort(context.Context, string, []string) ([]belt.Decision, time.Time, error) {
	return nil, time.Time{}, errors.New("not used")
}

func (*gateBelt) Reject(context.Context, string, string, string, string) (belt.Decision, error) {
	return belt.Decision{}, errors.New("not used")
}

func (*gateBelt) Confirm(context.Context, belt.SorterEvent) (belt.Confirmation, error) {
	return belt.Confirmation{}, errors.New("not used")
}

// keys authenticates a sorter whose key is its id, all at SG-H01.
type keys struct{}

func (keys) AuthenticateSorter(_ context.Context, key string) (auth.Principal, error) {
	return auth.Principal{Kind: auth.KindSorter, ID: key, StationID: "SG-H01"}, nil
}

// serveGate serves the sorter API over the station's gRPC server on
// loopback with belt behind it.
func serveGate(t *testing.T, belt Belt, cfg Config) stationv1.SorterServiceClient {
	t.Helper()
	g := grpcserver.New(grpcserver.Options{Log: zap.NewNop(), Auth: keys{}})
	New(belt, nil, cfg, zap.NewNop()).Register(g.GRPC)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		g.GRPC.Stop()
		<-served
	})
	return stationv1.NewSorterServiceClient(conn)
}

// outcome is what one call of a burst got.
type outcome struct {
	sorter string
	err    error
}

// burst fires calls Resolve calls per sorter at once; admitted calls stay
// in the gate until it opens. It returns the refusals as they come and a
// function that waits for the rest.
func burst(t *testing.T, cli stationv1.SorterServiceClient, sorters []string, calls int) (refused <-chan outcome, wait func() []outcome) {
	t.Helper()
	all := make(chan outcome, len(sorters)*calls)
	ref := make(chan outcome, len(sorters)*calls)
	var wg sync.WaitGroup
	for _, s := range sorters {
		for i := range calls {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				ctx = metadata.AppendToOutgoingContext(ctx, "x-sorter-key", s)
				_, err := cli.Resolve(ctx, &stationv1.ResolveRequest{TrackingNo: fmt.Sprintf("SG1%09d", i)})
				o := outcome{sorter: s, err: err}
				if err != nil {
					ref <- o
				}
				all <- o
			})
		}
	}
	return ref, func() []outcome {
		wg.Wait()
		close(all)
		var out []outcome
		for o := range all {
			out = append(out, o)
		}
		return out
	}
}

// overloadReason checks a refusal is ResourceExhausted with a retry hint
// and returns its reason.
func overloadReason(t *testing.T, err error) string {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("refusal %v (%s), want ResourceExhausted", st.Code(), st.Message())
	}
	var reason string
	var retry bool
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.RetryInfo:
			retry = d.GetRetryDelay().AsDuration() > 0
		}
	}
	if !retry {
		t.Errorf("refusal %q without RetryInfo", reason)
	}
	return reason
}

// collect waits for n refusals, bounded by a deadline.
func collect(t *testing.T, refused <-chan outcome, n int) []outcome {
	t.Helper()
	var out []outcome
	deadline := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case o := <-refused:
			out = append(out, o)
		case <-deadline:
			t.Fatalf("%d refusals after 30 s, want %d", len(out), n)
		}
	}
	return out
}

func TestPerSorterLimitUnderConcurrentLoad(t *testing.T) {
	const perSorter, calls = 4, 24
	belt := newGateBelt()
	cli := serveGate(t, belt, Config{PerSorter: perSorter, Global: 1000})
	refused, wait := burst(t, cli, []string{"asm1"}, calls)

	// The refused calls come back at once; the admitted ones wait inside.
	for _, o := range collect(t, refused, calls-perSorter) {
		if r := overloadReason(t, o.err); r != ReasonSorterOverloaded {
			t.Errorf("refusal reason %s, want %s", r, ReasonSorterOverloaded)
		}
	}
	if n := belt.inFlight(); n != perSorter {
		t.Fatalf("%d calls in flight in the handler, want exactly the limit %d", n, perSorter)
	}
	close(belt.open)
	var ok int
	for _, o := range wait() {
		if o.err == nil {
			ok++
		}
	}
	maxTotal, _ := belt.maxima()
	if ok != perSorter || maxTotal != perSorter {
		t.Fatalf("%d answered, at most %d in flight; want %d and %d", ok, maxTotal, perSorter, perSorter)
	}
	t.Logf("REPORT per-sorter limit: %d concurrent calls of one sorter: %d admitted, %d ResourceExhausted, at most %d in flight", calls, ok, calls-ok, maxTotal)
}

func TestGlobalLimitUnderConcurrentLoadFromManySorters(t *testing.T) {
	const perSorter, global, calls = 4, 10, 8
	sorters := []string{"asm1", "asm2", "asm3", "asm4", "asm5"}
	belt := newGateBelt()
	cli := serveGate(t, belt, Config{PerSorter: perSorter, Global: global})
	refused, wait := burst(t, cli, sorters, calls)

	reasons := map[string]int{}
	for _, o := range collect(t, refused, len(sorters)*calls-global) {
		reasons[overloadReason(t, o.err)]++
	}
	if n := belt.inFlight(); n != global {
		t.Fatalf("%d calls in flight in the handler, want exactly the instance limit %d", n, global)
	}
	if reasons[ReasonStationOverloaded] == 0 {
		t.Errorf("refusals by reason %v: the instance limit never spoke", reasons)
	}
	close(belt.open)
	var ok int
	for _, o := range wait() {
		if o.err == nil {
			ok++
		}
	}
	maxTotal, bySorter := belt.maxima()
	if ok != global || maxTotal > global {
		t.Fatalf("%d answered, at most %d in flight; want %d, never more than %d", ok, maxTotal, global, global)
	}
	for s, n := range bySorter {
		if n > perSorter {
			t.Errorf("sorter %s had %d calls in flight, over its limit %d", s, n, perSorter)
		}
	}
	t.Logf("REPORT global limit: %d concurrent calls from %d sorters: %d admitted, refused by reason %v, at most %d in flight (per sorter %v)",
		len(sorters)*calls, len(sorters), ok, reasons, maxTotal, bySorter)
}

// TestSlotsComeBackAfterLoad: after a burst every slot is released, so the
// next burst is admitted up to the limit again, not less.
func TestSlotsComeBackAfterLoad(t *testing.T) {
	const perSorter, global = 3, 5
	l := newLimiter(perSorter, global)
	var wg sync.WaitGroup
	for round := range 50 {
		for i := range 20 {
			wg.Go(func() {
				if release, a := l.acquire(fmt.Sprintf("asm%d", (round+i)%4)); a == admitted {
					release()
				}
			})
		}
	}
	wg.Wait()
	if l.inflight != 0 || len(l.sorters) != 0 {
		t.Fatalf("after the load: %d in flight, %v by sorter; want none", l.inflight, l.sorters)
	}
	var releases []func()
	for i := range 10 {
		if release, a := l.acquire(fmt.Sprintf("asm%d", i%2)); a == admitted {
			releases = append(releases, release)
		}
	}
	if len(releases) != min(global, 2*perSorter) {
		t.Fatalf("%d admitted from two sorters, want %d", len(releases), min(global, 2*perSorter))
	}
	for _, r := range releases {
		r()
	}
}
