package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/auth"
)

// BenchmarkMemory measures the resident size (VmRSS) of a real `station
// serve` process: built from this tree, started on a fresh database and a
// private Redis prefix, talking to a simulator with the default latency
// profile that runs here, in the benchmark's process, so the figure is the
// station's alone. Idle is read after start-up has settled; loaded is the
// peak while operators drive a mixed load over HTTP (receive, sort, and bags
// opened, filled and sealed with labels, with the tracking relay pushing
// every event) for a bounded time: a 10-minute soak, 3 s with -short, or
// STATION_BENCH_SOAK (a duration) when set. Goals: idle < 80 MiB, loaded <
// 300 MiB, flat over the soak: slope-MiB/min is the least-squares slope of
// the samples of the second half (the first half holds the warm-up: pools,
// caches and the heap finding its size), and growth-MiB the last sample
// minus the one halfway through.
func BenchmarkMemory(b *testing.B) {
	bin := stationBinary(b)
	s := simtest.Start(b, simtest.WithLatency(sim.ProfileDefault))
	dbURL := dbtest.URL(b)
	_, prefix := dbtest.Redis(b)
	seedMemoryStation(b, dbURL, s.Fixtures())

	httpAddr, grpcAddr := freeAddr(b), freeAddr(b)
	env := []string{
		"STATION_DATABASE_URL=" + dbURL,
		"STATION_REDIS_ADDR=" + dbtest.RedisAddr(),
		"STATION_REDIS_PREFIX=" + prefix,
		"STATION_HTTP_ADDR=" + httpAddr,
		"STATION_GRPC_ADDR=" + grpcAddr,
		"STATION_DOWNSTREAM_ADDR=" + s.Addr(),
		"STATION_DOWNSTREAM_TOKEN_KEY_PREFIX=" + prefix,
		"STATION_LOG_LEVEL=warn",
		"STATION_AUTH_REQUESTS_PER_SECOND=10000",
		"STATION_AUTH_LOGIN_PER_MINUTE=1000",
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STATION_") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	base := "http://" + httpAddr
	c := &http.Client{Timeout: 10 * time.Second}
	waitReady(b, c, base, exited, &stderr)
	pid := strconv.Itoa(cmd.Process.Pid)

	loadFor := 10 * time.Minute
	if testing.Short() {
		loadFor = 3 * time.Second
	}
	if v := os.Getenv("STATION_BENCH_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("STATION_BENCH_SOAK: %v", err)
		}
		loadFor = d
	}
	var idle, peak, half, last int64
	var secondHalf []rssSample
	var ops atomic.Int64
	for b.Loop() {
		time.Sleep(2 * time.Second) // start-up settles: first relay pass, token, resync
		var err error
		if idle, err = vmRSS(pid); err != nil {
			b.Fatal(err)
		}
		token := login(b, c, base, "op1")
		ctx, cancel := context.WithTimeout(context.Background(), loadFor)
		var wg sync.WaitGroup
		wg.Go(func() { mixedLoad(ctx, b, c, base, token, s.Fixtures(), &ops) })
		start := time.Now()
		for ctx.Err() == nil {
			rss, err := vmRSS(pid)
			if err != nil {
				b.Fatal(err)
			}
			peak, last = max(peak, rss), rss
			if at := time.Since(start); at >= loadFor/2 {
				if half == 0 {
					half = rss
				}
				secondHalf = append(secondHalf, rssSample{at: at, rss: rss})
			}
			time.Sleep(200 * time.Millisecond)
		}
		cancel()
		wg.Wait()
	}
	const mib = 1 << 20
	b.ReportMetric(float64(idle)/mib, "idle-MiB")
	b.ReportMetric(float64(peak)/mib, "loaded-MiB")
	b.ReportMetric(float64(last-half)/mib, "growth-MiB")
	b.ReportMetric(slopePerMinute(secondHalf)/mib, "slope-MiB/min")
	b.ReportMetric(loadFor.Minutes(), "soak-min")
	b.ReportMetric(float64(ops.Load())/loadFor.Seconds(), "ops/s")
}

type rssSample struct {
	at  time.Duration
	rss int64
}

// slopePerMinute is the least-squares slope of the samples, in bytes per
// minute: a leak shows as a steady climb, where the peak and last sample
// alone can be fooled by one garbage-collection cycle.
func slopePerMinute(samples []rssSample) float64 {
	if len(samples) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, s := range samples {
		x, y := s.at.Minutes(), float64(s.rss)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(samples))
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// stationBinary builds the station command from this tree (the build cache
// makes it quick after `make build`).
func stationBinary(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "station")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/expresshub/station").CombinedOutput()
	if err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// seedMemoryStation adds the load's operator and the SG-H01 chute map, as
// `station operator add` and a supervisor would.
func seedMemoryStation(b *testing.B, dbURL string, fx *sim.Fixtures) {
	b.Helper()
	ctx := context.Background()
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	op := auth.Operator{ID: "op1", StationID: "SG-H01", Role: auth.RoleOperator}
	if err := auth.NewService(db, time.Hour, auth.WithBcryptCost(4)).AddOperator(ctx, op, "password-bench"); err != nil {
		b.Fatal(err)
	}
	m := sorting.NumberedChuteMap(fx.NextHops("SG-H01"))
	if _, err := sorting.NewChuteStore(db, time.Minute).Put(ctx, "SG-H01", m, 0, "bench"); err != nil {
		b.Fatal(err)
	}
}

func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(b *testing.B, c *http.Client, base string, exited <-chan error, stderr *bytes.Buffer) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			b.Fatalf("station exited: %v\n%s", err, stderr.String())
		default:
		}
		if resp, err := c.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("station not ready after 60s\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call makes one JSON request and decodes a 2xx answer into out.
func call(c *http.Client, method, url, token string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func login(b *testing.B, c *http.Client, base, id string) string {
	b.Helper()
	var sess struct {
		Token string `json:"token"`
	}
	if err := call(c, "POST", base+"/api/v1/auth/login", "", map[string]string{"operator_id": id, "password": "password-bench"}, &sess); err != nil {
		b.Fatal(err)
	}
	return sess.Token
}

// mixedLoad runs until ctx ends: six operators receive and sort new parcels,
// and one packs what they sorted, ten parcels a bag per next hop, sealing
// each bag (label and bag_sealed events).
func mixedLoad(ctx context.Context, b *testing.B, c *http.Client, base, token string, fx *sim.Fixtures, ops *atomic.Int64) {
	const sorters = 6
	sorted := make(chan [2]string, 256) // tracking number, next hop
	var seq, next atomic.Int64
	scan := func() string { return "mem-" + strconv.FormatInt(seq.Add(1), 10) }
	site, _ := fx.Site("SG-H01")
	var wg sync.WaitGroup
	for range sorters {
		wg.Go(func() {
			for ctx.Err() == nil {
				var tn string
				for tn == "" {
					no := sim.TrackingNo(site.Market, sim.Normal, int(next.Add(1)))
					if p, err := fx.Parcel(no); err == nil && fx.Via(p.Origin, p.Destination, "SG-H01") {
						tn = no
					}
				}
				if err := call(c, "POST", base+"/api/v1/receive", token, map[string]string{"tracking_no": tn, "scan_id": scan()}, nil); err != nil {
					if ctx.Err() == nil {
						b.Error(err)
					}
					return
				}
				var res sorting.Result
				if err := call(c, "POST", base+"/api/v1/sort", token, map[string]string{"tracking_no": tn, "scan_id": scan()}, &res); err != nil {
					if ctx.Err() == nil {
						b.Error(err)
					}
					return
				}
				ops.Add(2)
				if res.NextHop != nil {
					select {
					case sorted <- [2]string{tn, *res.NextHop}:
					default: // the packer is behind; this parcel waits on the floor
					}
				}
			}
		})
	}
	wg.Go(func() {
		byHop := map[string][]string{}
		for ctx.Err() == nil {
			var p [2]string
			select {
			case <-ctx.Done():
				return
			case p = <-sorted:
			}
			byHop[p[1]] = append(byHop[p[1]], p[0])
			if len(byHop[p[1]]) < 10 {
				continue
			}
			parcels := byHop[p[1]]
			delete(byHop, p[1])
			var bag struct {
				ID string `json:"bag_id"`
			}
			err := call(c, "POST", base+"/api/v1/bags", token, map[string]string{"next_hop": p[1], "scan_id": scan()}, &bag)
			for _, tn := range parcels {
				if err == nil {
					err = call(c, "POST", base+"/api/v1/bags/"+bag.ID+"/items", token, map[string]string{"tracking_no": tn, "scan_id": scan()}, nil)
				}
			}
			if err == nil {
				err = call(c, "POST", base+"/api/v1/bags/"+bag.ID+"/seal", token, map[string]any{"weight_g": 4200, "scan_id": scan()}, nil)
			}
			if err != nil {
				if ctx.Err() == nil {
					b.Error(err)
				}
				return
			}
			ops.Add(int64(len(parcels) + 2))
		}
	})
	wg.Wait()
}
