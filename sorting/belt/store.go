package belt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/sorting"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// entry is one stored belt answer: the flow's decision, not the chute (the
// chute is chosen when answering, from the current chute map and the full
// chutes). Times are unix milliseconds, the resolution shared by Redis, the
// cache and PostgreSQL (stored values are truncated to it).
type entry struct {
	NextHop   string `json:"h,omitempty"`
	ExcCode   string `json:"c,omitempty"`
	ExcReason string `json:"r,omitempty"`
	Flow      string `json:"f"`
	Version   int    `json:"v"`
	Degraded  bool   `json:"d,omitempty"`
	Source    string `json:"s"`
	WeightG   int    `json:"w,omitempty"` // the waybill's, when the sort read it
	SortedAt  int64  `json:"t"`           // when the sort started
	Expires   int64  `json:"e"`
}

// Sources of a stored entry (the presort_results.source column).
const (
	sourcePresort  = "presort"
	sourceOnTheFly = "on_the_fly"
)

type keyedEntry struct {
	tn ident.TrackingNo
	e  entry
}

// usable reports whether e may answer now for the station's current flow: a
// newer flow version means the logic changed since, so the parcel is sorted
// again rather than diverted on the old logic's answer.
func (e entry) usable(now time.Time, flow *sorting.Flow) bool {
	return now.UnixMilli() < e.Expires && e.Flow == flow.Name && e.Version == flow.Version
}

// storable reports whether a run's result may be kept for the belt: a sort
// that could not reach a dependency is a transient failure, to be retried
// at the next pass, never cached.
func storable(r sorting.Result) bool {
	return r.Exception == nil || r.Exception.Code != sorting.CodeDownstreamUnavailable
}

func entryOf(r sorting.Result, source string, sortedAt time.Time, ttl time.Duration) entry {
	e := entry{Flow: r.Flow, Version: r.FlowVersion, Degraded: len(r.Degraded) > 0, Source: source, WeightG: r.WeightG,
		SortedAt: sortedAt.UnixMilli(), Expires: sortedAt.Add(ttl).UnixMilli()}
	if r.NextHop != nil {
		e.NextHop = *r.NextHop
	}
	if r.Exception != nil {
		e.ExcCode, e.ExcReason = r.Exception.Code, r.Exception.Reason
	}
	return e
}

// Redis layout, under the configured prefix:
//
//	belt:presort:<station>  hash  tracking no -> "<sorted ms>|<entry json>" or a tombstone "!<ms>"
//	belt:chutes:<station>   string "<version>|<full chute>,<full chute>,..."
//	belt:events             pub/sub: "p|<station>|<tracking no>|<ms>" or "c|<station>"
func (b *Service) presortKey(station string) string {
	return b.cfg.RedisPrefix + "belt:presort:" + station
}
func (b *Service) chutesKey(station string) string {
	return b.cfg.RedisPrefix + "belt:chutes:" + station
}
func (b *Service) eventsChannel() string { return b.cfg.RedisPrefix + "belt:events" }

// putNewer writes hash fields only over older values: ARGV holds the key's
// lifetime in ms, then triples (field, as-of ms, value). An invalidation
// (a value starting with "!") wins a tie with a sort, so a sort that started
// in the same millisecond as an invalidation never survives it. Order of
// arrival does not matter, only the as-of times: what makes concurrent
// pre-sorts, belt sorts and invalidations from many instances converge.
var putNewer = redis.NewScript(`
local n = 0
for i = 2, #ARGV, 3 do
  local f, t, v = ARGV[i], tonumber(ARGV[i+1]), ARGV[i+2]
  local cur = redis.call('HGET', KEYS[1], f)
  local ct, ctomb = -1, false
  if cur then
    local bang, s = string.match(cur, '^(!?)(%d+)')
    if s then ct = tonumber(s); ctomb = (bang == '!') end
  end
  local tomb = string.sub(v, 1, 1) == '!'
  if ct < t or (ct == t and tomb and not ctomb) then
    redis.call('HSET', KEYS[1], f, v)
    n = n + 1
  end
end
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return n
`)

func encodeEntry(e entry) (string, error) {
	raw, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(e.SortedAt, 10) + "|" + string(raw), nil
}

// decodeEntry parses a Redis value; tomb is the invalidation time of a
// tombstone.
func decodeEntry(v string) (e entry, tomb int64, err error) {
	if ms, ok := strings.CutPrefix(v, "!"); ok {
		tomb, err = strconv.ParseInt(ms, 10, 64)
		return entry{}, tomb, err
	}
	_, body, ok := strings.Cut(v, "|")
	if !ok {
		return entry{}, 0, fmt.Errorf("sorting: belt value %.20q", v)
	}
	err = json.Unmarshal([]byte(body), &e)
	return e, 0, err
}

// redisPut writes entries (or tombstones) to the station's hash.
func (b *Service) redisPut(ctx context.Context, station string, fields []string, asOf []int64, values []string) error {
	const chunk = 1000 // bounds one script's run time: Redis is single-threaded
	for lo := 0; lo < len(fields); lo += chunk {
		hi := min(lo+chunk, len(fields))
		args := make([]any, 0, 1+3*(hi-lo))
		args = append(args, (b.cfg.TTL + time.Hour).Milliseconds())
		for i := lo; i < hi; i++ {
			args = append(args, fields[i], asOf[i], values[i])
		}
		if err := putNewer.Run(ctx, b.rdb, []string{b.presortKey(station)}, args...).Err(); err != nil {
			return fmt.Errorf("sorting: belt redis put: %w", err)
		}
	}
	return nil
}

// store keeps entries in PostgreSQL (the arbiter), then Redis and this
// instance's cache. An entry older than an invalidation of its parcel is
// not stored anywhere; the ones stored are returned.
func (b *Service) store(ctx context.Context, station string, items []keyedEntry) ([]keyedEntry, error) {
	if len(items) == 0 {
		return nil, nil
	}
	stored := make([]keyedEntry, 0, len(items))
	const chunk = 2000
	for lo := 0; lo < len(items); lo += chunk {
		part := items[lo:min(lo+chunk, len(items))]
		n := len(part)
		tns, hops, codes, reasons := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		flows, sources := make([]string, n), make([]string, n)
		versions, weights := make([]int32, n), make([]int32, n)
		degraded := make([]bool, n)
		sorted, expires := make([]time.Time, n), make([]time.Time, n)
		byTN := make(map[string]entry, n)
		for i, it := range part {
			tns[i], hops[i], codes[i], reasons[i] = string(it.tn), it.e.NextHop, it.e.ExcCode, it.e.ExcReason
			flows[i], versions[i], sources[i], degraded[i] = it.e.Flow, int32(it.e.Version), it.e.Source, it.e.Degraded
			weights[i] = int32(it.e.WeightG)
			sorted[i], expires[i] = time.UnixMilli(it.e.SortedAt), time.UnixMilli(it.e.Expires)
			byTN[string(it.tn)] = it.e
		}
		rows, err := b.db.Query(ctx, `
			INSERT INTO presort_results AS p (station_id, tracking_no, next_hop, exception_code, exception_reason,
			                                  flow, flow_version, degraded, source, sorted_at, expires_at, weight_g)
			SELECT $1, t.tn, NULLIF(t.hop, ''), NULLIF(t.code, ''), NULLIF(t.reason, ''), t.flow, t.version, t.degraded,
			       t.source, t.sorted, t.expires, NULLIF(t.weight, 0)
			  FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::bool[], $9::text[],
			              $10::timestamptz[], $11::timestamptz[], $12::int[])
			       AS t(tn, hop, code, reason, flow, version, degraded, source, sorted, expires, weight)
			ON CONFLICT (station_id, tracking_no) DO UPDATE
			   SET next_hop = EXCLUDED.next_hop, exception_code = EXCLUDED.exception_code,
			       exception_reason = EXCLUDED.exception_reason, flow = EXCLUDED.flow, flow_version = EXCLUDED.flow_version,
			       degraded = EXCLUDED.degraded, source = EXCLUDED.source, sorted_at = EXCLUDED.sorted_at,
			       expires_at = EXCLUDED.expires_at, weight_g = EXCLUDED.weight_g
			 WHERE p.sorted_at < EXCLUDED.sorted_at AND (p.invalidated_at IS NULL OR p.invalidated_at < EXCLUDED.sorted_at)
			RETURNING tracking_no`,
			station, tns, hops, codes, reasons, flows, versions, degraded, sources, sorted, expires, weights)
		if err != nil {
			return stored, fmt.Errorf("sorting: store belt answers: %w", err)
		}
		kept, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return stored, fmt.Errorf("sorting: store belt answers: %w", err)
		}
		for _, tn := range kept {
			stored = append(stored, keyedEntry{tn: ident.TrackingNo(tn), e: byTN[tn]})
		}
	}
	fields, asOf, values := make([]string, len(stored)), make([]int64, len(stored)), make([]string, len(stored))
	for i, it := range stored {
		v, err := encodeEntry(it.e)
		if err != nil {
			return stored, err
		}
		fields[i], asOf[i], values[i] = string(it.tn), it.e.SortedAt, v
	}
	if !b.redisOK() {
		b.warn("Redis is down; belt answers kept in PostgreSQL only", "station", station)
	} else if err := b.redisPut(ctx, station, fields, asOf, values); err != nil {
		b.redisFailed(err)
		b.warn("belt answers not in Redis; PostgreSQL still answers", "station", station, "error", err)
	}
	now := b.now()
	for _, it := range stored {
		b.cache.put(key{station, it.tn}, it.e, now)
	}
	return stored, nil
}

// loadPG reads the stored answer of one parcel. A tombstone reads as a miss.
func (b *Service) loadPG(ctx context.Context, station string, tn ident.TrackingNo) (entry, bool, error) {
	var e entry
	var hop, code, reason *string
	var sorted, expires time.Time
	// A tombstone (invalidated at or after its sort) is filtered here; its
	// sorted_at may be -infinity, which time.Time cannot hold.
	err := b.db.QueryRow(ctx, `
		SELECT next_hop, exception_code, exception_reason, flow, flow_version, degraded, source, sorted_at, expires_at,
		       coalesce(weight_g, 0)
		  FROM presort_results
		 WHERE station_id = $1 AND tracking_no = $2 AND (invalidated_at IS NULL OR invalidated_at < sorted_at)`,
		station, string(tn)).
		Scan(&hop, &code, &reason, &e.Flow, &e.Version, &e.Degraded, &e.Source, &sorted, &expires, &e.WeightG)
	if errors.Is(err, pgx.ErrNoRows) {
		return entry{}, false, nil
	}
	if err != nil {
		return entry{}, false, fmt.Errorf("sorting: load belt answer %s: %w", tn, err)
	}
	e.NextHop, e.ExcCode, e.ExcReason = deref(hop), deref(code), deref(reason)
	e.SortedAt, e.Expires = sorted.UnixMilli(), expires.UnixMilli()
	return e, true, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// invalidateSQL writes the tombstone of a parcel: its answer, if any, ends
// at $4, and any sort that started before then is refused by store. The
// tombstone is written whether or not the parcel has a row: a belt sort
// already running may store its older answer after the caller commits.
// sorted_at of a new tombstone row is -infinity: any later sort replaces
// it. It returns whether the invalidation must be spread to Redis and the
// caches ($5 forces it): only when the parcel had a live answer, one that
// Redis or a cache may hold, or an earlier spread is still pending. A parcel
// without one (most parcels sorted by hand were never pre-sorted) costs no
// Redis round trip and no second commit.
const invalidateSQL = `
	INSERT INTO presort_results AS p (station_id, tracking_no, flow, flow_version, source, sorted_at, expires_at,
	                                  invalidated_at, redis_pending)
	VALUES ($1, $2, '', 0, 'presort', '-infinity', $3, $4, $5)
	ON CONFLICT (station_id, tracking_no) DO UPDATE
	   SET invalidated_at = GREATEST(p.invalidated_at, EXCLUDED.invalidated_at),
	       redis_pending = EXCLUDED.redis_pending OR p.redis_pending
	                       OR p.invalidated_at IS NULL OR p.invalidated_at < p.sorted_at,
	       expires_at = GREATEST(p.expires_at, EXCLUDED.expires_at)
	RETURNING redis_pending`

// invalidateTx writes the tombstone of a parcel in the caller's transaction,
// so that an invalidation and the end of the belt's old answer commit
// together; it is always spread afterwards.
func (b *Service) invalidateTx(ctx context.Context, tx pgx.Tx, station string, tn ident.TrackingNo, at time.Time) error {
	var pending bool
	if err := tx.QueryRow(ctx, invalidateSQL, station, string(tn), at.Add(b.cfg.TTL), at, true).Scan(&pending); err != nil {
		return fmt.Errorf("sorting: invalidate belt answer %s: %w", tn, err)
	}
	return nil
}

// spread carries a committed invalidation to this instance's cache, Redis
// and every other instance. If Redis cannot be reached the row stays
// redis_pending and the belt's worker retries.
func (b *Service) spread(ctx context.Context, station string, tn ident.TrackingNo, at time.Time) error {
	ms := at.UnixMilli()
	b.cache.tombstone(key{station, tn}, ms, b.now())
	// Always tried, whatever redisOK says: other instances' caches hear of
	// it only this way, and invalidations are rare enough to afford a
	// bounded wait when Redis is really down.
	rctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	err := b.redisPut(rctx, station, []string{string(tn)}, []int64{ms}, []string{"!" + strconv.FormatInt(ms, 10)})
	if err == nil {
		err = b.rdb.Publish(rctx, b.eventsChannel(), fmt.Sprintf("p|%s|%s|%d", station, tn, ms)).Err()
	}
	if err != nil {
		b.redisFailed(err)
		b.warn("belt invalidation not spread yet; retried", "station", station, "tracking_no", string(tn), "error", err)
		return err
	}
	if _, err := b.db.Exec(ctx,
		`UPDATE presort_results SET redis_pending = false WHERE station_id = $1 AND tracking_no = $2 AND invalidated_at = $3`,
		station, string(tn), at); err != nil {
		b.log.Warn("belt invalidation spread but not marked; it will be spread again", "error", err)
	}
	return nil
}

// retryPending spreads invalidations that could not reach Redis before.
func (b *Service) retryPending(ctx context.Context) {
	rows, err := b.db.Query(ctx,
		`SELECT station_id, tracking_no, invalidated_at FROM presort_results WHERE redis_pending LIMIT 1000`)
	if err != nil {
		return
	}
	type pending struct {
		station, tn string
		at          time.Time
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pending, error) {
		var p pending
		return p, r.Scan(&p.station, &p.tn, &p.at)
	})
	if err != nil {
		return
	}
	for _, p := range list {
		if b.spread(ctx, p.station, ident.TrackingNo(p.tn), p.at) != nil {
			return // Redis still down: the next round tries again
		}
	}
}

// prune deletes expired answers and old tombstones, in PostgreSQL and in
// the Redis hashes (whose key lifetime is renewed by every write, so a busy
// station's hash never expires as a whole). Every instance may run it:
// deletes are idempotent.
func (b *Service) prune(ctx context.Context) {
	if _, err := b.db.Exec(ctx, `
		DELETE FROM presort_results WHERE ctid IN (
		  SELECT ctid FROM presort_results WHERE expires_at < now() AND NOT redis_pending LIMIT 10000)`); err != nil {
		b.log.Warn("pruning expired belt answers failed", "error", err)
	}
	b.pruneRedis(ctx)
}

func (b *Service) pruneRedis(ctx context.Context) {
	now := b.now()
	// A tombstone older than the TTL guards nothing: every sort it could
	// stop has expired by now.
	oldest := now.Add(-b.cfg.TTL).UnixMilli()
	keys := b.rdb.Scan(ctx, 0, b.cfg.RedisPrefix+"belt:presort:*", 100).Iterator()
	for keys.Next(ctx) {
		fields := b.rdb.HScan(ctx, keys.Val(), 0, "", 1000).Iterator()
		var dead []string
		for fields.Next(ctx) {
			field := fields.Val()
			if !fields.Next(ctx) {
				break
			}
			e, tomb, err := decodeEntry(fields.Val())
			if err != nil || (tomb == 0 && e.Expires < now.UnixMilli()) || (tomb != 0 && tomb < oldest) {
				dead = append(dead, field)
			}
		}
		for lo := 0; lo < len(dead); lo += 1000 {
			_ = b.rdb.HDel(ctx, keys.Val(), dead[lo:min(lo+1000, len(dead))]...).Err()
		}
	}
}
