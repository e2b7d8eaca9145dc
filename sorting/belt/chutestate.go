package belt

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/sorting"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// fullChutes is a station's set of chutes that take no parcels now (full,
// by the machine's report or its bag, or disabled), at a version.
type fullChutes struct {
	version int64
	chutes  []int // sorted; a handful at most
}

func (f fullChutes) has(chute int) bool {
	_, ok := slices.BinarySearch(f.chutes, chute)
	return ok
}

func (f fullChutes) encode() string {
	parts := make([]string, len(f.chutes))
	for i, c := range f.chutes {
		parts[i] = strconv.Itoa(c)
	}
	return strconv.FormatInt(f.version, 10) + "|" + strings.Join(parts, ",")
}

func decodeFullChutes(v string) (fullChutes, error) {
	ver, list, ok := strings.Cut(v, "|")
	if !ok {
		return fullChutes{}, fmt.Errorf("sorting: chute state %.20q", v)
	}
	var f fullChutes
	var err error
	if f.version, err = strconv.ParseInt(ver, 10, 64); err != nil {
		return fullChutes{}, err
	}
	for p := range strings.SplitSeq(list, ",") {
		if p == "" {
			continue
		}
		c, err := strconv.Atoi(p)
		if err != nil {
			return fullChutes{}, err
		}
		f.chutes = append(f.chutes, c)
	}
	slices.Sort(f.chutes)
	return f, nil
}

// setNewerState replaces a station's chute state only with a newer version,
// so two instances publishing in either order leave the newest.
var setNewerState = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^(%d+)'))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`)

// chuteStates caches which chutes are full, per station, for this instance.
// Entries are dropped on a change signal; while the signal channel is down
// the cache is bypassed (see Service.cacheTrusted).
type chuteStates struct {
	mu    sync.RWMutex
	ttl   time.Duration
	cache map[string]cachedChutes
}

type cachedChutes struct {
	f       fullChutes
	fetched time.Time
}

func (c *chuteStates) get(station string, now time.Time) (fullChutes, bool) {
	c.mu.RLock()
	v, ok := c.cache[station]
	c.mu.RUnlock()
	if !ok || now.Sub(v.fetched) >= c.ttl {
		return fullChutes{}, false
	}
	return v.f, true
}

func (c *chuteStates) put(station string, f fullChutes, now time.Time) {
	c.mu.Lock()
	if cur, ok := c.cache[station]; !ok || cur.f.version <= f.version {
		c.cache[station] = cachedChutes{f: f, fetched: now}
	}
	c.mu.Unlock()
}

func (c *chuteStates) drop(station string) {
	c.mu.Lock()
	delete(c.cache, station)
	c.mu.Unlock()
}

func (c *chuteStates) flush() {
	c.mu.Lock()
	clear(c.cache)
	c.mu.Unlock()
}

// fullChutes returns the station's full chutes: this instance's cache, else
// Redis, else PostgreSQL.
func (b *Service) fullChutes(ctx context.Context, station string) (fullChutes, error) {
	now := b.now()
	trusted := b.cacheTrusted()
	if trusted {
		if f, ok := b.states.get(station, now); ok {
			return f, nil
		}
	}
	if b.redisOK() {
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		v, err := b.rdb.Get(rctx, b.chutesKey(station)).Result()
		cancel()
		if err == nil {
			if f, err := decodeFullChutes(v); err == nil {
				if trusted {
					b.states.put(station, f, now)
				}
				return f, nil
			}
		}
		b.redisFailed(err)
	}
	if !b.pgOK() {
		return fullChutes{}, fmt.Errorf("sorting: chute states of %s: PostgreSQL skipped after a failure", station)
	}
	pctx, cancel := pgBound(ctx)
	f, err := b.loadChuteStates(pctx, b.db, station)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			b.pgFailed()
		}
		return fullChutes{}, err
	}
	if b.redisOK() {
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		b.redisFailed(setNewerState.Run(rctx, b.rdb, []string{b.chutesKey(station)}, f.version, f.encode()).Err())
		cancel()
	}
	if trusted {
		b.states.put(station, f, now)
	}
	return f, nil
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (b *Service) loadChuteStates(ctx context.Context, q queryRower, station string) (fullChutes, error) {
	var f fullChutes
	err := q.QueryRow(ctx, `
		SELECT coalesce(max(version), 0), coalesce(array_agg(chute ORDER BY chute) FILTER (WHERE is_full OR disabled), '{}')
		  FROM chute_states WHERE station_id = $1`, station).Scan(&f.version, &f.chutes)
	if err != nil {
		return fullChutes{}, fmt.Errorf("sorting: load chute states of %s: %w", station, err)
	}
	return f, nil
}

// setChuteTx records a chute full or cleared in the caller's transaction.
func setChuteTx(ctx context.Context, tx pgx.Tx, station string, chute int, full bool, by string) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO chute_states (station_id, chute, is_full, version, updated_by)
		VALUES ($1, $2, $3, nextval('chute_state_version'), $4)
		ON CONFLICT (station_id, chute) DO UPDATE
		   SET is_full = EXCLUDED.is_full, version = EXCLUDED.version, updated_by = EXCLUDED.updated_by, updated_at = now()`,
		station, chute, full, by)
	if err != nil {
		return fmt.Errorf("sorting: chute %d of %s: %w", chute, station, err)
	}
	return nil
}

// chutesChanged carries a committed chute change to Redis and every
// instance. If Redis is down, instances read PostgreSQL meanwhile (their
// caches are bypassed while the signal channel is down).
func (b *Service) chutesChanged(ctx context.Context, station string) {
	b.states.drop(station)
	f, err := b.loadChuteStates(ctx, b.db, station)
	if err != nil {
		b.log.Warn("chute state not spread", "station", station, "error", err)
		return
	}
	if err := setNewerState.Run(ctx, b.rdb, []string{b.chutesKey(station)}, f.version, f.encode()).Err(); err != nil {
		// A stale Redis copy must not outlive this change: drop it, the
		// next reader loads PostgreSQL.
		_ = b.rdb.Del(ctx, b.chutesKey(station)).Err()
		b.log.Warn("chute state not in Redis", "station", station, "error", err)
	}
	if err := b.rdb.Publish(ctx, b.eventsChannel(), "c|"+station).Err(); err != nil {
		b.log.Warn("chute change not broadcast", "station", station, "error", err)
	}
}

// ChuteState is one chute's state as the floor shows it.
type ChuteState struct {
	Chute     int       `json:"chute"`
	Full      bool      `json:"full"`
	Disabled  bool      `json:"disabled"`
	UpdatedBy string    `json:"updated_by"` // a sorter, "bag:<id>" when its bag filled, or a supervisor
	UpdatedAt time.Time `json:"updated_at"`
}

// ChuteStates are a station's recorded chute states (chutes never reported
// are ready).
func (b *Service) ChuteStates(ctx context.Context, station string) ([]ChuteState, error) {
	rows, err := b.db.Query(ctx, `SELECT chute, is_full, disabled, updated_by, updated_at FROM chute_states
		WHERE station_id = $1 ORDER BY chute`, station)
	if err != nil {
		return nil, fmt.Errorf("belt: chute states of %s: %w", station, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (ChuteState, error) {
		var c ChuteState
		err := row.Scan(&c.Chute, &c.Full, &c.Disabled, &c.UpdatedBy, &c.UpdatedAt)
		c.UpdatedAt = c.UpdatedAt.UTC()
		return c, err
	})
}

// ErrNotANextHopChute: bags hang only under the chutes of a next hop.
var ErrNotANextHopChute = fault.New(fault.Invalid, "not_a_next_hop_chute", "the chute is not a next hop's chute on the chute map")

// ChuteHop is the next hop of a chute on the station's chute map.
func (b *Service) ChuteHop(ctx context.Context, station string, chute int) (string, error) {
	m, err := b.router.Chutes().Get(ctx, station)
	if err != nil {
		return "", err
	}
	role := chuteRole(m.ChuteMap, chute)
	if role.kind != sorting.ChuteNextHop {
		return "", ErrNotANextHopChute.With(map[string]any{"chute": chute, "kind": role.kind},
			"chute %d of %s is not a next hop's chute", chute, station)
	}
	return role.hop, nil
}

// BagHungTx records a new bag under a chute in the caller's transaction:
// the chute is ready again, unless the bag is already at a limit (it took
// the parcels waiting there), when it stays full. ChutesChanged spreads it
// after the commit.
func (b *Service) BagHungTx(ctx context.Context, tx pgx.Tx, station string, chute int, by string, bagFull bool) error {
	return setChuteTx(ctx, tx, station, chute, bagFull, by)
}

// SetFull records a chute full or ready on its own (the floor refitting a
// chute to its bag); ChutesChanged spreads it.
func (b *Service) SetFull(ctx context.Context, station string, chute int, full bool, by string) error {
	return pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error { return setChuteTx(ctx, tx, station, chute, full, by) })
}

// ChutesChanged spreads a committed chute change to every instance.
func (b *Service) ChutesChanged(ctx context.Context, station string) {
	b.chutesChanged(ctx, station)
	if b.cfg.OnFloorChange != nil {
		b.cfg.OnFloorChange(station)
	}
}

// SetDisabled takes a next hop's chute out of use, or any chute back:
// Resolve skips a disabled chute like a full one.
func (b *Service) SetDisabled(ctx context.Context, station string, chute int, disabled bool, by string) error {
	m, err := b.router.Chutes().Get(ctx, station)
	if err != nil {
		return err
	}
	role := chuteRole(m.ChuteMap, chute)
	if role.kind == "" {
		return ErrNotANextHopChute.With(map[string]any{"chute": chute, "kind": role.kind}, "chute %d is not on the chute map of %s", chute, station)
	}
	// The exception, overflow and reject chutes are where Resolve sends what
	// it cannot place elsewhere: it does not skip them, so "disabled" there
	// would be a floor state that lies while parcels keep dropping in. One
	// disabled before this check can still be enabled.
	if disabled && role.kind != sorting.ChuteNextHop {
		return ErrNotANextHopChute.With(map[string]any{"chute": chute, "kind": role.kind},
			"chute %d of %s is the %s chute, the belt's last resort; only a next hop's chute can be disabled", chute, station, role.kind)
	}
	_, err = b.db.Exec(ctx, `
		INSERT INTO chute_states (station_id, chute, is_full, disabled, version, updated_by)
		VALUES ($1, $2, false, $3, nextval('chute_state_version'), $4)
		ON CONFLICT (station_id, chute) DO UPDATE
		   SET disabled = EXCLUDED.disabled, version = EXCLUDED.version, updated_by = EXCLUDED.updated_by, updated_at = now()`,
		station, chute, disabled, by)
	if err != nil {
		return fmt.Errorf("belt: chute %d of %s: %w", chute, station, err)
	}
	b.ChutesChanged(ctx, station)
	return nil
}
