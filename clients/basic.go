package clients

import (
	"context"
	"errors"
	"strings"

	"github.com/expresshub/station/clients/flight"
	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// Basic is the client of the basic (master data) service: sites, routes,
// service areas, lane restrictions.
// Found answers are kept for Config.Cache's TTL (a few seconds); a nil
// cache means caching is disabled.
type Basic struct {
	rpc   downstreamv1.BasicServiceClient
	ep    *endpoint
	sites *flight.Group[string, Site] // nil: singleflight disabled

	siteCache  *ttlCache[string, Site]
	routeCache *ttlCache[routeKey, string]
	areaCache  *ttlCache[areaKey, ServiceArea]
	laneCache  *ttlCache[laneKey, LaneRestrictions]
}

type routeKey struct {
	v2                bool
	from, destination string
	svc               ServiceType
}

type areaKey struct {
	destination string
	svc         ServiceType
}

type laneKey struct{ from, destination string }

func newBasic(rpc downstreamv1.BasicServiceClient, ep *endpoint, cfg Config, m *metrics) *Basic {
	b := &Basic{rpc: rpc, ep: ep,
		siteCache:  newTTLCache[string, Site]("site", cfg.Cache, m),
		routeCache: newTTLCache[routeKey, string]("route", cfg.Cache, m),
		areaCache:  newTTLCache[areaKey, ServiceArea]("service_area", cfg.Cache, m),
		laneCache:  newTTLCache[laneKey, LaneRestrictions]("lane", cfg.Cache, m),
	}
	if !cfg.DisableSiteSingleflight {
		// The shared lookup runs under GetSite's own cap, whoever waits.
		b.sites = flight.New[string, Site](flight.Options{Name: "site", Timeout: ep.deadline("GetSite"), Metrics: m.flight})
	}
	return b
}

// GetSite returns a site; ErrNotFound when unknown. A site found in the
// last few seconds (Config.Cache) is answered from memory; concurrent
// lookups of a site that is not share one downstream call, and each caller
// still returns at its own deadline.
func (b *Basic) GetSite(ctx context.Context, siteID string) (Site, error) {
	id := strings.ToUpper(strings.TrimSpace(siteID))
	if s, ok := b.siteCache.get(id); ok {
		return s, nil
	}
	load := func(ctx context.Context) (Site, error) {
		gen := b.siteCache.generation()
		s, err := b.getSite(ctx, id)
		if err == nil {
			b.siteCache.put(id, s, gen)
		}
		return s, err
	}
	if b.sites == nil {
		return load(ctx)
	}
	s, _, err := b.sites.Do(ctx, id, load)
	if err != nil {
		var ce *CallError
		if !errors.As(err, &ce) {
			// The caller's own context ended, or the shared call panicked.
			return Site{}, callError(b.ep.service, "GetSite", err)
		}
	}
	return s, err
}

// ForgetSite drops a site from the cache, and an in-flight lookup of it, so
// the next GetSite asks the downstream afresh (a known change to the site).
func (b *Basic) ForgetSite(siteID string) {
	id := strings.ToUpper(strings.TrimSpace(siteID))
	b.siteCache.forget(id)
	if b.sites != nil {
		b.sites.Forget(id)
	}
}

// SiteLookupStats are the counters of the site singleflight (zero when it
// is disabled).
func (b *Basic) SiteLookupStats() flight.Stats {
	if b.sites == nil {
		return flight.Stats{}
	}
	return b.sites.Stats()
}

// BasicCacheStats are the counters of the basic service's caches.
type BasicCacheStats struct {
	Sites, Routes, ServiceAreas, Lanes CacheStats
}

// CacheStats are the counters of the caches (zero when caching is
// disabled).
func (b *Basic) CacheStats() BasicCacheStats {
	return BasicCacheStats{Sites: b.siteCache.stats(), Routes: b.routeCache.stats(),
		ServiceAreas: b.areaCache.stats(), Lanes: b.laneCache.stats()}
}

func (b *Basic) getSite(ctx context.Context, id string) (Site, error) {
	resp, err := invoke(ctx, b.ep, "GetSite", func(ctx context.Context) (*downstreamv1.GetSiteResponse, error) {
		return b.rpc.GetSite(ctx, &downstreamv1.GetSiteRequest{SiteId: id})
	})
	if err != nil {
		return Site{}, err
	}
	s := resp.GetSite()
	return Site{
		ID:        s.GetId(),
		Name:      s.GetName(),
		Market:    s.GetMarket(),
		Type:      SiteType(enumString("SITE_TYPE_", s.GetType().String(), int32(s.GetType()))),
		Active:    s.GetActive(),
		ParentHub: s.GetParentHubId(),
	}, nil
}

func serviceTypePB(t ServiceType) downstreamv1.ServiceType {
	return downstreamv1.ServiceType(enumValue(downstreamv1.ServiceType_value, "SERVICE_TYPE_", string(t)))
}

// GetRoute returns the next-hop site from a site towards a destination;
// ErrNotFound when there is no route.
func (b *Basic) GetRoute(ctx context.Context, from, destination string, svc ServiceType) (string, error) {
	return cached(b.routeCache, routeKey{false, from, destination, svc}, func() (string, error) {
		return b.getRoute(ctx, from, destination, svc)
	})
}

func (b *Basic) getRoute(ctx context.Context, from, destination string, svc ServiceType) (string, error) {
	resp, err := invoke(ctx, b.ep, "GetRoute", func(ctx context.Context) (*downstreamv1.GetRouteResponse, error) {
		return b.rpc.GetRoute(ctx, &downstreamv1.GetRouteRequest{FromSiteId: from, DestinationSiteId: destination, ServiceType: serviceTypePB(svc)})
	})
	if err != nil {
		return "", err
	}
	return resp.GetNextHopSiteId(), nil
}

// GetRouteV2 is GetRoute on the newer routing table.
func (b *Basic) GetRouteV2(ctx context.Context, from, destination string, svc ServiceType) (string, error) {
	return cached(b.routeCache, routeKey{true, from, destination, svc}, func() (string, error) {
		return b.getRouteV2(ctx, from, destination, svc)
	})
}

func (b *Basic) getRouteV2(ctx context.Context, from, destination string, svc ServiceType) (string, error) {
	resp, err := invoke(ctx, b.ep, "GetRouteV2", func(ctx context.Context) (*downstreamv1.GetRouteV2Response, error) {
		return b.rpc.GetRouteV2(ctx, &downstreamv1.GetRouteV2Request{FromSiteId: from, DestinationSiteId: destination, ServiceType: serviceTypePB(svc)})
	})
	if err != nil {
		return "", err
	}
	return resp.GetNextHopSiteId(), nil
}

// CheckServiceArea tells whether a destination serves a service type.
func (b *Basic) CheckServiceArea(ctx context.Context, destination string, svc ServiceType) (ServiceArea, error) {
	return cached(b.areaCache, areaKey{destination, svc}, func() (ServiceArea, error) {
		return b.checkServiceArea(ctx, destination, svc)
	})
}

func (b *Basic) checkServiceArea(ctx context.Context, destination string, svc ServiceType) (ServiceArea, error) {
	resp, err := invoke(ctx, b.ep, "CheckServiceArea", func(ctx context.Context) (*downstreamv1.CheckServiceAreaResponse, error) {
		return b.rpc.CheckServiceArea(ctx, &downstreamv1.CheckServiceAreaRequest{DestinationSiteId: destination, ServiceType: serviceTypePB(svc)})
	})
	if err != nil {
		return ServiceArea{}, err
	}
	return ServiceArea{Served: resp.GetServed(), Reason: resp.GetReason()}, nil
}

// GetLaneRestrictions lists the goods categories not allowed on a lane.
func (b *Basic) GetLaneRestrictions(ctx context.Context, from, destination string) (LaneRestrictions, error) {
	return cached(b.laneCache, laneKey{from, destination}, func() (LaneRestrictions, error) {
		return b.getLaneRestrictions(ctx, from, destination)
	})
}

func (b *Basic) getLaneRestrictions(ctx context.Context, from, destination string) (LaneRestrictions, error) {
	resp, err := invoke(ctx, b.ep, "GetLaneRestrictions", func(ctx context.Context) (*downstreamv1.GetLaneRestrictionsResponse, error) {
		return b.rpc.GetLaneRestrictions(ctx, &downstreamv1.GetLaneRestrictionsRequest{FromSiteId: from, DestinationSiteId: destination})
	})
	if err != nil {
		return LaneRestrictions{}, err
	}
	out := LaneRestrictions{Restricted: make([]GoodsCategory, 0, len(resp.GetRestrictedCategories()))}
	for _, c := range resp.GetRestrictedCategories() {
		out.Restricted = append(out.Restricted, GoodsCategory(enumString("GOODS_CATEGORY_", c.String(), int32(c))))
	}
	return out, nil
}
