package belt

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
)

func TestDecidePicksTheFirstChuteNotFullThenOverflow(t *testing.T) {
	m := sorting.ChuteMap{NextHops: map[string][]int{"SG-L01": {1, 2}, "SG-L02": {3}}, ExceptionChute: 10, OverflowChute: 11, RejectChute: 12}
	e := entry{NextHop: "SG-L01", Flow: "full", Version: 1}
	cases := []struct {
		full  []int
		chute int
		kind  sorting.ChuteKind
	}{
		{nil, 1, sorting.ChuteNextHop},
		{[]int{1}, 2, sorting.ChuteNextHop},
		{[]int{2}, 1, sorting.ChuteNextHop},
		{[]int{1, 2}, 11, sorting.ChuteOverflow},
		{[]int{3}, 1, sorting.ChuteNextHop},
	}
	for _, c := range cases {
		d := decide("SG1000000001", m, fullChutes{chutes: c.full}, e, FromPresort)
		if d.Chute != c.chute || d.ChuteKind != c.kind {
			t.Errorf("full %v: chute %d %s, want %d %s", c.full, d.Chute, d.ChuteKind, c.chute, c.kind)
		}
	}
	if d := decide("SG1000000001", m, fullChutes{}, entry{ExcCode: sorting.CodeCancelled, ExcReason: "x"}, FromPresort); d.Chute != 10 || d.ReasonCode != sorting.CodeCancelled {
		t.Errorf("exception: %+v", d)
	}
	// A next hop the map no longer has goes to the exception chute, named.
	if d := decide("SG1000000001", m, fullChutes{}, entry{NextHop: "SG-L09"}, FromPresort); d.Chute != 10 || d.ReasonCode != sorting.CodeNoChute {
		t.Errorf("unmapped hop: %+v", d)
	}
}

func TestCacheTombstoneKeepsOlderAnswersOut(t *testing.T) {
	c := newCache(1000, time.Minute)
	now := time.Now()
	k := key{"SG-H01", "SG1000000001"}
	old := entry{NextHop: "SG-L01", SortedAt: 100, Expires: now.Add(time.Hour).UnixMilli()}
	c.put(k, old, now)
	if _, ok := c.get(k, now); !ok {
		t.Fatal("fresh entry missing")
	}
	c.tombstone(k, 200, now)
	if _, ok := c.get(k, now); ok {
		t.Fatal("invalidated entry still answers")
	}
	c.put(k, old, now) // a reader that fetched the old answer before the signal
	if _, ok := c.get(k, now); ok {
		t.Fatal("older answer came back after the invalidation")
	}
	newer := old
	newer.SortedAt = 300
	c.put(k, newer, now)
	if e, ok := c.get(k, now); !ok || e.SortedAt != 300 {
		t.Fatal("newer sort not cached")
	}
	c.tombstone(k, 250, now) // a late, older invalidation
	if _, ok := c.get(k, now); !ok {
		t.Fatal("older invalidation removed a newer sort")
	}
}

func TestCacheStaysBounded(t *testing.T) {
	c := newCache(64, time.Minute)
	now := time.Now()
	for i := range 10000 {
		c.put(key{"SG-H01", ident.TrackingNo(string(rune('A'+i%26)) + time.Duration(i).String())},
			entry{Expires: now.Add(time.Hour).UnixMilli()}, now)
	}
	if n := c.len(); n > 64+cacheShards {
		t.Fatalf("%d entries in a cache of 64", n)
	}
}

func TestRedisKeepsTheNewestWhateverTheOrderOfArrival(t *testing.T) {
	rdb, prefix := dbtest.Redis(t)
	b := &Service{rdb: rdb, cfg: Config{RedisPrefix: prefix}.withDefaults()}
	ctx := context.Background()
	put := func(v string, asOf int64) {
		t.Helper()
		if err := b.redisPut(ctx, "SG-H01", []string{"SG1"}, []int64{asOf}, []string{v}); err != nil {
			t.Fatal(err)
		}
	}
	get := func() string {
		v, _ := rdb.HGet(ctx, b.presortKey("SG-H01"), "SG1").Result()
		return v
	}
	put("100|{}", 100)
	put("!200", 200) // invalidated
	put("150|{}", 150)
	if got := get(); got != "!200" {
		t.Fatalf("a sort older than the invalidation replaced it: %q", got)
	}
	put("200|{}", 200) // started the same millisecond: the invalidation wins
	if got := get(); got != "!200" {
		t.Fatalf("tie: %q", got)
	}
	put("300|{}", 300)
	put("!250", 250)
	if got := get(); got != "300|{}" {
		t.Fatalf("a late older invalidation removed a newer sort: %q", got)
	}
	if ttl := rdb.PTTL(ctx, b.presortKey("SG-H01")).Val(); ttl <= 0 {
		t.Fatalf("hash has no expiry (%v)", ttl)
	}
}

func TestEntryRoundTripsThroughRedisEncoding(t *testing.T) {
	e := entry{NextHop: "SG-L01", Flow: "full", Version: 3, Degraded: true, Source: sourcePresort, SortedAt: 1700000000123, Expires: 1700043200123}
	v, err := encodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	got, tomb, err := decodeEntry(v)
	if err != nil || tomb != 0 || got != e {
		t.Fatalf("round trip: %+v %d %v", got, tomb, err)
	}
	if _, tomb, err := decodeEntry("!1700000000999"); err != nil || tomb != 1700000000999 {
		t.Fatalf("tombstone: %d %v", tomb, err)
	}
}

func TestPruneDropsExpiredAnswersAndOldTombstonesFromRedis(t *testing.T) {
	rdb, prefix := dbtest.Redis(t)
	b := &Service{rdb: rdb, cfg: Config{RedisPrefix: prefix, TTL: time.Hour}.withDefaults(), now: time.Now}
	ctx := context.Background()
	now := time.Now()
	live, _ := encodeEntry(entry{SortedAt: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()})
	expired, _ := encodeEntry(entry{SortedAt: now.Add(-2 * time.Hour).UnixMilli(), Expires: now.Add(-time.Hour).UnixMilli()})
	key := b.presortKey("SG-H01")
	rdb.HSet(ctx, key, "live", live, "expired", expired,
		"fresh-tomb", "!"+strconv.FormatInt(now.UnixMilli(), 10), "old-tomb", "!"+strconv.FormatInt(now.Add(-2*time.Hour).UnixMilli(), 10))
	b.pruneRedis(ctx)
	got, err := rdb.HKeys(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"fresh-tomb", "live"}) {
		t.Fatalf("left %v", got)
	}
}
