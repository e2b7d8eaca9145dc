package clients_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startSim starts a simulator that answers at once unless opts say otherwise.
func startSim(t testing.TB, opts ...simtest.Option) *sim.Simulator {
	t.Helper()
	return simtest.Start(t, append([]simtest.Option{simtest.WithZeroLatency()}, opts...)...)
}

// dial connects a client set to s; edit adjusts the config.
func dial(t testing.TB, s *sim.Simulator, edit func(*clients.Config), opts ...func(*clients.Options)) *clients.Set {
	t.Helper()
	cfg := clients.DefaultConfig().WithAddr(s.Addr())
	if edit != nil {
		edit(&cfg)
	}
	var o clients.Options
	for _, fn := range opts {
		fn(&o)
	}
	set, err := clients.Dial(context.Background(), cfg, o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = set.Close() })
	return set
}

// admin is a raw SimAdminService client, the way another process would
// drive the simulator.
func admin(t testing.TB, s *sim.Simulator) downstreamv1.SimAdminServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return downstreamv1.NewSimAdminServiceClient(conn)
}

// testRedis connects to the test Redis (STATION_TEST_REDIS_ADDR, default
// localhost:6379) and returns a key prefix unique to t, deleted at cleanup.
// No Redis is a failure, not a skip.
func testRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	addr := os.Getenv("STATION_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "localhost:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		t.Fatalf("Redis at %s does not answer: %v", addr, err)
	}
	prefix := fmt.Sprintf("test:%s:%d:", strings.NewReplacer(" ", "_", "/", "_").Replace(t.Name()), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
