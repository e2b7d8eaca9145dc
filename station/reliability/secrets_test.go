package reliability

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/migrations/dbtest"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/sorting"
)

func secret(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// passwordDSN creates a throwaway login role with a password, lets it use
// the test database, and returns the database URL with that password in it.
// The role is dropped at cleanup.
func passwordDSN(t testing.TB, dbURL, password string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	role := fmt.Sprintf("station_secret_%d", time.Now().UnixNano())
	exec := func(dsn string, qs ...string) {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		for _, q := range qs {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", strings.Replace(q, password, "…", 1), err)
			}
		}
	}
	exec(dbtest.ServerURL(), fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, role, password))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// Revoke the grants in the test database (as the server's admin,
		// who may act for any role), then drop the role.
		if su, err := url.Parse(dbtest.ServerURL()); err == nil {
			if db, err := url.Parse(dbURL); err == nil {
				su.Path = db.Path
				if c, err := pgx.Connect(ctx, su.String()); err == nil {
					if _, err := c.Exec(ctx, fmt.Sprintf(`DROP OWNED BY %s`, role)); err != nil {
						t.Errorf("drop owned by %s: %v", role, err)
					}
					c.Close(context.Background())
				}
			}
		}
		c, err := pgx.Connect(ctx, dbtest.ServerURL())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
		if _, err := c.Exec(ctx, fmt.Sprintf(`DROP ROLE IF EXISTS %s`, role)); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	// The database's owner lets the role use it.
	exec(dbURL,
		fmt.Sprintf(`GRANT USAGE, CREATE ON SCHEMA public TO %s`, role),
		fmt.Sprintf(`GRANT ALL ON ALL TABLES IN SCHEMA public TO %s`, role),
		fmt.Sprintf(`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %s`, role))
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, password)
	return u.String()
}

// TestNoSecretInLogs runs a full flow through a `station serve` process at
// debug level (logins, a failed login, scans, a chute map change, packing,
// a sorter's gRPC calls, ops pages, the relay, logout, a graceful stop) and
// then searches everything the station printed for every secret it was
// given or gave out: operator passwords (and a wrong one), bearer tokens,
// the sorter key, the DSN password, the order-center client secret.
func TestNoSecretInLogs(t *testing.T) {
	t.Parallel()
	const station = "SG-H01"
	s := simtest.Start(t, simtest.WithZeroLatency())
	fx := s.Fixtures()
	dbURL := dbtest.URL(t)
	_, prefix := dbtest.Redis(t)
	dsnPassword := secret("dsnpw")
	clientSecret := secret("ocsecret")
	env := serveEnv{DatabaseURL: passwordDSN(t, dbURL, dsnPassword), RedisAddr: dbtest.RedisAddr(), Prefix: prefix,
		DownstreamAddr: s.Addr(), Extra: []string{"STATION_LOG_LEVEL=debug", "STATION_DOWNSTREAM_TOKEN_CLIENT_SECRET=" + clientSecret}}

	passwords := map[string]string{"op1": secret("pw-op1-"), "sup1": secret("pw-sup1-"), "ops1": secret("pw-ops1-")}
	var printed strings.Builder // what the one-shot commands printed
	for id, role := range map[string]string{"op1": "operator", "sup1": "supervisor", "ops1": "ops"} {
		printed.WriteString(runStation(t, append(env.vars(), "STATION_OPERATOR_PASSWORD="+passwords[id]),
			"operator", "add", "--id", id, "--station", station, "--role", role))
	}
	out := runStation(t, env.vars(), "sorter", "add", "--id", "belt-1", "--station", station)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sorterKey := strings.TrimSpace(lines[len(lines)-1])
	if len(sorterKey) < 16 {
		t.Fatalf("no sorter key in %q", out)
	}

	proc := newServe(t, env)
	proc.start()
	c := newClient(t, proc.URL)
	wrongPassword := secret("wrong-pw-")
	c.must(t, "POST", "/api/v1/auth/login", "", map[string]string{"operator_id": "op1", "password": wrongPassword}, http.StatusUnauthorized, nil)
	tokens := map[string]string{}
	for id, pw := range passwords {
		tokens[id] = c.login(t, id, pw)
	}
	op, sup, ops := tokens["op1"], tokens["sup1"], tokens["ops1"]

	// The chute map: first version, then a change with If-Match.
	m := sorting.NumberedChuteMap(fx.NextHops(station))
	c.must(t, "PUT", "/api/v1/stations/"+station+"/chutes", sup, m, http.StatusOK, nil)
	m.ExceptionChute, m.OverflowChute = m.OverflowChute, m.ExceptionChute
	c.must(t, "PUT", "/api/v1/stations/"+station+"/chutes", sup, m, http.StatusOK, nil, "If-Match", `"1"`)

	tns := viaParcels(t, fx, station, 6)
	hops := map[string]string{}
	for i, tn := range tns {
		c.must(t, "POST", "/api/v1/receive", op, map[string]string{"tracking_no": tn, "scan_id": fmt.Sprintf("r%d", i)}, http.StatusOK, nil)
		var res sorting.Result
		c.must(t, "POST", "/api/v1/sort?trace=1", op, map[string]string{"tracking_no": tn, "scan_id": fmt.Sprintf("s%d", i)}, http.StatusOK, &res)
		hops[tn] = *res.NextHop
	}
	var bag struct {
		ID string `json:"bag_id"`
	}
	c.must(t, "POST", "/api/v1/bags", op, map[string]string{"next_hop": hops[tns[0]], "scan_id": "b1"}, http.StatusCreated, &bag)
	c.must(t, "POST", "/api/v1/bags/"+bag.ID+"/items", op, map[string]string{"tracking_no": tns[0], "scan_id": "b2"}, http.StatusOK, nil)
	c.must(t, "POST", "/api/v1/bags/"+bag.ID+"/seal", op, map[string]any{"weight_g": 1000, "scan_id": "b3"}, http.StatusOK, nil)
	c.must(t, "GET", "/api/v1/ops/outbox", ops, nil, http.StatusOK, nil)
	c.must(t, "GET", "/api/v1/me", "", nil, http.StatusUnauthorized, nil)
	c.must(t, "GET", "/api/v1/me", op+"x", nil, http.StatusUnauthorized, nil) // a token that almost matches

	// The sorting machine over gRPC: a good key and a wrong one.
	conn, err := grpc.NewClient(proc.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	belt := stationv1.NewSorterServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := belt.Resolve(metadata.AppendToOutgoingContext(ctx, "x-sorter-key", sorterKey), &stationv1.ResolveRequest{TrackingNo: tns[1]}); err != nil {
		t.Fatalf("resolve with the sorter key: %v", err)
	}
	_, _ = belt.Resolve(metadata.AppendToOutgoingContext(ctx, "x-sorter-key", sorterKey+"x"), &stationv1.ResolveRequest{TrackingNo: tns[1]})

	waitDrained(t, dbtest.PoolFor(t, dbURL), 30*time.Second) // the relay pushed with its order-center token
	c.must(t, "POST", "/api/v1/auth/logout", op, nil, http.StatusNoContent, nil)
	proc.stop()

	logs := proc.logs() + printed.String()
	secrets := map[string]string{
		"DSN password": dsnPassword, "order-center client secret": clientSecret,
		"sorter key": sorterKey, "wrong sorter key": sorterKey + "x", "wrong password": wrongPassword,
	}
	for id, pw := range passwords {
		secrets[id+" password"] = pw
		secrets[id+" token"] = tokens[id]
	}
	for name, v := range secrets {
		if strings.Contains(logs, v) {
			t.Errorf("the %s is in the logs", name)
		}
	}
	// Order-center bearer tokens issued by the simulator look like sim.<hex>.
	if m := regexp.MustCompile(`sim\.[0-9a-f]{32}`).FindString(logs); m != "" {
		t.Errorf("an order-center token is in the logs: %s…", m[:8])
	}
	if !strings.Contains(logs, `"starting"`) || !strings.Contains(logs, "xxxxx@") {
		t.Errorf("no start-up line with the redacted database URL")
	}
	if t.Failed() {
		t.Logf("log lines: %d", strings.Count(logs, "\n"))
	} else {
		report(t, "secrets: %d secrets searched for in %d log lines (debug level): none found", len(secrets)+1, strings.Count(logs, "\n"))
	}
}
