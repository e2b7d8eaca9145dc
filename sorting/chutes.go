package sorting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/singleflight"

	"github.com/expresshub/station/fault"
)

// Chute-map errors.
var (
	ErrInvalidChuteMap = fault.New(fault.Invalid, "invalid_chute_map", "invalid chute map")
	ErrNoChuteMap      = fault.New(fault.Conflict, "no_chute_map", "station has no chute map")
	ErrVersionConflict = fault.New(fault.Precondition, "version_conflict", "chute map was changed by someone else")
)

// MaxChute bounds chute numbers: the largest cross-belt sorters have a few
// hundred destinations per side.
const MaxChute = 999

var siteIDPattern = regexp.MustCompile(`^[A-Z]{2}-[A-Z][0-9]{2,4}$`)

// ChuteMap says which chutes of a station's sorter serve which next hop,
// plus the special chutes every sorter needs.
type ChuteMap struct {
	// NextHops maps a next-hop site to its chutes, in the order they fill:
	// when the first is reported full, parcels go to the next.
	NextHops map[string][]int `json:"next_hops"`
	// ExceptionChute receives parcels with a business exception.
	ExceptionChute int `json:"exception_chute"`
	// OverflowChute receives parcels whose chutes are all full.
	OverflowChute int `json:"overflow_chute"`
	// RejectChute receives no-reads and parcels the sorter cannot decide in
	// time; on a loop sorter it is where recirculation ends.
	RejectChute int `json:"reject_chute"`
}

// Validate reports every problem at once: each chute used once, special
// chutes present and distinct, site ids well formed, numbers in range.
func (m ChuteMap) Validate() error {
	var problems []string
	used := map[int]string{}
	claim := func(chute int, owner string) {
		if chute < 1 || chute > MaxChute {
			problems = append(problems, fmt.Sprintf("%s: chute %d is not between 1 and %d", owner, chute, MaxChute))
			return
		}
		if prev, dup := used[chute]; dup {
			problems = append(problems, fmt.Sprintf("chute %d is used by both %s and %s", chute, prev, owner))
			return
		}
		used[chute] = owner
	}
	for _, special := range []struct {
		name  string
		chute int
	}{{"exception_chute", m.ExceptionChute}, {"overflow_chute", m.OverflowChute}, {"reject_chute", m.RejectChute}} {
		if special.chute == 0 {
			problems = append(problems, special.name+" is required")
			continue
		}
		claim(special.chute, special.name)
	}
	if len(m.NextHops) == 0 {
		problems = append(problems, "next_hops must name at least one next hop")
	}
	hops := make([]string, 0, len(m.NextHops))
	for hop := range m.NextHops {
		hops = append(hops, hop)
	}
	sort.Strings(hops)
	for _, hop := range hops {
		if !siteIDPattern.MatchString(hop) {
			problems = append(problems, fmt.Sprintf("next hop %q is not a site id like SG-L07", hop))
		}
		if len(m.NextHops[hop]) == 0 {
			problems = append(problems, fmt.Sprintf("next hop %s has no chute", hop))
		}
		for _, c := range m.NextHops[hop] {
			claim(c, hop)
		}
	}
	if len(problems) > 0 {
		return &ChuteMapError{Problems: problems}
	}
	return nil
}

// ChuteMapError lists every problem of a rejected chute map, and the next
// hops that cannot be, each with its reason.
type ChuteMapError struct {
	Problems    []string
	BadNextHops []BadNextHop
}

func (e *ChuteMapError) Error() string {
	return fmt.Sprintf("invalid chute map: %d problem(s): %v", len(e.Problems), e.Problems)
}

// Unwrap is ErrInvalidChuteMap with every problem as a detail, for the
// edges.
func (e *ChuteMapError) Unwrap() error {
	d := map[string]any{"problems": e.Problems}
	if len(e.BadNextHops) > 0 {
		d["next_hops"] = e.BadNextHops
	}
	return ErrInvalidChuteMap.With(d, "%s", e.Error())
}

// StoredChuteMap is a chute map with its version and audit fields.
type StoredChuteMap struct {
	StationID string    `json:"station_id"`
	Version   int       `json:"version"`
	UpdatedBy string    `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at"`
	ChuteMap
}

// ChuteStore keeps chute maps in PostgreSQL with a short in-process cache:
// the map is read on every sort, changed a few times a day.
//
// Once a station's map has been read, Get never waits for PostgreSQL
// again: past the TTL it answers the last good map at once and refreshes
// it in the background (stale-while-revalidate), and while PostgreSQL is
// out of reach it keeps answering that map (stale-while-error), trying
// again once a TTL. The belt must get a chute whatever the database does,
// and a map a few seconds old routes parcels exactly as it did a moment
// ago. Only a station whose map was never read waits, within the caller's
// deadline.
type ChuteStore struct {
	db  *pgxpool.Pool
	ttl time.Duration
	now func() time.Time
	// sites, when set, checks that next hops exist (WithSiteCheck).
	sites SiteLookup

	mu    sync.RWMutex
	cache map[string]cachedMap
	// loads merges concurrent reloads of one station's map: at the belt's
	// rate, every caller missing the expired entry at once would otherwise
	// each query PostgreSQL in the same millisecond.
	loads singleflight.Group
}

type cachedMap struct {
	m       StoredChuteMap
	fetched time.Time // when m was read
	failed  time.Time // when a refresh of m last failed; zero: none since fetched
}

// due reports whether the entry should be refreshed: it is past its TTL,
// and no refresh failed within the last TTL (a database that is out is
// asked once a TTL, not on every call).
func (c cachedMap) due(now time.Time, ttl time.Duration) bool {
	return now.Sub(c.fetched) >= ttl && now.Sub(c.failed) >= ttl
}

// chuteLoadTimeout bounds one shared load of a map. It runs detached from
// its callers (none of them may cut it short for the others), and only a
// station without a map yet waits for it, within its own deadline.
const chuteLoadTimeout = 3 * time.Second

// NewChuteStore builds a store whose cache entries live for ttl.
func NewChuteStore(db *pgxpool.Pool, ttl time.Duration, opts ...ChuteStoreOption) *ChuteStore {
	s := &ChuteStore{db: db, ttl: ttl, now: time.Now, cache: map[string]cachedMap{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Get returns the station's chute map: from the cache when it holds one
// (refreshing a stale one in the background), else from PostgreSQL within
// ctx's deadline.
func (s *ChuteStore) Get(ctx context.Context, station string) (StoredChuteMap, error) {
	now := s.now()
	s.mu.RLock()
	c, ok := s.cache[station]
	s.mu.RUnlock()
	if ok {
		if c.due(now, s.ttl) {
			s.refresh(ctx, station) // not waited for: the last good map answers meanwhile
		}
		return c.m, nil
	}
	select {
	case r := <-s.refresh(ctx, station):
		if r.Err != nil {
			return StoredChuteMap{}, r.Err
		}
		return r.Val.(StoredChuteMap), nil
	case <-ctx.Done():
		return StoredChuteMap{}, fmt.Errorf("sorting: chute map %s: %w", station, ctx.Err())
	}
}

// refresh loads the station's map once for every concurrent caller and
// caches the answer. A failed load keeps the last good map (noting the
// failure), except when the map is gone, which is an answer, not a failure.
func (s *ChuteStore) refresh(ctx context.Context, station string) <-chan singleflight.Result {
	return s.loads.DoChan(station, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chuteLoadTimeout)
		defer cancel()
		m, err := s.load(lctx, station)
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case err == nil:
			s.cache[station] = cachedMap{m: m, fetched: s.now()}
		case errors.Is(err, ErrNoChuteMap):
			delete(s.cache, station)
		default:
			if c, ok := s.cache[station]; ok {
				c.failed = s.now()
				s.cache[station] = c
			}
		}
		return m, err
	})
}

func (s *ChuteStore) load(ctx context.Context, station string) (StoredChuteMap, error) {
	var m StoredChuteMap
	var raw []byte
	err := s.db.QueryRow(ctx,
		`SELECT station_id, version, updated_by, updated_at, map FROM chute_maps WHERE station_id = $1`, station).
		Scan(&m.StationID, &m.Version, &m.UpdatedBy, &m.UpdatedAt, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return StoredChuteMap{}, fmt.Errorf("station %s: %w", station, ErrNoChuteMap)
	}
	if err != nil {
		return StoredChuteMap{}, fmt.Errorf("sorting: load chute map %s: %w", station, err)
	}
	if err := json.Unmarshal(raw, &m.ChuteMap); err != nil {
		return StoredChuteMap{}, fmt.Errorf("sorting: decode chute map %s: %w", station, err)
	}
	return m, nil
}

// Put validates and stores a chute map. expectVersion is the version the
// writer read (0 for a station without a map): a stale write fails with
// ErrVersionConflict instead of overwriting a colleague's change.
func (s *ChuteStore) Put(ctx context.Context, station string, m ChuteMap, expectVersion int, by string) (StoredChuteMap, error) {
	if err := s.validate(ctx, station, m); err != nil {
		return StoredChuteMap{}, err
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return StoredChuteMap{}, err
	}
	var out StoredChuteMap
	if expectVersion == 0 {
		err = s.db.QueryRow(ctx,
			`INSERT INTO chute_maps (station_id, version, map, updated_by) VALUES ($1, 1, $2, $3)
			 ON CONFLICT (station_id) DO NOTHING
			 RETURNING version, updated_at`, station, raw, by).Scan(&out.Version, &out.UpdatedAt)
	} else {
		err = s.db.QueryRow(ctx,
			`UPDATE chute_maps SET map = $2, updated_by = $3, updated_at = now(), version = version + 1
			  WHERE station_id = $1 AND version = $4
			 RETURNING version, updated_at`, station, raw, by, expectVersion).Scan(&out.Version, &out.UpdatedAt)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return StoredChuteMap{}, fmt.Errorf("station %s: %w", station, ErrVersionConflict)
	}
	if err != nil {
		return StoredChuteMap{}, fmt.Errorf("sorting: store chute map %s: %w", station, err)
	}
	out.StationID, out.UpdatedBy, out.ChuteMap = station, by, m
	s.Forget(station)
	return out, nil
}

// Forget drops a cached map (after a change, or a change signal from
// another instance).
func (s *ChuteStore) Forget(station string) {
	s.mu.Lock()
	delete(s.cache, station)
	s.mu.Unlock()
	s.loads.Forget(station)
}

// ChuteFor is the first chute of nextHop, and whether the map has one.
func (m ChuteMap) ChuteFor(nextHop string) (int, bool) {
	cs := m.NextHops[nextHop]
	if len(cs) == 0 {
		return 0, false
	}
	return cs[0], true
}

// NumberedChuteMap gives each next hop one chute, numbered from 1 in the
// order given, with the special chutes after them: the layout of a new
// sorter before a supervisor tunes it (demo data and tests use it).
func NumberedChuteMap(nextHops []string) ChuteMap {
	m := ChuteMap{NextHops: make(map[string][]int, len(nextHops))}
	for i, hop := range nextHops {
		m.NextHops[hop] = []int{i + 1}
	}
	base := len(nextHops) + 1
	m.ExceptionChute, m.OverflowChute, m.RejectChute = base, base+1, base+2
	return m
}
