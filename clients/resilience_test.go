package clients_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

func TestLatencyProfileIsHonoured(t *testing.T) {
	s := simtest.Start(t, simtest.WithLatency(sim.ProfileDefault))
	set := dial(t, s, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	no := sim.TrackingNo("SG", sim.Normal, 0)
	// Lower bounds only: the profile's base is a floor, never a promise
	// of speed.
	measure := func(name string, floor time.Duration, call func() error) {
		t.Helper()
		start := time.Now()
		if err := call(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if el := time.Since(start); el < floor {
			t.Errorf("%s took %v, want at least %v", name, el, floor)
		}
	}
	measure("GetWaybill", 10*time.Millisecond, func() error { _, err := set.OrderCenter.GetWaybill(ctx, no); return err })
	measure("GetRoute", 6*time.Millisecond, func() error {
		_, err := set.Basic.GetRoute(ctx, "SG-H01", "SG-L07", clients.ServiceStandard)
		return err
	})
	measure("GetSite", 64*time.Millisecond, func() error { _, err := set.Basic.GetSite(ctx, "SG-H01"); return err })
	measure("CheckBilling", 64*time.Millisecond, func() error { _, err := set.Finance.CheckBilling(ctx, no); return err })
	measure("AllocateBagID", time.Millisecond, func() error {
		_, err := set.Container.AllocateBagID(ctx, "SG-H01", "SG-L01", "")
		return err
	})

	// Switched to zero at run time through the admin service, then an
	// override for one method.
	_, err := admin(t, s).SetLatencyProfile(ctx, &downstreamv1.SetLatencyProfileRequest{
		Profile:   sim.ProfileZero,
		Overrides: map[string]*downstreamv1.MethodLatency{"GetTrip": {Base: durationpb.New(40 * time.Millisecond)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	measure("GetTrip override", 40*time.Millisecond, func() error {
		_, err := set.Linehaul.GetTrip(ctx, sim.TripID("SG-H01", 1))
		return err
	})
	if got := s.Latency().For(downstreamv1.BasicService_GetSite_FullMethodName); got != (sim.Latency{}) {
		t.Fatalf("zero profile still has %v for GetSite", got)
	}
}

func TestSimulatedLatencyStopsWhenTheCallerGivesUp(t *testing.T) {
	s := startSim(t, simtest.WithFault("GetWaybill", sim.Fault{AddedLatency: time.Minute}))
	set := dial(t, s, nil)
	start := time.Now()
	_, err := set.OrderCenter.GetWaybill(ctxTimeout(t, 100*time.Millisecond), sim.TrackingNo("SG", sim.Normal, 0))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("returned after %v", el)
	}
}

func TestInjectedFaultsSurfaceAsTheirErrors(t *testing.T) {
	s := startSim(t)
	adm := admin(t, s)
	no := sim.TrackingNo("SG", sim.Normal, 0)
	cases := []struct {
		code codes.Code
		want error
	}{
		{codes.Unavailable, clients.ErrUnavailable},
		{codes.ResourceExhausted, clients.ErrUnavailable},
		{codes.NotFound, clients.ErrNotFound},
		{codes.InvalidArgument, clients.ErrInvalidArgument},
		{codes.Internal, clients.ErrDownstream},
		{codes.FailedPrecondition, clients.ErrDownstream},
	}
	for _, c := range cases {
		t.Run(c.code.String(), func(t *testing.T) {
			set := dial(t, s, nil) // a fresh breaker and retry budget
			ctx := ctxTimeout(t, 10*time.Second)
			if _, err := adm.SetFault(ctx, &downstreamv1.SetFaultRequest{Method: "CheckBilling", Fault: &downstreamv1.Fault{ErrorRate: 1, Code: int32(c.code)}}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.ClearFaults("") })
			_, err := set.Finance.CheckBilling(ctx, no)
			if !errors.Is(err, c.want) || status.Code(err) != c.code {
				t.Fatalf("got %v (code %s), want %v", err, status.Code(err), c.want)
			}
			// Other methods are untouched.
			if _, err := set.Delivery.GetDeliveryStatus(ctx, no); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestErrorRateIsExact(t *testing.T) {
	s := startSim(t, simtest.WithFault("ValidateAddress", sim.Fault{ErrorRate: 0.25, Code: codes.Internal}))
	set := dial(t, s, func(c *clients.Config) { c.Breaker.ConsecutiveFailures = 100; c.Breaker.MinRequests = 1000 })
	ctx := ctxTimeout(t, 10*time.Second)
	failed := 0
	for range 40 {
		if _, err := set.Delivery.ValidateAddress(ctx, sim.TrackingNo("SG", sim.Normal, 0)); err != nil {
			failed++
		}
	}
	if failed != 10 {
		t.Fatalf("%d of 40 failed at rate 0.25", failed)
	}
}

func TestHungCallReturnsDeadlineExceededAtTheCallersDeadline(t *testing.T) {
	s := startSim(t, simtest.WithFault("GetWaybill", sim.Fault{Hang: true}))
	set := dial(t, s, nil)
	start := time.Now()
	_, err := set.OrderCenter.GetWaybill(ctxTimeout(t, 150*time.Millisecond), sim.TrackingNo("SG", sim.Normal, 0))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, clients.ErrUnavailable) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("hung call returned after %v", el)
	}

	// Without a caller deadline, the method's cap ends it.
	capped := dial(t, s, func(c *clients.Config) { c.Deadlines = map[string]time.Duration{"GetWaybill": 100 * time.Millisecond} })
	_, err = capped.OrderCenter.GetWaybill(context.Background(), sim.TrackingNo("SG", sim.Normal, 0))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("capped: got %v", err)
	}
}

func TestRetriesOnlyIdempotentReadsOnRetryableCodes(t *testing.T) {
	s := startSim(t)
	no := sim.TrackingNo("SG", sim.Normal, 0)
	cases := []struct {
		method string
		code   codes.Code
		calls  int64
		call   func(context.Context, *clients.Set) error
	}{
		{"GetSite", codes.Unavailable, 3, func(ctx context.Context, c *clients.Set) error { _, err := c.Basic.GetSite(ctx, "SG-H01"); return err }},
		{"CheckBilling", codes.ResourceExhausted, 3, func(ctx context.Context, c *clients.Set) error { _, err := c.Finance.CheckBilling(ctx, no); return err }},
		{"GetWaybill", codes.Internal, 1, func(ctx context.Context, c *clients.Set) error {
			_, err := c.OrderCenter.GetWaybill(ctx, no)
			return err
		}},
		{"GetRoute", codes.InvalidArgument, 1, func(ctx context.Context, c *clients.Set) error {
			_, err := c.Basic.GetRoute(ctx, "SG-H01", "SG-L01", clients.ServiceStandard)
			return err
		}},
		{"PushTrackingEvents", codes.Unavailable, 1, func(ctx context.Context, c *clients.Set) error {
			_, err := c.OrderCenter.PushTrackingEvents(ctx, []clients.TrackingEvent{{EventID: "x", TrackingNo: no, StationID: "SG-H01", Type: clients.EventArrived}})
			return err
		}},
		{"AllocateBagID", codes.Unavailable, 1, func(ctx context.Context, c *clients.Set) error {
			_, err := c.Container.AllocateBagID(ctx, "SG-H01", "SG-L01", "r")
			return err
		}},
		{"IssueToken", codes.Unavailable, 1, func(ctx context.Context, c *clients.Set) error { _, err := c.OrderCenter.Token(ctx); return err }},
	}
	for _, c := range cases {
		t.Run(c.method+"/"+c.code.String(), func(t *testing.T) {
			set := dial(t, s, nil)
			ctx := ctxTimeout(t, 10*time.Second)
			if c.method == "PushTrackingEvents" {
				if _, err := set.OrderCenter.Token(ctx); err != nil { // not part of the count
					t.Fatal(err)
				}
			}
			s.Reset(false)
			if err := s.SetFault(c.method, sim.Fault{ErrorRate: 1, Code: c.code}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.ClearFaults("") })
			if err := c.call(ctx, set); status.Code(err) != c.code {
				t.Fatalf("got %v", err)
			}
			if got := s.Calls(c.method); got != c.calls {
				t.Fatalf("%s reached the simulator %d times, want %d", c.method, got, c.calls)
			}
		})
	}
}

func TestRetryRecoversATransientFailure(t *testing.T) {
	s := startSim(t, simtest.WithFault("GetRoute", sim.Fault{ErrorRate: 0.5}))
	set := dial(t, s, nil)
	next, err := set.Basic.GetRoute(ctxTimeout(t, 5*time.Second), "SG-H01", "SG-L07", clients.ServiceStandard)
	if err != nil || next != "SG-H02" {
		t.Fatalf("got %q %v", next, err)
	}
	if got := s.Calls("GetRoute"); got != 2 {
		t.Fatalf("%d calls, want 2 (one failure, one retry)", got)
	}
}

func TestRetryBudgetStopsHammeringAFailingDependency(t *testing.T) {
	s := startSim(t, simtest.WithFault("GetRoute", sim.Fault{ErrorRate: 1}))
	// The breaker is held closed to see the retry budget alone.
	set := dial(t, s, func(c *clients.Config) { c.Breaker.ConsecutiveFailures = 1000; c.Breaker.MinRequests = 1000 })
	ctx := ctxTimeout(t, 20*time.Second)
	const n = 30
	for range n {
		if _, err := set.Basic.GetRoute(ctx, "SG-H01", "SG-L07", clients.ServiceStandard); !errors.Is(err, clients.ErrUnavailable) {
			t.Fatalf("got %v", err)
		}
	}
	got := s.Calls("GetRoute")
	if got >= 3*n || got > n+10 {
		t.Fatalf("%d calls for %d requests: retries did not stop", got, n)
	}
	t.Logf("%d downstream calls for %d failing requests", got, n)
}

func TestBreakerOpensFailsFastAndRecovers(t *testing.T) {
	s := startSim(t)
	set := dial(t, s, func(c *clients.Config) {
		c.Retry.MaxAttempts = 1
		c.Breaker.ConsecutiveFailures = 3
		c.Breaker.OpenFor = 200 * time.Millisecond
	})
	ctx := ctxTimeout(t, 20*time.Second)
	no := sim.TrackingNo("SG", sim.Normal, 0)

	// Not-found answers are not failures of the dependency.
	for range 5 {
		if _, err := set.Finance.CheckBilling(ctx, sim.TrackingNo("SG", sim.Unknown, 0)); !errors.Is(err, clients.ErrNotFound) {
			t.Fatalf("got %v", err)
		}
	}
	if err := s.SetFault("CheckBilling", sim.Fault{ErrorRate: 1, Code: codes.Unavailable}); err != nil {
		t.Fatal(err)
	}
	s.Reset(false)
	for range 3 {
		if _, err := set.Finance.CheckBilling(ctx, no); errors.Is(err, clients.ErrCircuitOpen) {
			t.Fatal("opened too early")
		}
	}
	_, err := set.Finance.CheckBilling(ctx, no)
	if !errors.Is(err, clients.ErrCircuitOpen) || !errors.Is(err, clients.ErrUnavailable) || status.Code(err) != codes.Unavailable {
		t.Fatalf("want an open circuit, got %v", err)
	}
	if got := s.Calls("CheckBilling"); got != 3 {
		t.Fatalf("open breaker let calls through: %d", got)
	}
	// The breaker is per dependency: the finance failure leaves delivery alone.
	if _, err := set.Delivery.GetDeliveryStatus(ctx, no); err != nil {
		t.Fatal(err)
	}
	// Recovery: after OpenFor one trial call goes through and closes it.
	if err := s.ClearFaults("CheckBilling"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "breaker half-open", func() bool {
		_, err := set.Finance.CheckBilling(ctx, no)
		return err == nil
	})
	for range 5 {
		if _, err := set.Finance.CheckBilling(ctx, no); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	}
}

func TestSiteLookupsShareOneDownstreamCall(t *testing.T) {
	// Slow enough that every caller joins before the answer comes.
	s := startSim(t, simtest.WithFault("GetSite", sim.Fault{AddedLatency: time.Second}))
	set := dial(t, s, func(c *clients.Config) { c.Deadlines = map[string]time.Duration{"GetSite": 10 * time.Second} })
	ctx := ctxTimeout(t, 20*time.Second)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			site, err := set.Basic.GetSite(ctx, "SG-H01")
			if err == nil && site.ID != "SG-H01" {
				err = errors.New("wrong site " + site.ID)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Calls("GetSite"); got != 1 {
		t.Fatalf("%d lookups made %d downstream calls, want 1", n, got)
	}
	if st := set.Basic.SiteLookupStats(); st.Calls != 1 || st.Shared != n-1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestShortDeadlineLookupReturnsWhileOthersGetTheSite(t *testing.T) {
	s := startSim(t, simtest.WithFault("GetSite", sim.Fault{AddedLatency: 400 * time.Millisecond}))
	set := dial(t, s, nil)
	long := make(chan error, 1)
	go func() {
		_, err := set.Basic.GetSite(ctxTimeout(t, 10*time.Second), "SG-H02")
		long <- err
	}()
	waitFor(t, "first lookup in flight", func() bool { return s.Calls("GetSite") == 1 })
	start := time.Now()
	_, err := set.Basic.GetSite(ctxTimeout(t, 30*time.Millisecond), "SG-H02")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, clients.ErrUnavailable) {
		t.Fatalf("short waiter: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("short waiter returned after %v", el)
	}
	if err := <-long; err != nil {
		t.Fatalf("long waiter: %v", err)
	}
	if got := s.Calls("GetSite"); got != 1 {
		t.Fatalf("%d calls", got)
	}
}

func TestCancelledFirstLookupDoesNotFailTheOthers(t *testing.T) {
	s := startSim(t, simtest.WithFault("GetSite", sim.Fault{AddedLatency: 300 * time.Millisecond}))
	set := dial(t, s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := set.Basic.GetSite(ctx, "SG-H03")
		first <- err
	}()
	waitFor(t, "first lookup in flight", func() bool { return s.Calls("GetSite") == 1 })
	second := make(chan error, 1)
	go func() {
		_, err := set.Basic.GetSite(ctxTimeout(t, 10*time.Second), "SG-H03")
		second <- err
	}()
	waitFor(t, "second lookup joined", func() bool { return set.Basic.SiteLookupStats().Shared == 1 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("second failed with the first caller's cancellation: %v", err)
	}
	if got := s.Calls("GetSite"); got != 1 {
		t.Fatalf("%d calls", got)
	}
}

func TestForgetSiteSendsTheNextLookupDownstream(t *testing.T) {
	s := startSim(t, simtest.WithFault("GetSite", sim.Fault{AddedLatency: 300 * time.Millisecond}))
	set := dial(t, s, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	first := make(chan error, 1)
	go func() {
		_, err := set.Basic.GetSite(ctx, "SG-L07")
		first <- err
	}()
	waitFor(t, "first lookup in flight", func() bool { return s.Calls("GetSite") == 1 })
	set.Basic.ForgetSite("sg-l07")
	if _, err := set.Basic.GetSite(ctx, "SG-L07"); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := s.Calls("GetSite"); got != 2 {
		t.Fatalf("%d calls, want 2", got)
	}
}
