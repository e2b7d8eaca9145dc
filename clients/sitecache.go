package clients

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// siteCache keeps the sites the basic service found, for a few seconds.
// Singleflight merges the lookups that overlap one downstream call, but a
// caller arriving just after that call ended starts the next one: at 200
// concurrent callers and a handful of hot sites that is still 25 calls per
// 1,000 lookups. Sites change rarely, and a known change goes through
// Basic.ForgetSite, so a short TTL costs nothing a sort would notice.
//
// Only found sites are kept: an unknown site (ErrNotFound) or a failure is
// asked again at the next lookup, so a site created a moment ago or a
// dependency that recovered is seen at once.
//
// It is a map under a mutex, not a cache library: it holds a few hundred
// sites at most, and the expiring caches at hand run a clean-up goroutine
// per cache (golang-lru's expirable LRU never stops its own; otter's must be
// stopped by every owner of a client set), where this one has no goroutine.
// Expired entries are dropped when they are read and when the cache is full.
type siteCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]siteEntry
	// gen counts ForgetSite calls: a lookup that started before one does
	// not store what it got, which may predate the change.
	gen          uint64
	hits, misses uint64

	mHit, mMiss prometheus.Counter
}

type siteEntry struct {
	site    Site
	expires time.Time
}

// SiteCacheStats are the site cache's counters since the client set was
// built (zero when the cache is disabled).
type SiteCacheStats struct {
	Hits    uint64 // lookups answered from the cache
	Misses  uint64 // lookups that went on to singleflight and the downstream
	Entries int    // sites held now, expired ones included until dropped
}

// newSiteCache returns nil (no caching) when cfg disables it.
func newSiteCache(cfg SiteCacheConfig, m *metrics) *siteCache {
	if cfg.Disabled {
		return nil
	}
	return &siteCache{
		ttl: cfg.TTL, max: cfg.MaxEntries, now: time.Now,
		m:    make(map[string]siteEntry),
		mHit: m.siteCache.WithLabelValues("hit"), mMiss: m.siteCache.WithLabelValues("miss"),
	}
}

// get returns a fresh entry, counting the hit or the miss.
func (c *siteCache) get(id string) (Site, bool) {
	if c == nil {
		return Site{}, false
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[id]
	if ok && !now.Before(e.expires) {
		delete(c.m, id)
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
	return e.site, ok
}

// generation is read before a downstream lookup and handed to put.
func (c *siteCache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put keeps a found site, unless a ForgetSite came after gen was read.
func (c *siteCache) put(id string, s Site, gen uint64) {
	if c == nil {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= c.max {
		c.makeRoom(now)
	}
	c.m[id] = siteEntry{site: s, expires: now.Add(c.ttl)}
}

// makeRoom drops the expired entries, or else the one that expires first
// (the oldest: every entry lives for the same TTL). Called with mu held,
// only when the cache is full, which takes more distinct sites within one
// TTL than the configured maximum.
func (c *siteCache) makeRoom(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for id, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, id)
			continue
		}
		if oldest == "" || e.expires.Before(oldestAt) {
			oldest, oldestAt = id, e.expires
		}
	}
	if len(c.m) >= c.max && oldest != "" {
		delete(c.m, oldest)
	}
}

// forget drops a site and stops lookups already running from storing theirs.
func (c *siteCache) forget(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, id)
}

func (c *siteCache) stats() SiteCacheStats {
	if c == nil {
		return SiteCacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return SiteCacheStats{Hits: c.hits, Misses: c.misses, Entries: len(c.m)}
}
