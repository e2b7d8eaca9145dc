package belt

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/expresshub/station/ident"
)

// key names one parcel at one station.
type key struct {
	station string
	tn      ident.TrackingNo
}

// cache is the in-process layer of the belt's lookup table: bounded,
// with a lifetime per entry, sharded so concurrent Resolves rarely share a
// lock. It also keeps tombstones: an invalidation heard here stops an older
// answer (read from Redis a moment before) from being cached after it.
type cache struct {
	seed   maphash.Seed
	ttl    time.Duration
	max    int // per shard
	shards [cacheShards]shard
}

const cacheShards = 32

type shard struct {
	mu sync.RWMutex
	m  map[key]cached
}

type cached struct {
	e       entry
	tomb    int64 // unix ms of an invalidation; 0 for a live entry
	expires time.Time
}

func newCache(size int, ttl time.Duration) *cache {
	c := &cache{seed: maphash.MakeSeed(), ttl: ttl, max: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = map[key]cached{}
	}
	return c
}

func (c *cache) shard(k key) *shard {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(k.station)
	h.WriteString(string(k.tn))
	return &c.shards[h.Sum64()%cacheShards]
}

// get returns a live entry.
func (c *cache) get(k key, now time.Time) (entry, bool) {
	s := c.shard(k)
	s.mu.RLock()
	v, ok := s.m[k]
	s.mu.RUnlock()
	if !ok || v.tomb != 0 || now.After(v.expires) {
		return entry{}, false
	}
	return v.e, true
}

// put caches e unless a tombstone at or after its sort start is held.
func (c *cache) put(k key, e entry, now time.Time) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[k]; ok && v.tomb >= e.SortedAt && now.Before(v.expires) {
		return
	}
	c.evictLocked(s, k)
	exp := now.Add(c.ttl)
	if until := time.UnixMilli(e.Expires); until.Before(exp) {
		exp = until
	}
	s.m[k] = cached{e: e, expires: exp}
}

// tombstone records an invalidation at ms: the entry is gone, and nothing
// sorted before ms may come back.
func (c *cache) tombstone(k key, ms int64, now time.Time) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[k]; ok && v.tomb == 0 && v.e.SortedAt > ms {
		return // a newer sort is already here
	}
	c.evictLocked(s, k)
	s.m[k] = cached{tomb: ms, expires: now.Add(c.ttl)}
}

// evictLocked makes room for k: a full shard drops a few entries, whichever
// the map yields first (random enough, and O(1)).
func (c *cache) evictLocked(s *shard, k key) {
	if _, ok := s.m[k]; ok || len(s.m) < c.max {
		return
	}
	n := 0
	for old := range s.m {
		delete(s.m, old)
		if n++; n >= 8 {
			return
		}
	}
}

// flush drops everything: after losing the invalidation channel, nothing
// cached can be trusted.
func (c *cache) flush() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}

// len counts entries (tests).
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
