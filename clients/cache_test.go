package clients_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
)

// cacheFor sets the basic caches' TTL (and optionally their size).
func cacheFor(ttl time.Duration, maxEntries int) func(*clients.Config) {
	return func(c *clients.Config) { c.Cache.TTL, c.Cache.MaxEntries = ttl, maxEntries }
}

// The goal: at 200 concurrent callers, at most 10 downstream calls per
// 1,000 site lookups. Singleflight alone makes about 25 (a caller arriving
// just after a call ended starts the next one); the cache leaves one call
// per site, plus the rare caller that missed just before a call ended.
func TestConcurrentSiteLookupsReachTheDownstreamAboutOncePerSite(t *testing.T) {
	s := simtest.Start(t, simtest.WithLatency(sim.ProfileDefault))
	set := dial(t, s, cacheFor(time.Minute, 0))
	ctx := ctxTimeout(t, 60*time.Second)
	sites := []string{"SG-H01", "SG-L01", "SG-L02", "SG-L03", "SG-L04", "SG-L07", "SG-H02", "SG-T01"}
	const callers, each = 200, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				if _, err := set.Basic.GetSite(ctx, sites[(c+i)%len(sites)]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	lookups := int64(callers * each)
	if got := s.Calls("GetSite"); got*1000 > 10*lookups || got < int64(len(sites)) {
		t.Fatalf("%d lookups made %d downstream calls, want %d to %d", lookups, got, len(sites), 10*lookups/1000)
	}
	st := set.Basic.CacheStats().Sites
	if st.Hits+st.Misses != uint64(lookups) || st.Entries != len(sites) {
		t.Fatalf("stats %+v after %d lookups of %d sites", st, lookups, len(sites))
	}
}

func TestFoundSitesAreAnsweredFromMemoryUntilTheyExpire(t *testing.T) {
	s := startSim(t)
	ctx := ctxTimeout(t, 10*time.Second)
	set := dial(t, s, cacheFor(time.Minute, 0))
	for _, id := range []string{"SG-L07", "sg-l07", " SG-L07 "} {
		site, err := set.Basic.GetSite(ctx, id)
		if err != nil || site.ID != "SG-L07" {
			t.Fatalf("%q: %+v %v", id, site, err)
		}
	}
	if got := s.Calls("GetSite"); got != 1 {
		t.Fatalf("three lookups of one site made %d calls, want 1", got)
	}
	if st := set.Basic.CacheStats().Sites; st.Hits != 2 || st.Misses != 1 {
		t.Fatalf("stats %+v", st)
	}

	s.Reset(false)
	short := dial(t, s, cacheFor(time.Millisecond, 0))
	for range 2 {
		if _, err := short.Basic.GetSite(ctx, "SG-L07"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // past the TTL
	}
	if got := s.Calls("GetSite"); got != 2 {
		t.Fatalf("an expired site was answered from memory: %d calls, want 2", got)
	}
}

func TestUnknownSitesAndFailuresAreNotCached(t *testing.T) {
	s := startSim(t)
	ctx := ctxTimeout(t, 10*time.Second)
	set := dial(t, s, cacheFor(time.Minute, 0))
	for range 2 {
		if _, err := set.Basic.GetSite(ctx, "SG-H99"); !errors.Is(err, clients.ErrNotFound) {
			t.Fatalf("got %v", err)
		}
	}
	if got := s.Calls("GetSite"); got != 2 {
		t.Fatalf("an unknown site was cached: %d calls, want 2", got)
	}

	if err := s.SetFault("GetSite", sim.Fault{ErrorRate: 1, Code: codes.Unavailable}); err != nil {
		t.Fatal(err)
	}
	if _, err := set.Basic.GetSite(ctx, "SG-H02"); !errors.Is(err, clients.ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	if err := s.ClearFaults(""); err != nil {
		t.Fatal(err)
	}
	s.Reset(false)
	for range 2 {
		if site, err := set.Basic.GetSite(ctx, "SG-H02"); err != nil || site.ID != "SG-H02" {
			t.Fatalf("after the failure: %+v %v", site, err)
		}
	}
	if got := s.Calls("GetSite"); got != 1 {
		t.Fatalf("after a failure: %d calls, want 1 (asked again, then cached)", got)
	}
}

func TestSiteCacheIsBoundedAndDropsTheOldestFirst(t *testing.T) {
	s := startSim(t)
	ctx := ctxTimeout(t, 10*time.Second)
	set := dial(t, s, cacheFor(time.Minute, 2))
	for _, id := range []string{"SG-L01", "SG-L02", "SG-L03", "SG-L01", "SG-L03"} {
		if _, err := set.Basic.GetSite(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// L03 dropped L01, the oldest; L01 then dropped L02; L03 is still held.
	if got := s.Calls("GetSite"); got != 4 {
		t.Fatalf("%d calls, want 4", got)
	}
	if st := set.Basic.CacheStats().Sites; st.Entries != 2 {
		t.Fatalf("%d sites held, want at most 2", st.Entries)
	}
}

func TestForgetSiteDropsTheCachedSite(t *testing.T) {
	s := startSim(t)
	ctx := ctxTimeout(t, 10*time.Second)
	set := dial(t, s, cacheFor(time.Minute, 0))
	if _, err := set.Basic.GetSite(ctx, "SG-L04"); err != nil {
		t.Fatal(err)
	}
	set.Basic.ForgetSite(" sg-l04")
	if _, err := set.Basic.GetSite(ctx, "SG-L04"); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls("GetSite"); got != 2 {
		t.Fatalf("%d calls, want 2", got)
	}
}

// A lookup that was already on its way when the site changed may bring the
// old site back: it answers its callers, but is not kept.
func TestLookupRunningAtForgetSiteIsNotCached(t *testing.T) {
	s := startSim(t, simtest.WithFault("GetSite", sim.Fault{AddedLatency: 300 * time.Millisecond}))
	set := dial(t, s, cacheFor(time.Minute, 0))
	ctx := ctxTimeout(t, 10*time.Second)
	first := make(chan error, 1)
	go func() {
		_, err := set.Basic.GetSite(ctx, "SG-T01")
		first <- err
	}()
	waitFor(t, "first lookup in flight", func() bool { return s.Calls("GetSite") == 1 })
	set.Basic.ForgetSite("SG-T01")
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := set.Basic.GetSite(ctx, "SG-T01"); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls("GetSite"); got != 2 {
		t.Fatalf("%d calls, want 2: the lookup from before ForgetSite was cached", got)
	}
}

func TestDisabledSiteCacheSendsEveryLookupOn(t *testing.T) {
	s := startSim(t)
	ctx := ctxTimeout(t, 10*time.Second)
	set := dial(t, s, func(c *clients.Config) { c.Cache.Disabled = true })
	for range 3 {
		if _, err := set.Basic.GetSite(ctx, "SG-H01"); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Calls("GetSite"); got != 3 {
		t.Fatalf("%d calls, want 3", got)
	}
	if st := set.Basic.CacheStats().Sites; st != (clients.CacheStats{}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestSiteCacheMetrics(t *testing.T) {
	s := startSim(t)
	reg := prometheus.NewRegistry()
	set := dial(t, s, cacheFor(time.Minute, 0), func(o *clients.Options) { o.Registerer = reg })
	ctx := ctxTimeout(t, 10*time.Second)
	for range 3 {
		if _, err := set.Basic.GetSite(ctx, "SG-H01"); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "station_basic_cache_lookups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["kind"]+"/"+labels["result"]] = m.GetCounter().GetValue()
		}
	}
	if got["site/hit"] != 2 || got["site/miss"] != 1 || got["route/hit"] != 0 {
		t.Fatalf("station_basic_cache_lookups_total %v", got)
	}
}

func TestSiteCacheConfigIsValidated(t *testing.T) {
	for _, edit := range []func(*clients.Config){
		func(c *clients.Config) { c.Cache.TTL = -time.Second },
		func(c *clients.Config) { c.Cache.TTL = 2 * time.Hour },
		func(c *clients.Config) { c.Cache.MaxEntries = -1 },
	} {
		cfg := clients.DefaultConfig().WithAddr("127.0.0.1:1")
		edit(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("accepted %+v", cfg.Cache)
		}
	}
}

// Routes, service areas and lane restrictions are master data like sites:
// one downstream call per distinct question within the TTL, a separate
// answer per routing table, and nothing kept for an unknown route or a
// failure.
func TestRoutesServiceAreasAndLanesAreAnsweredFromMemory(t *testing.T) {
	s := startSim(t)
	ctx := ctxTimeout(t, 10*time.Second)
	set := dial(t, s, cacheFor(time.Minute, 0))
	p, err := s.Fixtures().Parcel(sim.ViaStation("SG-H01", 0))
	if err != nil {
		t.Fatal(err)
	}
	svc := clients.ServiceType(p.ServiceType)
	for range 3 {
		hop, err := set.Basic.GetRoute(ctx, "SG-H01", p.Destination, svc)
		if err != nil || hop == "" {
			t.Fatalf("route: %q %v", hop, err)
		}
		if _, err := set.Basic.GetRouteV2(ctx, "SG-H01", p.Destination, svc); err != nil {
			t.Fatalf("route v2: %v", err)
		}
		if _, err := set.Basic.CheckServiceArea(ctx, p.Destination, svc); err != nil {
			t.Fatalf("service area: %v", err)
		}
		if _, err := set.Basic.GetLaneRestrictions(ctx, "SG-H01", p.Destination); err != nil {
			t.Fatalf("lane: %v", err)
		}
	}
	for _, m := range []string{"GetRoute", "GetRouteV2", "CheckServiceArea", "GetLaneRestrictions"} {
		if got := s.Calls(m); got != 1 {
			t.Errorf("%s: three lookups made %d calls, want 1", m, got)
		}
	}
	st := set.Basic.CacheStats()
	if st.Routes.Hits != 4 || st.Routes.Misses != 2 || st.ServiceAreas.Hits != 2 || st.Lanes.Hits != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Another destination is another question.
	other, err := s.Fixtures().Parcel(sim.ViaStation("SG-H01", 1))
	if err != nil {
		t.Fatal(err)
	}
	if other.Destination != p.Destination {
		if _, err := set.Basic.GetLaneRestrictions(ctx, "SG-H01", other.Destination); err != nil {
			t.Fatal(err)
		}
		if got := s.Calls("GetLaneRestrictions"); got != 2 {
			t.Errorf("a second lane made %d calls in all, want 2", got)
		}
	}

	if _, err := set.Basic.GetRoute(ctx, "SG-H01", "SG-L99", svc); !errors.Is(err, clients.ErrNotFound) {
		t.Fatalf("unknown destination: %v", err)
	}
	if err := s.SetFault("CheckServiceArea", sim.Fault{ErrorRate: 1, Code: codes.Unavailable}); err != nil {
		t.Fatal(err)
	}
	otherSvc := clients.ServiceEconomy
	if svc == otherSvc {
		otherSvc = clients.ServiceExpress
	}
	if _, err := set.Basic.CheckServiceArea(ctx, p.Destination, otherSvc); !errors.Is(err, clients.ErrUnavailable) {
		t.Fatalf("failing service area: %v", err)
	}
	if err := s.ClearFaults(""); err != nil {
		t.Fatal(err)
	}
	s.Reset(false)
	if _, err := set.Basic.GetRoute(ctx, "SG-H01", "SG-L99", svc); !errors.Is(err, clients.ErrNotFound) {
		t.Fatalf("unknown destination again: %v", err)
	}
	if _, err := set.Basic.CheckServiceArea(ctx, p.Destination, otherSvc); err != nil {
		t.Fatalf("service area after the failure: %v", err)
	}
	if got := s.Calls("GetRoute") + s.Calls("CheckServiceArea"); got != 2 {
		t.Fatalf("a not-found route or a failure was kept: %d calls after them, want 2", got)
	}
}

func TestDisabledCacheSendsEveryBasicLookupOn(t *testing.T) {
	s := startSim(t)
	ctx := ctxTimeout(t, 10*time.Second)
	set := dial(t, s, func(c *clients.Config) { c.Cache.Disabled = true })
	p, err := s.Fixtures().Parcel(sim.ViaStation("SG-H01", 0))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := set.Basic.GetRoute(ctx, "SG-H01", p.Destination, clients.ServiceType(p.ServiceType)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Calls("GetRoute"); got != 2 {
		t.Fatalf("%d calls, want 2", got)
	}
	if st := set.Basic.CacheStats(); st != (clients.BasicCacheStats{}) {
		t.Fatalf("stats %+v", st)
	}
}
