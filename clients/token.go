package clients

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"

	"github.com/expresshub/station/clients/flight"
)

// tokenSource hands out the order center's access token. It fetches lazily
// and refreshes ahead of expiry, one refresh at a time: within a process
// through singleflight, across processes through a Redis lock, with the
// token itself shared in Redis. The Redis copy lives only until the token is
// due for refresh, so whoever finds it missing is the one to refresh.
//
// Losing Redis costs only the sharing: each process then fetches its own.
type tokenSource struct {
	issue         func(ctx context.Context, clientID, secret string) (string, time.Time, error)
	clientID      string
	secret        string
	refreshBefore time.Duration
	rdb           redis.UniversalClient
	key, lockKey  string
	lockTTL       time.Duration
	lockWait      time.Duration
	metrics       *metrics
	log           *slog.Logger

	mu  sync.Mutex
	cur sharedToken

	flight *flight.Group[struct{}, sharedToken]
}

// sharedToken is the token as cached locally and in Redis.
type sharedToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// RefreshAt is when holders stop using it and fetch the next one.
	RefreshAt time.Time `json:"refresh_at"`
}

func (t sharedToken) fresh(now time.Time) bool { return t.Token != "" && now.Before(t.RefreshAt) }
func (t sharedToken) live(now time.Time) bool  { return t.Token != "" && now.Before(t.ExpiresAt) }

func newTokenSource(issue func(context.Context, string, string) (string, time.Time, error), tc TokenConfig,
	rdb redis.UniversalClient, m *metrics, log *slog.Logger, refreshTimeout time.Duration) *tokenSource {
	return &tokenSource{
		issue:         issue,
		clientID:      tc.ClientID,
		secret:        tc.ClientSecret,
		refreshBefore: tc.RefreshBefore,
		rdb:           rdb,
		key:           tc.KeyPrefix + "downstream:order_center:token",
		lockKey:       tc.KeyPrefix + "downstream:order_center:token:lock",
		lockTTL:       tc.LockTTL,
		lockWait:      tc.LockWait,
		metrics:       m,
		log:           log,
		flight:        flight.New[struct{}, sharedToken](flight.Options{Name: "order_center_token", Timeout: refreshTimeout, Metrics: m.flight}),
	}
}

// Token returns a token that is not due for refresh, refreshing if needed.
// If the refresh fails while the current token is still live, the current
// one is returned: the order center still accepts it.
func (s *tokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	if cur.fresh(time.Now()) {
		return cur.Token, nil
	}
	t, _, err := s.flight.Do(ctx, struct{}{}, s.refresh)
	if err != nil {
		if cur.live(time.Now()) {
			s.log.Warn("order center token refresh failed; using the current token until it expires", "err", err)
			return cur.Token, nil
		}
		var ce *CallError
		if !errors.As(err, &ce) {
			err = callError(ServiceOrderCenter, "IssueToken", err)
		}
		return "", err
	}
	return t.Token, nil
}

// Invalidate drops a token the order center refused, locally and in Redis
// (only if Redis still holds that same token).
func (s *tokenSource) Invalidate(ctx context.Context, token string) {
	s.mu.Lock()
	if s.cur.Token == token {
		s.cur = sharedToken{}
	}
	s.mu.Unlock()
	if s.rdb == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := deleteIfToken.Run(ctx, s.rdb, []string{s.key}, token).Err(); err != nil && !errors.Is(err, redis.Nil) {
		s.log.Warn("order center token: cannot drop the shared token", "err", err)
	}
}

// refresh runs once at a time per process (singleflight).
func (s *tokenSource) refresh(ctx context.Context) (sharedToken, error) {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	if cur.fresh(time.Now()) {
		return cur, nil // refreshed by the previous flight
	}
	if s.rdb == nil {
		return s.issueAndKeep(ctx, nil)
	}
	if t, ok := s.loadShared(ctx); ok {
		return t, nil
	}
	lctx, cancel := context.WithTimeout(ctx, s.lockWait)
	lock, err := redislock.Obtain(lctx, s.rdb, s.lockKey, s.lockTTL, &redislock.Options{
		RetryStrategy: redislock.LinearBackoff(20 * time.Millisecond),
	})
	cancel()
	if err != nil {
		// Another instance holds the lock too long, or Redis is down:
		// take its token if it arrived meanwhile, else fetch our own.
		if t, ok := s.loadShared(ctx); ok {
			return t, nil
		}
		if !errors.Is(err, redislock.ErrNotObtained) && !errors.Is(err, context.DeadlineExceeded) {
			s.log.Warn("order center token: Redis lock unavailable, fetching without sharing", "err", err)
		}
		return s.issueAndKeep(ctx, nil)
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer rcancel()
		_ = lock.Release(rctx)
	}()
	// Whoever held the lock before us may have just stored a new token.
	if t, ok := s.loadShared(ctx); ok {
		return t, nil
	}
	return s.issueAndKeep(ctx, lock)
}

// loadShared adopts the token in Redis if it is fresh.
func (s *tokenSource) loadShared(ctx context.Context) (sharedToken, bool) {
	raw, err := s.rdb.Get(ctx, s.key).Bytes()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			s.log.Warn("order center token: cannot read the shared token", "err", err)
		}
		return sharedToken{}, false
	}
	var t sharedToken
	if err := json.Unmarshal(raw, &t); err != nil || !t.fresh(time.Now()) {
		return sharedToken{}, false
	}
	s.keep(t)
	s.metrics.tokens.WithLabelValues("shared").Inc()
	return t, true
}

// issueAndKeep fetches a new token and keeps it locally and, when this
// process holds the lock, in Redis.
func (s *tokenSource) issueAndKeep(ctx context.Context, lock *redislock.Lock) (sharedToken, error) {
	tok, exp, err := s.issue(ctx, s.clientID, s.secret)
	if err != nil {
		return sharedToken{}, err
	}
	now := time.Now()
	ahead := min(s.refreshBefore, exp.Sub(now)/2)
	t := sharedToken{Token: tok, ExpiresAt: exp, RefreshAt: exp.Add(-ahead)}
	s.keep(t)
	s.metrics.tokens.WithLabelValues("issued").Inc()
	if lock != nil {
		if ttl := t.RefreshAt.Sub(now); ttl > 0 {
			raw, _ := json.Marshal(t)
			// Fenced write: only while our lock value is still the
			// lock's, so an instance whose lock expired mid-refresh
			// cannot overwrite a newer token.
			err := setIfLocked.Run(ctx, s.rdb, []string{s.lockKey, s.key}, lock.Token()+lock.Metadata(), raw, ttl.Milliseconds()).Err()
			if err != nil && !errors.Is(err, redis.Nil) {
				s.log.Warn("order center token: cannot share the new token", "err", err)
			}
		}
	}
	return t, nil
}

func (s *tokenSource) keep(t sharedToken) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.ExpiresAt.After(s.cur.ExpiresAt) || !s.cur.live(time.Now()) {
		s.cur = t
	}
}

var (
	// KEYS[1] lock, KEYS[2] token; ARGV: lock value, token JSON, TTL ms.
	setIfLocked = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("SET", KEYS[2], ARGV[2], "PX", ARGV[3])
end
return false`)
	// KEYS[1] token; ARGV[1] the refused token.
	deleteIfToken = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
if v and cjson.decode(v).token == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)
)
