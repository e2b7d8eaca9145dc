package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Site types as the simulator's fixtures name them (the lower-case form of
// the proto enum, the same strings the clients package uses).
const (
	SiteHub        = "hub"
	SiteFirstMile  = "first_mile"
	SiteLastMile   = "last_mile"
	SiteThirdParty = "third_party"
)

// Children of every hub: last-mile, first-mile and third-party sites.
const (
	lastMilePerHub   = 5
	firstMilePerHub  = 2
	thirdPartyPerHub = 1
)

// market is the fixed shape of one market; only names depend on the seed.
type market struct {
	code     string
	currency string
	hubs     int
	// codLimit is a last-mile site's cash-on-delivery limit in minor units.
	codLimit int64
	places   []string
}

// markets is the network the simulator plays. Its shape (which sites exist,
// their parents, which are inactive, the routes) never depends on the seed,
// so tests and demos can name parcels and sites without a simulator at hand.
var markets = []market{
	{"SG", "SGD", 3, 50_000, []string{"Tampines", "Jurong", "Woodlands", "Changi", "Bedok", "Yishun", "Punggol", "Clementi", "Tuas", "Serangoon"}},
	{"MY", "MYR", 4, 150_000, []string{"Shah Alam", "Petaling", "Klang", "Johor Bahru", "Penang", "Ipoh", "Kuantan", "Melaka", "Seremban", "Kuching"}},
	{"TH", "THB", 4, 1_000_000, []string{"Bang Na", "Lat Krabang", "Chiang Mai", "Khon Kaen", "Hat Yai", "Nonthaburi", "Pattaya", "Rayong", "Udon", "Phuket"}},
	{"ID", "IDR", 5, 500_000_000, []string{"Cakung", "Cikarang", "Bekasi", "Tangerang", "Surabaya", "Bandung", "Medan", "Semarang", "Makassar", "Depok"}},
	{"VN", "VND", 4, 10_000_000, []string{"Thu Duc", "Binh Duong", "Long Bien", "Da Nang", "Can Tho", "Hai Phong", "Bien Hoa", "Nha Trang", "Hue", "Vung Tau"}},
	{"PH", "PHP", 4, 2_500_000, []string{"Pasig", "Taguig", "Caloocan", "Cebu", "Davao", "Laguna", "Cavite", "Pampanga", "Iloilo", "Bacolod"}},
	{"BR", "BRL", 5, 200_000, []string{"Cajamar", "Guarulhos", "Barueri", "Contagem", "Curitiba", "Recife", "Salvador", "Campinas", "Manaus", "Goiania"}},
}

func marketByCode(code string) (market, bool) {
	for _, m := range markets {
		if m.code == code {
			return m, true
		}
	}
	return market{}, false
}

// Markets lists the market codes the simulator knows, in a fixed order.
func Markets() []string {
	out := make([]string, len(markets))
	for i, m := range markets {
		out[i] = m.code
	}
	return out
}

// Site is one site of the fixture network.
type Site struct {
	ID     string
	Name   string
	Market string
	Type   string // SiteHub, SiteFirstMile, SiteLastMile, SiteThirdParty
	Active bool
	// ParentHub is the hub a non-hub site hangs off; empty for hubs.
	ParentHub string
}

// Fixtures is the simulator's deterministic world: sites, routes, trips and
// parcels. Equal seeds give equal fixtures. It is immutable once built and
// safe for concurrent use.
type Fixtures struct {
	seed     int64
	sites    map[string]Site
	order    []string
	byMarket map[string][]string
	children map[string][]string // hub id -> child ids, in id order
}

// NewFixtures builds the fixtures for a seed.
func NewFixtures(seed int64) *Fixtures {
	f := &Fixtures{
		seed:     seed,
		sites:    make(map[string]Site),
		byMarket: make(map[string][]string),
		children: make(map[string][]string),
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5157e5))
	for _, m := range markets {
		name := func(kind string, n int) string {
			return fmt.Sprintf("%s %s %02d", m.places[rng.IntN(len(m.places))], kind, n)
		}
		for h := 1; h <= m.hubs; h++ {
			f.add(Site{ID: siteID(m.code, 'H', h), Name: name("Hub", h), Market: m.code, Type: SiteHub, Active: true})
		}
		for h := 1; h <= m.hubs; h++ {
			hub := siteID(m.code, 'H', h)
			for i := 1; i <= lastMilePerHub; i++ {
				n := (h-1)*lastMilePerHub + i
				f.add(Site{ID: siteID(m.code, 'L', n), Name: name("Last-Mile", n), Market: m.code, Type: SiteLastMile,
					Active: n != inactiveLastMile(m), ParentHub: hub})
			}
			for i := 1; i <= firstMilePerHub; i++ {
				n := (h-1)*firstMilePerHub + i
				f.add(Site{ID: siteID(m.code, 'F', n), Name: name("First-Mile", n), Market: m.code, Type: SiteFirstMile, Active: true, ParentHub: hub})
			}
			for i := 1; i <= thirdPartyPerHub; i++ {
				n := (h-1)*thirdPartyPerHub + i
				f.add(Site{ID: siteID(m.code, 'T', n), Name: name("Partner", n), Market: m.code, Type: SiteThirdParty, Active: true, ParentHub: hub})
			}
		}
	}
	for _, ids := range f.children {
		slices.Sort(ids)
	}
	return f
}

func (f *Fixtures) add(s Site) {
	f.sites[s.ID] = s
	f.order = append(f.order, s.ID)
	f.byMarket[s.Market] = append(f.byMarket[s.Market], s.ID)
	if s.ParentHub != "" {
		f.children[s.ParentHub] = append(f.children[s.ParentHub], s.ID)
	}
}

// Seed is the seed the fixtures were built from.
func (f *Fixtures) Seed() int64 { return f.seed }

// Site returns one site by id (case-insensitive).
func (f *Fixtures) Site(id string) (Site, bool) {
	s, ok := f.sites[normalizeID(id)]
	return s, ok
}

// Sites returns the sites of a market (all markets when market is empty),
// hubs first, in a fixed order.
func (f *Fixtures) Sites(market string) []Site {
	ids := f.order
	if market != "" {
		ids = f.byMarket[strings.ToUpper(market)]
	}
	out := make([]Site, len(ids))
	for i, id := range ids {
		out[i] = f.sites[id]
	}
	return out
}

// Children returns the sites that hang off a hub, in id order.
func (f *Fixtures) Children(hubID string) []Site {
	ids := f.children[normalizeID(hubID)]
	out := make([]Site, len(ids))
	for i, id := range ids {
		out[i] = f.sites[id]
	}
	return out
}

// Route is the V1 routing table: the next hop from a site towards a
// destination, false when there is no route (unknown site or another market).
//
// From a hub, the next hop is the destination itself when the destination
// hangs off this hub, else the destination's hub. From any other site it is
// the site's parent hub. A site routes to itself as its own next hop.
func (f *Fixtures) Route(from, dest string) (string, bool) { return f.route(from, dest, false) }

// RouteV2 is the newer routing table. It equals Route except that in every
// market the fifth last-mile site (<M>-L05, normally under <M>-H01) is
// re-homed to <M>-H02: lanes towards or out of it differ from V1.
func (f *Fixtures) RouteV2(from, dest string) (string, bool) { return f.route(from, dest, true) }

// RehomedV2 is the site whose home hub differs in RouteV2, per market.
func RehomedV2(market string) (site, hubV1, hubV2 string) {
	m := strings.ToUpper(market)
	return siteID(m, 'L', lastMilePerHub), siteID(m, 'H', 1), siteID(m, 'H', 2)
}

func (f *Fixtures) route(from, dest string, v2 bool) (string, bool) {
	fs, ok1 := f.Site(from)
	ds, ok2 := f.Site(dest)
	if !ok1 || !ok2 || fs.Market != ds.Market {
		return "", false
	}
	if fs.ID == ds.ID {
		return ds.ID, true
	}
	if fs.Type != SiteHub {
		return f.home(fs, v2), true
	}
	if h := f.home(ds, v2); h != fs.ID {
		return h, true
	}
	return ds.ID, true
}

// home is the hub a site is served from: itself for a hub, else its parent.
func (f *Fixtures) home(s Site, v2 bool) string {
	if s.Type == SiteHub {
		return s.ID
	}
	if v2 {
		if re, _, hub2 := RehomedV2(s.Market); s.ID == re {
			return hub2
		}
	}
	return s.ParentHub
}

// Path is the sequence of sites a parcel visits from origin to destination
// under V1 routing, both ends included; nil when there is no route.
func (f *Fixtures) Path(origin, dest string) []string {
	cur := normalizeID(origin)
	path := []string{cur}
	for range 8 {
		next, ok := f.Route(cur, dest)
		if !ok {
			return nil
		}
		if next == cur {
			return path
		}
		path = append(path, next)
		cur = next
	}
	return nil
}

// Via reports whether a parcel from origin to dest passes stationID (either
// end included) under V1 routing.
func (f *Fixtures) Via(origin, dest, stationID string) bool {
	return slices.Contains(f.Path(origin, dest), normalizeID(stationID))
}

// ServiceArea tells whether a destination serves a service type, and why not.
func (f *Fixtures) ServiceArea(dest, serviceType string) (served bool, reason string, ok bool) {
	s, found := f.Site(dest)
	if !found {
		return false, "", false
	}
	switch {
	case !s.Active:
		return false, "destination site is inactive", true
	case s.Type == SiteHub || s.Type == SiteFirstMile:
		return false, "site does not deliver to receivers", true
	case s.Type == SiteThirdParty && serviceType == ServiceExpress:
		return false, "partner carriers do not offer express", true
	}
	return true, "", true
}

// LaneRestrictions lists the goods categories not allowed between two sites
// of one market: batteries, liquids and dangerous goods on every lane.
func (f *Fixtures) LaneRestrictions(from, dest string) ([]string, bool) {
	fs, ok1 := f.Site(from)
	ds, ok2 := f.Site(dest)
	if !ok1 || !ok2 || fs.Market != ds.Market {
		return nil, false
	}
	return []string{GoodsBattery, GoodsLiquid, GoodsDangerous}, true
}

// CODLimit is the cash a site may collect on delivery, in minor units of its
// market's currency: the market's limit, halved for partner carriers.
func (f *Fixtures) CODLimit(siteID string) (limit int64, currency string, ok bool) {
	s, found := f.Site(siteID)
	if !found {
		return 0, "", false
	}
	m, _ := marketByCode(s.Market)
	limit = m.codLimit
	if s.Type == SiteThirdParty {
		limit /= 2
	}
	return limit, m.currency, true
}

func siteID(marketCode string, kind byte, n int) string {
	return fmt.Sprintf("%s-%c%02d", marketCode, kind, n)
}

// inactiveLastMile is the one inactive site per market: its last last-mile
// site (SG-L15, MY-L20, ...), under the market's last hub.
func inactiveLastMile(m market) int { return m.hubs * lastMilePerHub }

// InactiveSite returns the inactive site of a market.
func InactiveSite(market string) string {
	m, ok := marketByCode(strings.ToUpper(market))
	if !ok {
		return ""
	}
	return siteID(m.code, 'L', inactiveLastMile(m))
}

func normalizeID(id string) string { return strings.ToUpper(strings.TrimSpace(id)) }
