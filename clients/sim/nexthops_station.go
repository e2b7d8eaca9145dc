package sim

import "sort"

// NextHops lists every site a parcel can leave station for, under either
// routing table: what the station's chute map must cover.
func (f *Fixtures) NextHops(station string) []string {
	site, ok := f.Site(station)
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	for _, dest := range f.Sites(site.Market) {
		for _, route := range []func(string, string) (string, bool){f.Route, f.RouteV2} {
			if hop, ok := route(station, dest.ID); ok && hop != station {
				seen[hop] = true
			}
		}
	}
	hops := make([]string, 0, len(seen))
	for h := range seen {
		hops = append(hops, h)
	}
	sort.Strings(hops)
	return hops
}
