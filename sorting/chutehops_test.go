package sorting

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/migrations/dbtest"
)

// siteStore is a chute store on a fresh database whose next hops are
// checked against the simulator's basic service over loopback gRPC.
func siteStore(t *testing.T) (*ChuteStore, []string) {
	t.Helper()
	s := simtest.Start(t, simtest.WithZeroLatency())
	set, err := clients.Dial(context.Background(), clients.DefaultConfig().WithAddr(s.Addr()), clients.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	return NewChuteStore(dbtest.Pool(t), time.Second, WithSiteCheck(set.Basic)), s.Fixtures().NextHops("SG-H01")
}

func TestChuteMapPutRefusesNextHopsThatCannotBe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, hops := siteStore(t)
	// The simulator's own next hops are all fine: the map seeded by tests
	// and `station dev` still goes in.
	good := NumberedChuteMap(hops)
	if _, err := store.Put(ctx, "SG-H01", good, 0, "test"); err != nil {
		t.Fatalf("the simulator's next hops: %v", err)
	}
	bad := NumberedChuteMap(append(slices.Clone(hops), "SG-Z999", "SG-H01", "VN-H01", "SG-H99"))
	_, err := store.Put(ctx, "SG-H01", bad, 1, "test")
	var cme *ChuteMapError
	if !errors.As(err, &cme) || !errors.Is(err, ErrInvalidChuteMap) {
		t.Fatalf("impossible next hops: %v, want a ChuteMapError", err)
	}
	want := []BadNextHop{{"SG-H01", "this_station"}, {"SG-H99", "unknown_site"}, {"SG-Z999", "unknown_site"}, {"VN-H01", "other_market"}}
	if !slices.Equal(cme.BadNextHops, want) {
		t.Fatalf("bad next hops %v, want %v", cme.BadNextHops, want)
	}
	if len(cme.Problems) != len(want) {
		t.Fatalf("problems %q, want one per bad hop", cme.Problems)
	}
	// A malformed map with a bad hop reports both kinds of problem at once.
	both := NumberedChuteMap([]string{hops[0], "SG-Z999"})
	both.RejectChute = 0
	_, err = store.Put(ctx, "SG-H01", both, 1, "test")
	if !errors.As(err, &cme) || len(cme.Problems) != 2 || len(cme.BadNextHops) != 1 {
		t.Fatalf("malformed map with a bad hop: %v", err)
	}
	if m, err := store.Get(ctx, "SG-H01"); err != nil || m.Version != 1 {
		t.Fatalf("after refused maps: version %d, %v; want 1", m.Version, err)
	}
}

// downSites is a basic service that cannot answer.
type downSites struct{}

func (downSites) GetSite(context.Context, string) (clients.Site, error) {
	return clients.Site{}, fmt.Errorf("basic: %w", clients.ErrUnavailable)
}

func TestChuteMapPutWaitsForTheSiteService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := NewChuteStore(dbtest.Pool(t), time.Second, WithSiteCheck(downSites{}))
	_, err := store.Put(ctx, "SG-H01", NumberedChuteMap([]string{"SG-H02"}), 0, "test")
	if !errors.Is(err, ErrSitesUnavailable) {
		t.Fatalf("site service down: %v, want ErrSitesUnavailable", err)
	}
	if _, err := store.Get(ctx, "SG-H01"); !errors.Is(err, ErrNoChuteMap) {
		t.Fatalf("a map was stored unchecked: %v", err)
	}
}
