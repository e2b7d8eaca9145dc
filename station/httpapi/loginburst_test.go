package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/ratelimit"
	"github.com/expresshub/station/station/stationtest/linkproxy"
)

// loginLimit is the production login limit: attempts per minute per
// operator and per client address.
const loginLimit = 10

// burst sends n logins at once from one address, each naming another
// operator (so only the address limit binds), with a wrong password, and
// returns how many reached the password check: every answer that is not
// 429. It also returns how long the burst took, for the refill allowance.
func burst(t *testing.T, h *harness, tag string, n int) (checked int, took time.Duration) {
	t.Helper()
	start := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				body := fmt.Sprintf(`{"operator_id":"%s-%d","password":"wrong-password"}`, tag, i)
				resp, err := http.Post(h.http.URL+"/api/v1/auth/login", "application/json", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusTooManyRequests:
				case http.StatusUnauthorized:
					mu.Lock()
					checked++
					mu.Unlock()
				default:
					t.Errorf("login: %d, want 401 or 429", resp.StatusCode)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return checked, time.Since(start)
}

// refill is how many attempts the limit lets through in d beyond its burst.
func refill(d time.Duration) int { return int(d * loginLimit / time.Minute) }

// TestLoginBurstNeverAdmitsMoreThanTheLimit: concurrent bursts of logins
// from one address reach the password check at most loginLimit times
// (plus what refills while the test runs), whether Redis answers, is cut
// in the middle, or is down from the start. The per-instance fallback must
// not add its own burst to what Redis already admitted.
func TestLoginBurstNeverAdmitsMoreThanTheLimit(t *testing.T) {
	t.Parallel()
	cfg := Config{MaxBodyBytes: 1 << 20, LoginPerMinute: loginLimit, RequestsPerSecond: 1000}
	limiter := func(t *testing.T) (*ratelimit.Limiter, *linkproxy.Proxy) {
		p := linkproxy.New(t, dbtest.RedisAddr())
		_, prefix := dbtest.Redis(t)
		rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		return ratelimit.New(rdb, prefix), p
	}

	t.Run("redis answers", func(t *testing.T) {
		t.Parallel()
		l, _ := limiter(t)
		h := newHarnessWith(t, cfg, l)
		checked, took := burst(t, h, "a", 300)
		if checked < loginLimit || checked > loginLimit+refill(took) {
			t.Fatalf("%d of 300 logins reached the password check in %v, want %d", checked, took, loginLimit)
		}
	})
	t.Run("redis cut mid-burst", func(t *testing.T) {
		t.Parallel()
		l, p := limiter(t)
		h := newHarnessWith(t, cfg, l)
		first, took1 := burst(t, h, "b", 150)
		p.Cut()
		second, took2 := burst(t, h, "c", 150)
		p.Restore()
		third, took3 := burst(t, h, "d", 150)
		total, took := first+second+third, took1+took2+took3
		if total > loginLimit+refill(took) {
			t.Fatalf("%d+%d+%d logins reached the password check with Redis cut between bursts (in %v), want at most %d",
				first, second, third, took, loginLimit+refill(took))
		}
	})
	t.Run("redis down", func(t *testing.T) {
		t.Parallel()
		l, p := limiter(t)
		p.Cut()
		h := newHarnessWith(t, cfg, l)
		checked, took := burst(t, h, "e", 300)
		if checked < loginLimit || checked > loginLimit+refill(took) {
			t.Fatalf("%d of 300 logins reached the password check with Redis down in %v, want %d", checked, took, loginLimit)
		}
	})
}
