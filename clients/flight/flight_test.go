package flight_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/expresshub/station/clients/flight"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gate is a loader that blocks until released and counts its executions.
type gate struct {
	calls   atomic.Int64
	started chan struct{}
	release chan struct{}
	ctxErr  chan error // the loader's context error when it ends, if any
}

func newGate() *gate {
	return &gate{started: make(chan struct{}, 100), release: make(chan struct{}), ctxErr: make(chan error, 100)}
}

func (g *gate) load(ctx context.Context) (string, error) {
	g.calls.Add(1)
	g.started <- struct{}{}
	select {
	case <-g.release:
		return "value", nil
	case <-ctx.Done():
		g.ctxErr <- ctx.Err()
		return "", ctx.Err()
	}
}

func TestConcurrentCallersShareOneCall(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := flight.New[string, string](flight.Options{Name: "site", Metrics: flight.NewMetrics(reg)})
	gt := newGate()
	const n = 200
	var wg sync.WaitGroup
	var joined atomic.Int64
	results := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, shared, err := g.Do(context.Background(), "SG-H01", gt.load)
			if err != nil {
				t.Error(err)
			}
			if shared {
				joined.Add(1)
			}
			results <- v
		}()
	}
	<-gt.started
	// Everyone must have joined before the call is released.
	waitFor(t, func() bool { return g.Stats().Shared == n-1 })
	if got := metricValue(t, reg, "station_singleflight_inflight"); got != 1 {
		t.Fatalf("in-flight gauge %v, want 1", got)
	}
	close(gt.release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != "value" {
			t.Fatalf("got %q", v)
		}
	}
	if gt.calls.Load() != 1 || joined.Load() != n-1 {
		t.Fatalf("calls %d, joined %d", gt.calls.Load(), joined.Load())
	}
	st := g.Stats()
	if st.Calls != 1 || st.Shared != n-1 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
	if c := metricValue(t, reg, "station_singleflight_calls_total"); c != 1 {
		t.Fatalf("calls metric %v", c)
	}
	if c := metricValue(t, reg, "station_singleflight_shared_callers_total"); c != n-1 {
		t.Fatalf("shared metric %v", c)
	}
}

func TestShortDeadlineWaiterLeavesWhileOthersGetTheValue(t *testing.T) {
	g := flight.New[string, string](flight.Options{})
	gt := newGate()
	long := make(chan error, 1)
	go func() {
		v, _, err := g.Do(context.Background(), "k", gt.load)
		if err == nil && v != "value" {
			err = errors.New("wrong value " + v)
		}
		long <- err
	}()
	<-gt.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, shared, err := g.Do(ctx, "k", gt.load)
	if !errors.Is(err, context.DeadlineExceeded) || !shared {
		t.Fatalf("short waiter: shared=%v err=%v", shared, err)
	}
	// Upper bound with generous slack: it must not wait for the call.
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("short waiter returned after %v", el)
	}
	close(gt.release)
	if err := <-long; err != nil {
		t.Fatalf("long waiter: %v", err)
	}
	if gt.calls.Load() != 1 {
		t.Fatalf("calls %d", gt.calls.Load())
	}
}

func TestCancelledFirstCallerDoesNotFailTheRest(t *testing.T) {
	g := flight.New[string, string](flight.Options{})
	gt := newGate()
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, _, err := g.Do(ctx, "k", gt.load)
		first <- err
	}()
	<-gt.started
	second := make(chan error, 1)
	go func() {
		v, _, err := g.Do(context.Background(), "k", gt.load)
		if err == nil && v != "value" {
			err = errors.New("wrong value")
		}
		second <- err
	}()
	waitFor(t, func() bool { return g.Stats().Shared == 1 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first: %v", err)
	}
	close(gt.release)
	if err := <-second; err != nil {
		t.Fatalf("second caller failed with the first caller's cancellation: %v", err)
	}
	if gt.calls.Load() != 1 {
		t.Fatalf("calls %d", gt.calls.Load())
	}
}

func TestLastWaiterLeavingCancelsTheSharedCall(t *testing.T) {
	g := flight.New[string, string](flight.Options{})
	gt := newGate()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := g.Do(ctx, "k", gt.load)
		done <- err
	}()
	<-gt.started
	cancel()
	<-done
	select {
	case err := <-gt.ctxErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("loader saw %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shared call not cancelled after its last waiter left")
	}
	// A newcomer starts afresh and never sees the cancelled call's error.
	gt2 := newGate()
	close(gt2.release)
	v, shared, err := g.Do(context.Background(), "k", gt2.load)
	if err != nil || shared || v != "value" {
		t.Fatalf("newcomer: %q shared=%v err=%v", v, shared, err)
	}
	waitFor(t, func() bool { return g.Stats().InFlight == 0 })
}

func TestSharedCallHasItsOwnTimeout(t *testing.T) {
	g := flight.New[string, string](flight.Options{Timeout: 30 * time.Millisecond})
	gt := newGate()
	// The caller would wait a minute; the shared call gives up first.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, err := g.Do(ctx, "k", gt.load)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if err := <-gt.ctxErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("loader saw %v", err)
	}
}

func TestForgetSendsTheNextCallerDownstream(t *testing.T) {
	g := flight.New[string, string](flight.Options{})
	gt := newGate()
	old := make(chan error, 1)
	go func() {
		_, _, err := g.Do(context.Background(), "k", gt.load)
		old <- err
	}()
	<-gt.started
	g.Forget("k")
	fresh := make(chan error, 1)
	go func() {
		_, shared, err := g.Do(context.Background(), "k", gt.load)
		if shared {
			err = errors.New("joined the forgotten call")
		}
		fresh <- err
	}()
	<-gt.started // a second execution started
	close(gt.release)
	if err := <-old; err != nil {
		t.Fatal(err)
	}
	if err := <-fresh; err != nil {
		t.Fatal(err)
	}
	if gt.calls.Load() != 2 {
		t.Fatalf("calls %d, want 2", gt.calls.Load())
	}
}

func TestPanickingCallFailsEveryWaiter(t *testing.T) {
	g := flight.New[string, string](flight.Options{})
	release := make(chan struct{})
	var calls atomic.Int64
	load := func(context.Context) (string, error) {
		calls.Add(1)
		<-release
		panic("boom")
	}
	const n = 10
	errs := make(chan error, n)
	for range n {
		go func() {
			_, _, err := g.Do(context.Background(), "k", load)
			errs <- err
		}()
	}
	waitFor(t, func() bool { s := g.Stats(); return s.Calls+s.Shared == n })
	close(release)
	for range n {
		err := <-errs
		var pe *flight.PanicError
		if !errors.Is(err, flight.ErrPanic) || !errors.As(err, &pe) || pe.Value != "boom" {
			t.Fatalf("got %v", err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("calls %d", calls.Load())
	}
	// The group still works afterwards.
	v, _, err := g.Do(context.Background(), "k", func(context.Context) (string, error) { return "ok", nil })
	if err != nil || v != "ok" {
		t.Fatalf("after panic: %q %v", v, err)
	}
}

func TestDoneCallerContextFailsFast(t *testing.T) {
	g := flight.New[string, string](flight.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	_, _, err := g.Do(ctx, "k", func(context.Context) (string, error) { called = true; return "", nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Fatalf("err %v called %v", err, called)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// metricValue sums the samples of one counter or gauge family of reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
