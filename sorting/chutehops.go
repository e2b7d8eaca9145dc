package sorting

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/fault"
)

// ErrSitesUnavailable: the basic service could not say whether a chute
// map's next hops exist, so the map is not stored (retry shortly).
var ErrSitesUnavailable = fault.New(fault.Unavailable, "dependency_unavailable", "the site service cannot check the next hops now")

// SiteLookup is the part of the basic service a chute map's check needs;
// *clients.Basic provides it, answering known sites from its cache.
type SiteLookup interface {
	GetSite(ctx context.Context, siteID string) (clients.Site, error)
}

// ChuteStoreOption adjusts a ChuteStore at construction.
type ChuteStoreOption func(*ChuteStore)

// WithSiteCheck makes Put refuse next hops that cannot be: a site the basic
// service does not know, the station itself, a site of another market. A
// parcel sent to such a chute could never be bagged (POST /bags refuses the
// same three), so the map is refused before it replaces a working one.
func WithSiteCheck(sites SiteLookup) ChuteStoreOption {
	return func(s *ChuteStore) { s.sites = sites }
}

// validate is Validate plus, with WithSiteCheck, the next hops' check,
// every problem of both in one error.
func (s *ChuteStore) validate(ctx context.Context, station string, m ChuteMap) error {
	verr := m.Validate()
	if s.sites == nil {
		return verr
	}
	herr := checkNextHops(ctx, s.sites, station, m)
	var vme, hme *ChuteMapError
	switch {
	case herr == nil:
		return verr
	case !errors.As(herr, &hme):
		// The service could not answer: a map that is wrong anyway says so.
		if verr != nil {
			return verr
		}
		return herr
	case errors.As(verr, &vme):
		return &ChuteMapError{Problems: append(vme.Problems, hme.Problems...), BadNextHops: hme.BadNextHops}
	default:
		return herr
	}
}

// BadNextHop names one next hop of a refused chute map and why.
type BadNextHop struct {
	NextHop string `json:"next_hop"`
	// Reason is unknown_site, this_station or other_market.
	Reason string `json:"reason"`
}

// siteLookupParallel bounds the lookups of one check: a map names a few
// dozen hops, mostly cached, and a cold cache must not flood the service.
const siteLookupParallel = 8

// checkNextHops looks up every well-formed next hop of m. It returns a
// *ChuteMapError naming each bad hop, ErrSitesUnavailable (wrapped) when
// the service could not answer, or nil. Malformed ids are left to Validate.
func checkNextHops(ctx context.Context, sites SiteLookup, station string, m ChuteMap) error {
	market := marketOf(station)
	var (
		mu  sync.Mutex
		bad []BadNextHop
	)
	add := func(hop, reason string) {
		mu.Lock()
		bad = append(bad, BadNextHop{NextHop: hop, Reason: reason})
		mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(siteLookupParallel)
	for hop := range m.NextHops {
		switch {
		case !siteIDPattern.MatchString(hop):
			continue
		case hop == station:
			add(hop, "this_station")
			continue
		case marketOf(hop) != market:
			add(hop, "other_market")
			continue
		}
		g.Go(func() error {
			site, err := sites.GetSite(gctx, hop)
			switch {
			case errors.Is(err, clients.ErrNotFound):
				add(hop, "unknown_site")
			case err != nil:
				return fmt.Errorf("sorting: check next hop %s: %w: %w", hop, ErrSitesUnavailable, err)
			case site.Market != "" && !strings.EqualFold(site.Market, market):
				add(hop, "other_market")
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].NextHop < bad[j].NextHop })
	e := &ChuteMapError{BadNextHops: bad}
	for _, b := range bad {
		switch b.Reason {
		case "unknown_site":
			e.Problems = append(e.Problems, fmt.Sprintf("next hop %s is not a known site", b.NextHop))
		case "this_station":
			e.Problems = append(e.Problems, fmt.Sprintf("next hop %s is this station itself", b.NextHop))
		default:
			e.Problems = append(e.Problems, fmt.Sprintf("next hop %s is not in market %s", b.NextHop, market))
		}
	}
	return e
}

// marketOf is the market prefix of a well-formed site id ("SG" of SG-H01).
func marketOf(siteID string) string {
	market, _, _ := strings.Cut(siteID, "-")
	return market
}
