package reliability

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/stationtest"
)

// world is a station under test (in process, logs observed) with objects
// at two stations, made through the API the way terminals make them:
// station A is SG-H01 (op1, sup1, ops1), station B is VN-H01 (opB, supB),
// another market, so no parcel of B's passes A.
type world struct {
	*stationtest.Station
	op1, sup1, ops1, opB, supB string // tokens

	// Station A's objects.
	parcelA      string // received and sorted at A, in bagOpenA
	parcelA2     string // received and sorted at A, not bagged
	bagOpenA     packing.Bag
	bagSealedA   packing.Bag // on handoverA
	bagSealedA2  packing.Bag // on no handover
	handoverA    packing.Handover
	chuteVersion int

	// Station B's objects.
	bagSealedB packing.Bag
	handoverB  packing.Handover

	seq atomic.Int64
}

const stationB = "VN-H01"

// newWorld starts a station with the operators; objects says whether to
// make the bags and handovers too (a few seconds of requests).
func newWorld(t testing.TB, objects bool) *world {
	t.Helper()
	st := stationtest.Start(t, stationtest.Options{})
	ctx := context.Background()
	for _, op := range []auth.Operator{
		{ID: "opB", StationID: stationB, Role: auth.RoleOperator},
		{ID: "supB", StationID: stationB, Role: auth.RoleSupervisor},
	} {
		if err := st.App.Auth().AddOperator(ctx, op, stationtest.Password); err != nil {
			t.Fatal(err)
		}
	}
	w := &world{Station: st}
	w.op1, w.sup1, w.ops1 = st.Login("op1"), st.Login("sup1"), st.Login("ops1")
	w.opB, w.supB = st.Login("opB"), st.Login("supB")
	if !objects {
		return w
	}
	fx := st.Sim.Fixtures()

	// parcelA2 goes where parcelA goes, so it fits in bagOpenA.
	a := viaParcels(t, fx, "SG-H01", 40)
	byHop := map[string][]string{}
	for _, tn := range a {
		p, err := fx.Parcel(tn)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := fx.Route("SG-H01", p.Destination)
		byHop[h] = append(byHop[h], tn)
	}
	for _, tns := range byHop {
		if len(tns) >= 2 && w.parcelA == "" {
			w.parcelA, w.parcelA2 = tns[0], tns[1]
		}
	}
	if w.parcelA == "" {
		t.Fatal("no two parcels with one next hop")
	}
	a = slices.DeleteFunc(a, func(tn string) bool { return tn == w.parcelA || tn == w.parcelA2 })
	w.bagOpenA = w.bagWith(w.op1, w.parcelA, false)
	w.bagSealedA = w.bagWith(w.op1, a[0], true)
	w.bagSealedA2 = w.bagWith(w.op1, a[1], true)
	w.receiveAndSort(w.op1, w.parcelA2)
	st.Do("POST", "/api/v1/handovers", w.op1, map[string]any{"type": "lastmile", "rider_id": "R-1", "scan_id": w.scan()}, http.StatusCreated, &w.handoverA)
	st.Do("POST", "/api/v1/handovers/"+w.handoverA.ID+"/bags", w.op1, map[string]any{"bag_id": w.bagSealedA.ID, "scan_id": w.scan()}, http.StatusOK, nil)

	w.bagSealedB = w.bagWith(w.opB, viaParcels(t, fx, stationB, 1)[0], true)
	st.Do("POST", "/api/v1/handovers", w.opB, map[string]any{"type": "lastmile", "rider_id": "R-2", "scan_id": w.scan()}, http.StatusCreated, &w.handoverB)

	var m struct {
		Version int `json:"version"`
	}
	st.Do("GET", "/api/v1/stations/SG-H01/chutes", w.op1, nil, http.StatusOK, &m)
	w.chuteVersion = m.Version
	waitDrained(t, st.App.DB(), 30*time.Second) // the relay must not write while tests compare fingerprints
	return w
}

func (w *world) scan() string { return fmt.Sprintf("w-%d", w.seq.Add(1)) }

// receiveAndSort scans a parcel in and sorts it; it returns the next hop.
func (w *world) receiveAndSort(token, tn string) string {
	w.T.Helper()
	w.Do("POST", "/api/v1/receive", token, map[string]string{"tracking_no": tn, "scan_id": w.scan()}, http.StatusOK, nil)
	var res sorting.Result
	w.Do("POST", "/api/v1/sort", token, map[string]string{"tracking_no": tn, "scan_id": w.scan()}, http.StatusOK, &res)
	if res.NextHop == nil {
		w.T.Fatalf("sort %s: no next hop: %+v", tn, res)
	}
	return *res.NextHop
}

// bagWith sorts tn, opens a bag for its next hop, adds tn and maybe seals.
func (w *world) bagWith(token, tn string, seal bool) packing.Bag {
	w.T.Helper()
	hop := w.receiveAndSort(token, tn)
	var b packing.Bag
	w.Do("POST", "/api/v1/bags", token, map[string]string{"next_hop": hop, "scan_id": w.scan()}, http.StatusCreated, &b)
	w.Do("POST", "/api/v1/bags/"+b.ID+"/items", token, map[string]string{"tracking_no": tn, "scan_id": w.scan()}, http.StatusOK, nil)
	if seal {
		w.Do("POST", "/api/v1/bags/"+b.ID+"/seal", token, map[string]any{"weight_g": 1200, "scan_id": w.scan()}, http.StatusOK, &b)
	}
	return b
}

// relayColumns are the outbox columns the relay updates in the background;
// they say how delivery went, not what was written.
var relayColumns = []string{"status", "attempts", "next_attempt_at", "last_error", "delivered_at"}

// fingerprint hashes every row of every table (but the relay's delivery
// columns), so a comparison before and after a request catches any insert,
// update or delete anywhere, in tables added later too.
func fingerprint(t testing.TB, db *pgxpool.Pool) map[string]string {
	t.Helper()
	ctx := context.Background()
	q, ok := fingerprintQueries.Load(db)
	if !ok {
		q = fingerprintQuery(t, db)
		fingerprintQueries.Store(db, q)
	}
	rows, err := db.Query(ctx, q.(string))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var n, h string
		if err := rows.Scan(&n, &h); err != nil {
			t.Fatal(err)
		}
		out[n] = h
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// fingerprintQueries caches the query per database: the schema does not
// change during a test, and reading the catalog is the slow part.
var fingerprintQueries sync.Map // *pgxpool.Pool -> string

func fingerprintQuery(t testing.TB, db *pgxpool.Pool) string {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT c.table_name::text, c.column_name::text
		FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
		WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
		  -- Bookkeeping no request writes: the schema version, and the
		  -- singleton jobs' leases, which renew on their own clock.
		  AND c.table_name NOT IN ('goose_db_version', 'job_leases')
		  -- A partitioned table is read through its parent, never its days.
		  AND NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
		                  WHERE p.relname = c.table_name AND p.relispartition)
		ORDER BY c.table_name, c.ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	cols := map[string][]string{}
	for rows.Next() {
		var tbl, col string
		if err := rows.Scan(&tbl, &col); err != nil {
			t.Fatal(err)
		}
		if tbl == "tracking_outbox" && slices.Contains(relayColumns, col) {
			continue
		}
		cols[tbl] = append(cols[tbl], fmt.Sprintf("t.%q", col))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	tables := slices.Sorted(maps.Keys(cols))
	parts := make([]string, len(tables))
	for i, n := range tables {
		parts[i] = fmt.Sprintf(`SELECT '%s', md5(coalesce(string_agg(row(%s)::text, '|' ORDER BY row(%[2]s)::text), '')) FROM %[3]q t`,
			n, strings.Join(cols[n], ", "), n)
	}
	return strings.Join(parts, " UNION ALL ")
}

// changedTables lists the tables whose fingerprint differs.
func changedTables(before, after map[string]string) []string {
	var out []string
	for n, h := range after {
		if before[n] != h {
			out = append(out, n)
		}
	}
	for n := range before {
		if _, ok := after[n]; !ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
