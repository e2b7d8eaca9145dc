package ratelimit_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/ratelimit"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the tests below fail dials on purpose.
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

func client(t *testing.T, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// take asks n times and counts the admitted and the degraded decisions;
// every refusal must say when to retry.
func take(t *testing.T, l *ratelimit.Limiter, key string, limit ratelimit.Limit, n int) (allowed, degraded int) {
	t.Helper()
	for range n {
		d := l.Allow(context.Background(), key, limit)
		if d.Allowed {
			allowed++
		} else if d.RetryAfter <= 0 {
			t.Fatalf("refused without a RetryAfter: %+v", d)
		}
		if d.Degraded {
			degraded++
		}
	}
	return allowed, degraded
}

func TestInstancesShareOneBudgetThroughRedis(t *testing.T) {
	rdb, prefix := dbtest.Redis(t)
	a, b := ratelimit.New(rdb, prefix), ratelimit.New(rdb, prefix)
	limit := ratelimit.PerMinute(10)
	okA, degA := take(t, a, "op:ana", limit, 6)
	okB, degB := take(t, b, "op:ana", limit, 6)
	if okA+okB != 10 || degA+degB != 0 {
		t.Fatalf("two instances admitted %d+%d (degraded %d+%d), want 10 in all from Redis", okA, okB, degA, degB)
	}
	// Keys are independent.
	if ok, _ := take(t, b, "op:ben", limit, 10); ok != 10 {
		t.Fatalf("another key admitted %d of 10", ok)
	}
}

func TestFallbackStillLimitsWhenRedisIsUnreachable(t *testing.T) {
	l := ratelimit.New(client(t, freeAddr(t)), "dead:")
	limit := ratelimit.PerMinute(5)
	ok, degraded := take(t, l, "term:SG-H01:pda-1", limit, 12)
	if ok != 5 || degraded != 12 {
		t.Fatalf("with Redis unreachable: %d admitted of 12 (%d degraded), want 5, all decided locally", ok, degraded)
	}
	if ok, _ := take(t, l, "term:SG-H01:pda-2", limit, 5); ok != 5 {
		t.Fatalf("another key admitted %d of 5", ok)
	}
}

// TestRedisIsAskedAgainAfterItComesBack: while Redis is down the limiter
// decides locally without waiting on Redis each time, and once Redis
// answers again it goes back to the shared budget by itself.
func TestRedisIsAskedAgainAfterItComesBack(t *testing.T) {
	addr := freeAddr(t)
	l := ratelimit.New(client(t, addr), "back:")
	limit := ratelimit.PerMinute(1000)
	if _, degraded := take(t, l, "op:ana", limit, 3); degraded != 3 {
		t.Fatalf("%d of 3 decisions degraded with Redis away", degraded)
	}

	_, port, _ := net.SplitHostPort(addr)
	srv := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := srv.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if d := l.Allow(context.Background(), "op:ana", limit); !d.Degraded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still deciding locally 20 s after Redis came back on port " + strconv.Quote(port))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
