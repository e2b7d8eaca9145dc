package floor_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/floor"
	"github.com/expresshub/station/station/stationtest"
)

// TestABindThatFillsTheBagLeavesTheChuteFull: a bag bound under a chute
// takes the parcels waiting there; when that alone brings it to a limit,
// the chute must stay full for the belt (Resolve sends the hop elsewhere),
// not be cleared as ready while the floor says "seal now", or the machine
// drops one more parcel into a bag already over its limit.
func TestABindThatFillsTheBagLeavesTheChuteFull(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	const station = "SG-H01"
	sup := st.Login("sup1")
	st.Do("PUT", "/api/v1/stations/"+station+"/bag-limits", sup, map[string]int{"max_parcels": 1, "max_grams": 25000}, http.StatusOK, nil)

	const tn = "SG1000000001"
	st.Do("POST", "/api/v1/receive", sup, map[string]string{"tracking_no": tn, "scan_id": "bind-full-r"}, http.StatusOK, nil)
	var sorted struct {
		Chute   int    `json:"chute"`
		NextHop string `json:"next_hop"`
	}
	st.Do("POST", "/api/v1/sort", sup, map[string]string{"tracking_no": tn, "scan_id": "bind-full-s"}, http.StatusOK, &sorted)
	if sorted.Chute == 0 || sorted.NextHop == "" {
		t.Fatalf("sorted to %+v", sorted)
	}
	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": sorted.NextHop, "scan_id": "bind-full-open"}, http.StatusCreated, &bag)
	var bound packing.ChuteBinding
	st.Do("PUT", "/api/v1/stations/"+station+"/chutes/"+strconv.Itoa(sorted.Chute)+"/bag", sup,
		map[string]string{"bag_id": bag.ID, "scan_id": "bind-full-bind"}, http.StatusOK, &bound)
	if len(bound.Added) != 1 || bound.Fill.Level != packing.FillSealNow {
		t.Fatalf("bind: added %v, fill %+v", bound.Added, bound.Fill)
	}

	var v floor.View
	st.Do("GET", "/api/v1/stations/"+station+"/floor", sup, nil, http.StatusOK, &v)
	c := chuteOf(v, sorted.Chute)
	if c.Status != floor.StatusSealNow || c.State == nil || !c.State.Full {
		t.Fatalf("chute %d after a bind that filled its bag: status %s, state %+v", sorted.Chute, c.Status, c.State)
	}
}

// TestOnlyANextHopsChuteCanBeDisabled: Resolve sends exceptions, overflow
// and rejects to their chutes whatever their state, so disabling one would
// show "disabled" on the floor while parcels keep dropping in. It is
// refused; a next hop's chute is disabled and enabled as before.
func TestOnlyANextHopsChuteCanBeDisabled(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	const station = "SG-H01"
	sup := st.Login("sup1")
	var v floor.View
	st.Do("GET", "/api/v1/stations/"+station+"/floor", sup, nil, http.StatusOK, &v)
	var hopChute int
	for _, c := range v.Chutes {
		state := "/api/v1/stations/" + station + "/chutes/" + strconv.Itoa(c.Chute) + "/state"
		if c.Kind == sorting.ChuteNextHop {
			hopChute = c.Chute
			continue
		}
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		st.Do("PUT", state, sup, map[string]bool{"disabled": true}, http.StatusBadRequest, &e)
		if e.Error.Code != "not_a_next_hop_chute" {
			t.Fatalf("disabling the %s chute %d: %q", c.Kind, c.Chute, e.Error.Code)
		}
		st.Do("PUT", state, sup, map[string]bool{"disabled": false}, http.StatusOK, nil)
	}
	if hopChute == 0 {
		t.Fatal("no next hop chute on the floor")
	}
	// A chute the map does not have is the same mistake, not a sorter's bad
	// event.
	unknown := 0
	for _, c := range v.Chutes {
		unknown = max(unknown, c.Chute+1)
	}
	for _, disabled := range []bool{true, false} {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		st.Do("PUT", "/api/v1/stations/"+station+"/chutes/"+strconv.Itoa(unknown)+"/state", sup, map[string]bool{"disabled": disabled}, http.StatusBadRequest, &e)
		if e.Error.Code != "not_a_next_hop_chute" {
			t.Fatalf("disabled=%v on chute %d, not on the map: %q", disabled, unknown, e.Error.Code)
		}
	}
	state := "/api/v1/stations/" + station + "/chutes/" + strconv.Itoa(hopChute) + "/state"
	st.Do("PUT", state, sup, map[string]bool{"disabled": true}, http.StatusOK, nil)
	st.Do("GET", "/api/v1/stations/"+station+"/floor", sup, nil, http.StatusOK, &v)
	if c := chuteOf(v, hopChute); c.Status != floor.StatusDisabled {
		t.Fatalf("the disabled next hop chute shows %s", c.Status)
	}
}

// TestAChuteFollowsItsBagWhenTheLimitsOrItsContentsChange: a supervisor
// who raises the bag limits, or takes a parcel out of the bag, frees a
// chute its bag had filled: it must not stay full (the belt sending its hop
// to overflow, the floor saying "full" under a bag with room). Lowering the
// limits under a bag's contents makes its chute full.
func TestAChuteFollowsItsBagWhenTheLimitsOrItsContentsChange(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	const station = "SG-H01"
	sup := st.Login("sup1")
	limits := func(n int) {
		st.Do("PUT", "/api/v1/stations/"+station+"/bag-limits", sup, map[string]int{"max_parcels": n, "max_grams": 1_000_000}, http.StatusOK, nil)
	}
	chute := func(n int) floor.Chute {
		var v floor.View
		st.Do("GET", "/api/v1/stations/"+station+"/floor", sup, nil, http.StatusOK, &v)
		return chuteOf(v, n)
	}
	limits(1)
	const tn = "SG1000000001"
	st.Do("POST", "/api/v1/receive", sup, map[string]string{"tracking_no": tn, "scan_id": "refit-r"}, http.StatusOK, nil)
	var sorted struct {
		Chute   int    `json:"chute"`
		NextHop string `json:"next_hop"`
	}
	st.Do("POST", "/api/v1/sort", sup, map[string]string{"tracking_no": tn, "scan_id": "refit-s"}, http.StatusOK, &sorted)
	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", sup, map[string]string{"next_hop": sorted.NextHop, "scan_id": "refit-open"}, http.StatusCreated, &bag)
	st.Do("PUT", "/api/v1/stations/"+station+"/chutes/"+strconv.Itoa(sorted.Chute)+"/bag", sup,
		map[string]string{"bag_id": bag.ID, "scan_id": "refit-bind"}, http.StatusOK, nil)
	if c := chute(sorted.Chute); c.State == nil || !c.State.Full {
		t.Fatalf("a bag at its limit: chute %+v", c.State)
	}

	limits(5)
	if c := chute(sorted.Chute); c.Status != floor.StatusReady || c.State == nil || c.State.Full {
		t.Fatalf("limits raised over the bag: status %s, state %+v", c.Status, c.State)
	}
	limits(1)
	if c := chute(sorted.Chute); c.State == nil || !c.State.Full {
		t.Fatalf("limits lowered to the bag: state %+v", c.State)
	}
	st.Do("DELETE", "/api/v1/bags/"+bag.ID+"/items/"+tn+"?scan_id=refit-remove", sup, nil, http.StatusOK, nil)
	if c := chute(sorted.Chute); c.State == nil || c.State.Full {
		t.Fatalf("its parcel taken out: status %s, state %+v", c.Status, c.State)
	}
}
