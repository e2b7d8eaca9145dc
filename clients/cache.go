package clients

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ttlCache keeps the basic service's answers (master data: sites, routes,
// service areas, lane restrictions) for a few seconds. A sort asks for the
// same handful of sites, lanes and routes over and over: at thousands of
// sorts a second that is thousands of identical calls, and their CPU on
// both ends is most of a sort's cost once latency is gone. Master data
// changes rarely, and a known site change goes through Basic.ForgetSite, so
// a short TTL costs nothing a sort would notice.
//
// Only answers are kept: ErrNotFound and failures are asked again at the
// next lookup, so a site or route created a moment ago, or a dependency
// that recovered, is seen at once.
//
// It is a map under a mutex, not a cache library: it holds a few thousand
// entries at most, and the expiring caches at hand run a clean-up goroutine
// per cache (golang-lru's expirable LRU never stops its own; otter's must be
// stopped by every owner of a client set), where this one has no goroutine.
// Expired entries are dropped when they are read and when the cache is full.
type ttlCache[K comparable, V any] struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[K]cacheEntry[V]
	// gen counts forget calls: a lookup that started before one does not
	// store what it got, which may predate the change.
	gen          uint64
	hits, misses uint64

	mHit, mMiss prometheus.Counter
}

type cacheEntry[V any] struct {
	v       V
	expires time.Time
}

// CacheStats are one cache's counters since the client set was built (zero
// when caching is disabled).
type CacheStats struct {
	Hits    uint64 // lookups answered from the cache
	Misses  uint64 // lookups that went on to the downstream (via singleflight for sites)
	Entries int    // answers held now, expired ones included until dropped
}

// newTTLCache returns nil (no caching) when cfg disables it. kind labels
// its metrics.
func newTTLCache[K comparable, V any](kind string, cfg CacheConfig, m *metrics) *ttlCache[K, V] {
	if cfg.Disabled {
		return nil
	}
	return &ttlCache[K, V]{
		ttl: cfg.TTL, max: cfg.MaxEntries, now: time.Now,
		m:    make(map[K]cacheEntry[V]),
		mHit: m.cache.WithLabelValues(kind, "hit"), mMiss: m.cache.WithLabelValues(kind, "miss"),
	}
}

// get returns a fresh answer, counting the hit or the miss.
func (c *ttlCache[K, V]) get(k K) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[k]
	if ok && !now.Before(e.expires) {
		delete(c.m, k)
		ok = false
	}
	if ok {
		c.hits++
	} else {
		c.misses++
	}
	c.mu.Unlock()
	if ok {
		c.mHit.Inc()
	} else {
		c.mMiss.Inc()
	}
	return e.v, ok
}

// generation is read before a downstream lookup and handed to put.
func (c *ttlCache[K, V]) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put keeps an answer, unless a forget came after gen was read.
func (c *ttlCache[K, V]) put(k K, v V, gen uint64) {
	if c == nil {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		c.makeRoom(now)
	}
	c.m[k] = cacheEntry[V]{v: v, expires: now.Add(c.ttl)}
}

// makeRoom drops the expired entries, or else the one that expires first
// (the oldest: every entry lives for the same TTL). Called with mu held,
// only when the cache is full, which takes more distinct keys within one
// TTL than the configured maximum.
func (c *ttlCache[K, V]) makeRoom(now time.Time) {
	var oldest K
	var oldestAt time.Time
	found := false
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
			continue
		}
		if !found || e.expires.Before(oldestAt) {
			oldest, oldestAt, found = k, e.expires, true
		}
	}
	if len(c.m) >= c.max && found {
		delete(c.m, oldest)
	}
}

// forget drops k and stops lookups already running from storing theirs.
func (c *ttlCache[K, V]) forget(k K) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, k)
}

// cached answers from c, or calls load and keeps what it found.
func cached[K comparable, V any](c *ttlCache[K, V], k K, load func() (V, error)) (V, error) {
	if v, ok := c.get(k); ok {
		return v, nil
	}
	gen := c.generation()
	v, err := load()
	if err == nil {
		c.put(k, v, gen)
	}
	return v, err
}

func (c *ttlCache[K, V]) stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Hits: c.hits, Misses: c.misses, Entries: len(c.m)}
}
