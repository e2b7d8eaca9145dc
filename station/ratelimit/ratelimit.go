// Package ratelimit limits requests per key (an operator, a terminal, a client
// address) across every instance with Redis (GCRA via redis_rate), and with a
// per-instance token bucket of the same limit that every admitted event also
// takes from. When Redis does not answer, the bucket alone decides, so losing
// Redis loosens the limit by the number of instances instead of removing it or
// failing requests; and since the bucket counts the events Redis admitted too,
// a Redis that answers some calls and times out on others cannot add the
// bucket's burst to its own: one instance never admits more than the limit.
package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Limit is a rate with a burst.
type Limit struct {
	Rate   int           // events per Period
	Period time.Duration // e.g. time.Minute
	Burst  int
}

// PerMinute allows n events a minute with a burst of n.
func PerMinute(n int) Limit { return Limit{Rate: n, Period: time.Minute, Burst: n} }

// PerSecond allows n events a second with a burst of n.
func PerSecond(n int) Limit { return Limit{Rate: n, Period: time.Second, Burst: n} }

// Decision is the answer for one event.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration // when not allowed: how long until one is
	Degraded   bool          // decided by the local fallback, Redis was unreachable
}

// redisPause is how long the limiter decides locally after Redis failed to
// answer. Without it every request would wait out the Redis timeout (twice,
// with a terminal and an operator limit) for as long as Redis is down.
const redisPause = time.Second

// Limiter decides per key. The zero value is not usable; use New.
type Limiter struct {
	redis  *redis_rate.Limiter
	prefix string
	// redisAfter is the UnixNano before which Redis is not asked again.
	redisAfter atomic.Int64

	mu    sync.Mutex
	local map[string]*rate.Limiter
}

// New builds a Limiter; rdb may be nil for a local-only limiter.
func New(rdb *redis.Client, prefix string) *Limiter {
	l := &Limiter{prefix: prefix, local: make(map[string]*rate.Limiter)}
	if rdb != nil {
		l.redis = redis_rate.NewLimiter(rdb)
	}
	return l
}

// Allow takes one event for key under limit. An event is admitted only when
// the local bucket has a token for it, and Redis, when it answers, agrees:
// Redis first, so a refusal there costs the bucket nothing.
func (l *Limiter) Allow(ctx context.Context, key string, limit Limit) Decision {
	degraded := true
	if l.redis != nil && time.Now().UnixNano() >= l.redisAfter.Load() {
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		res, err := l.redis.Allow(rctx, l.prefix+"rl:"+key, redis_rate.Limit{Rate: limit.Rate, Period: limit.Period, Burst: limit.Burst})
		cancel()
		switch {
		case err == nil && res.Allowed == 0:
			return Decision{Allowed: false, RetryAfter: max(res.RetryAfter, 0)}
		case err == nil:
			degraded = false
		case ctx.Err() == nil: // the caller giving up says nothing about Redis
			l.redisAfter.Store(time.Now().Add(redisPause).UnixNano())
		}
	}
	d := l.allowLocal(key, limit)
	d.Degraded = degraded
	return d
}

func (l *Limiter) allowLocal(key string, limit Limit) Decision {
	l.mu.Lock()
	lim, ok := l.local[key]
	if !ok {
		if len(l.local) > maxLocalKeys {
			l.evictFull()
		}
		lim = rate.NewLimiter(rate.Limit(float64(limit.Rate)/limit.Period.Seconds()), limit.Burst)
		l.local[key] = lim
	}
	l.mu.Unlock()
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return Decision{Allowed: false, RetryAfter: d, Degraded: true}
	}
	return Decision{Allowed: true, Degraded: true}
}

// maxLocalKeys bounds the local buckets' memory under key churn.
const maxLocalKeys = 100_000

// evictFull drops the buckets that are full again: one is the same as a new
// bucket, so dropping it forgets nothing. Dropping everything instead would
// let a client churning made-up keys refill the bucket of the key it is
// actually limited on. Only when no bucket is full are all dropped.
func (l *Limiter) evictFull() {
	now := time.Now()
	for k, lim := range l.local {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(l.local, k)
		}
	}
	if len(l.local) > maxLocalKeys {
		clear(l.local)
	}
}
