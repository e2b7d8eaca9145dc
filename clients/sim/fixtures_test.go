package sim

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestFixturesAreDeterministicPerSeed(t *testing.T) {
	a, b, other := NewFixtures(7), NewFixtures(7), NewFixtures(8)
	if !reflect.DeepEqual(a.Sites(""), b.Sites("")) {
		t.Fatal("same seed gave different sites")
	}
	if reflect.DeepEqual(a.Sites(""), other.Sites("")) {
		t.Fatal("different seeds gave identical site names")
	}
	for _, k := range Kinds() {
		no := TrackingNo("BR", k, 3)
		pa, errA := a.Parcel(no)
		pb, errB := b.Parcel(no)
		po, errO := other.Parcel(no)
		if !reflect.DeepEqual(pa, pb) || (errA == nil) != (errB == nil) {
			t.Fatalf("%s: same seed gave %+v and %+v", no, pa, pb)
		}
		// The fate must not depend on the seed.
		if errA == nil && (errO != nil || pa.Kind != po.Kind || pa.Origin != po.Origin || pa.Destination != po.Destination ||
			pa.Status != po.Status || pa.Delivery != po.Delivery || pa.Billing != po.Billing || pa.ServiceType != po.ServiceType) {
			t.Fatalf("%s: fate changed with the seed: %+v vs %+v", no, pa, po)
		}
	}
}

func TestNetworkShape(t *testing.T) {
	f := NewFixtures(DefaultSeed)
	all := f.Sites("")
	if len(all) < 200 {
		t.Fatalf("want 200+ sites, got %d", len(all))
	}
	if len(Markets()) != 7 {
		t.Fatalf("want 7 markets, got %v", Markets())
	}
	inactive := 0
	for _, s := range all {
		if !s.Active {
			inactive++
		}
		if s.Type == SiteHub {
			if s.ParentHub != "" {
				t.Fatalf("hub %s has a parent", s.ID)
			}
			continue
		}
		p, ok := f.Site(s.ParentHub)
		if !ok || p.Type != SiteHub || p.Market != s.Market {
			t.Fatalf("%s: parent %q is not a hub of its market", s.ID, s.ParentHub)
		}
	}
	if inactive != len(Markets()) {
		t.Fatalf("want one inactive site per market, got %d", inactive)
	}
	for id, typ := range map[string]string{"SG-H01": SiteHub, "SG-L07": SiteLastMile, "SG-F03": SiteFirstMile, "SG-T02": SiteThirdParty} {
		if s, ok := f.Site(strings.ToLower(id)); !ok || s.Type != typ {
			t.Fatalf("%s: got %+v", id, s)
		}
	}
}

func TestRoutesFollowTheHubRule(t *testing.T) {
	f := NewFixtures(DefaultSeed)
	cases := []struct{ from, dest, want string }{
		{"SG-H01", "SG-L03", "SG-L03"}, // own child
		{"SG-H01", "SG-L07", "SG-H02"}, // another hub's child
		{"SG-H02", "SG-L07", "SG-L07"},
		{"SG-F03", "SG-L01", "SG-H02"}, // non-hub: parent hub
		{"SG-L07", "SG-L07", "SG-L07"},
	}
	for _, c := range cases {
		if got, ok := f.Route(c.from, c.dest); !ok || got != c.want {
			t.Errorf("Route(%s, %s) = %q, %v; want %q", c.from, c.dest, got, ok, c.want)
		}
	}
	if _, ok := f.Route("SG-H01", "MY-L01"); ok {
		t.Error("a route across markets exists")
	}
	if got := f.Path("SG-F03", "SG-L12"); !reflect.DeepEqual(got, []string{"SG-F03", "SG-H02", "SG-H03", "SG-L12"}) {
		t.Errorf("Path = %v", got)
	}
}

func TestRouteV2DiffersOnlyForTheRehomedSite(t *testing.T) {
	f := NewFixtures(DefaultSeed)
	differ := 0
	for _, m := range Markets() {
		re, _, hub2 := RehomedV2(m)
		for _, from := range f.Sites(m) {
			for _, dest := range f.Sites(m) {
				v1, _ := f.Route(from.ID, dest.ID)
				v2, _ := f.RouteV2(from.ID, dest.ID)
				if v1 == v2 {
					continue
				}
				differ++
				if from.ID != re && dest.ID != re {
					t.Fatalf("%s->%s differs (%s vs %s) but touches no re-homed site", from.ID, dest.ID, v1, v2)
				}
			}
		}
		if got, _ := f.RouteV2("SG-H01", "SG-L05"); m == "SG" && got != hub2 {
			t.Fatalf("V2 SG-H01->SG-L05 = %s, want %s", got, hub2)
		}
	}
	if differ == 0 {
		t.Fatal("V2 equals V1 everywhere")
	}
}

func TestKindsOccurAtTheirDocumentedRates(t *testing.T) {
	f := NewFixtures(DefaultSeed)
	counts := map[Kind]int{}
	for i := range 1000 {
		no := "SG" + itoa(5_000_000_000+i)
		k, err := KindOf(no)
		if err != nil {
			t.Fatal(err)
		}
		counts[k]++
		p, err := f.Parcel(no)
		if k == Unknown {
			if !errors.Is(err, ErrUnknown) {
				t.Fatalf("%s: unknown kind resolved: %v", no, err)
			}
			continue
		}
		if err != nil || p.Kind != k {
			t.Fatalf("%s: %v %+v", no, err, p)
		}
	}
	if counts[Normal] != 600 || counts[Unknown] != 40 || counts[Cancelled] != 30 || counts[Elsewhere] != 30 {
		t.Fatalf("rates: %v", counts)
	}
}

func TestGeneratorsGiveTheAskedKind(t *testing.T) {
	f := NewFixtures(DefaultSeed)
	for _, m := range Markets() {
		for _, k := range Kinds() {
			for i := range 5 {
				no := TrackingNo(m, k, i)
				if got, err := KindOf(no); err != nil || got != k {
					t.Fatalf("TrackingNo(%s, %s, %d) = %s of kind %v (%v)", m, k, i, no, got, err)
				}
				p, err := f.Parcel(no)
				if k == Unknown {
					if !errors.Is(err, ErrUnknown) {
						t.Fatalf("%s: want ErrUnknown, got %v", no, err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				checkParcel(t, f, p)
			}
		}
	}
	if TrackingNo("SG", Normal, 0) == TrackingNo("SG", Normal, 1) {
		t.Fatal("generator repeats")
	}
}

// checkParcel asserts what each kind promises to the sorting flows.
func checkParcel(t *testing.T, f *Fixtures, p Parcel) {
	t.Helper()
	dest, _ := f.Site(p.Destination)
	served, _, _ := f.ServiceArea(p.Destination, p.ServiceType)
	restricted, _ := f.LaneRestrictions(p.Origin, p.Destination)
	limit, _, _ := f.CODLimit(p.Destination)
	isRestricted := false
	for _, c := range restricted {
		isRestricted = isRestricted || c == p.Goods
	}
	fail := func(what string) { t.Fatalf("%s (%s): %s: %+v", p.TrackingNo, p.Kind, what, p) }
	if (p.Kind == InactiveDestination) == dest.Active {
		fail("destination activity")
	}
	if (p.Kind == Unserved || p.Kind == InactiveDestination) == served {
		fail("service area")
	}
	if (p.Kind == Restricted) != isRestricted {
		fail("lane restriction")
	}
	if (p.Kind == COD || p.Kind == CODOverLimit) != (p.CODAmount > 0) {
		fail("COD amount")
	}
	if (p.Kind == CODOverLimit) != (p.CODAmount > limit) {
		fail("COD limit")
	}
	if (p.Kind == Unpaid) != (p.Billing == BillingUnpaid) {
		fail("billing")
	}
	if (p.Kind == Cancelled || p.Kind == Intercepted || p.Kind == OutForDelivery || p.Kind == Returning) != (p.Delivery != DeliveryNone) {
		fail("delivery status")
	}
	if (p.Kind == BadAddress) == p.AddressValid {
		fail("address")
	}
	blocked, err := CustomerBlocked(p.CustomerID)
	if err != nil || (p.Kind == BlockedCustomer) != blocked {
		fail("customer")
	}
	if p.Market == "BR" && (p.Kind == NoFiscalDoc) == p.FiscalPresent {
		fail("fiscal document")
	}
	if p.Market != "BR" && p.FiscalRequired {
		fail("fiscal document outside BR")
	}
	if len(f.Path(p.Origin, p.Destination)) < 2 {
		fail("no route")
	}
	if p.Kind == Elsewhere && f.Via(p.Origin, p.Destination, p.Market+"-H01") {
		fail("Elsewhere passes hub 1")
	}
}

func TestMostSGParcelsPassTheDemoStation(t *testing.T) {
	f := NewFixtures(DefaultSeed)
	via := 0
	const n = 600
	for i := range n {
		p, err := f.Parcel(TrackingNo("SG", Normal, i))
		if err != nil {
			t.Fatal(err)
		}
		if f.Via(p.Origin, p.Destination, "SG-H01") {
			via++
		}
	}
	if via*2 < n {
		t.Fatalf("only %d of %d normal SG parcels pass SG-H01", via, n)
	}
	t.Logf("%d of %d normal SG parcels pass SG-H01", via, n)
}

func TestViaAndWrongStation(t *testing.T) {
	f := NewFixtures(DefaultSeed)
	for _, st := range []string{"SG-H01", "SG-H02", "BR-H04", "MY-L07"} {
		for i := range 3 {
			v := f.ViaStation(st, i)
			w := f.WrongStation(st, i)
			if v == "" || w == "" || v == w {
				t.Fatalf("%s #%d: via %q wrong %q", st, i, v, w)
			}
			pv, _ := f.Parcel(v)
			pw, _ := f.Parcel(w)
			if !f.Via(pv.Origin, pv.Destination, st) || f.Via(pw.Origin, pw.Destination, st) {
				t.Fatalf("%s: via %+v wrong %+v", st, pv, pw)
			}
		}
	}
	// The package-level helpers answer for every seed.
	if ViaStation("SG-H01", 1) != f.ViaStation("SG-H01", 1) || WrongStation("SG-H01", 1) != f.WrongStation("SG-H01", 1) {
		t.Fatal("package-level generators disagree with the fixtures")
	}
	if f.ViaStation("SG-L15", 0) != "" {
		t.Fatal("a normal parcel goes to the inactive site")
	}
}

func TestMalformedInput(t *testing.T) {
	f := NewFixtures(DefaultSeed)
	for _, no := range []string{"", "SG123", "S11000000000", "SG10000000000000000000", "SG10000x0000", "SG+100000000"} {
		if _, err := f.Parcel(no); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: want ErrMalformed, got %v", no, err)
		}
	}
	if _, err := f.Parcel("XX1000000000"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown market: %v", err)
	}
	if p, err := f.Parcel(" sg1000000001 "); err != nil || p.TrackingNo != "SG1000000001" {
		t.Errorf("normalisation: %v %+v", err, p)
	}
}

func TestTrips(t *testing.T) {
	f := NewFixtures(DefaultSeed)
	for _, next := range []string{"SG-H02", "SG-L03", "SG-T01"} {
		id := f.TripTo("SG-H01", next)
		if id == "" {
			t.Fatalf("no trip from SG-H01 to %s", next)
		}
		tr, err := f.Trip(id, f.sitesDay())
		if err != nil || tr.Origin != "SG-H01" || len(tr.Stops) == 0 {
			t.Fatalf("%s: %v %+v", id, err, tr)
		}
	}
	if _, err := f.Trip("TR-SG-H01-00x1", f.sitesDay()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed trip id: %v", err)
	}
	if _, err := f.Trip("TR-SG-H09-0001", f.sitesDay()); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown trip origin: %v", err)
	}
}
