package sorting

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/expresshub/station/ident"
)

// beltKey names one parcel at one station.
type beltKey struct {
	station string
	tn      ident.TrackingNo
}

// beltCache is the in-process layer of the belt's lookup table: bounded,
// with a lifetime per entry, sharded so concurrent Resolves rarely share a
// lock. It also keeps tombstones: an invalidation heard here stops an older
// answer (read from Redis a moment before) from being cached after it.
type beltCache struct {
	seed   maphash.Seed
	ttl    time.Duration
	max    int // per shard
	shards [beltCacheShards]beltShard
}

const beltCacheShards = 32

type beltShard struct {
	mu sync.RWMutex
	m  map[beltKey]cached
}

type cached struct {
	e       entry
	tomb    int64 // unix ms of an invalidation; 0 for a live entry
	expires time.Time
}

func newBeltCache(size int, ttl time.Duration) *beltCache {
	c := &beltCache{seed: maphash.MakeSeed(), ttl: ttl, max: max(size/beltCacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = map[beltKey]cached{}
	}
	return c
}

func (c *beltCache) shard(k beltKey) *beltShard {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(k.station)
	h.WriteString(string(k.tn))
	return &c.shards[h.Sum64()%beltCacheShards]
}

// get returns a live entry.
func (c *beltCache) get(k beltKey, now time.Time) (entry, bool) {
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
func (c *beltCache) put(k beltKey, e entry, now time.Time) {
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
func (c *beltCache) tombstone(k beltKey, ms int64, now time.Time) {
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
func (c *beltCache) evictLocked(s *beltShard, k beltKey) {
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
func (c *beltCache) flush() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}

// len counts entries (tests).
func (c *beltCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
