package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/singleflight"

	"github.com/expresshub/station/fault"
)

// Sorter errors.
var (
	ErrInvalidSorter  = fault.New(fault.Invalid, "invalid_sorter", "invalid sorter")
	ErrSorterExists   = fault.New(fault.Conflict, "sorter_exists", "sorter exists")
	ErrSorterNotFound = fault.New(fault.NotFound, "sorter_not_found", "no such sorter")
)

// sorterKeyPrefix marks a sorter key, so one pasted into the wrong place is
// recognisable (and secret scanners can find it).
const sorterKeyPrefix = "sk_"

// Sorter is a sorting machine registered at one station.
type Sorter struct {
	ID        string `json:"id"`
	StationID string `json:"station_id"`
}

// Sorters authenticates sorting machines by their key. The belt calls at
// thousands of requests per second, so a key is checked with SHA-256 (it is
// 32 random bytes: nothing to brute-force, unlike a password) and the answer
// is cached in process for cacheTTL; a deactivated sorter is refused at the
// latest cacheTTL later.
type Sorters struct {
	db       *pgxpool.Pool
	cacheTTL time.Duration
	maxCache int
	now      func() time.Time

	mu    sync.RWMutex
	cache map[[32]byte]cachedSorter
	// lookups merges the database lookups of one key: an entry expiring
	// under a belt's load would otherwise send every call in flight to
	// PostgreSQL at once.
	lookups singleflight.Group
}

type cachedSorter struct {
	p       Principal
	ok      bool // false: a known-bad key, remembered briefly to shed floods
	fetched time.Time
	// failed is when the last re-check of a good key could not reach the
	// database; zero: none since fetched.
	failed time.Time
}

// NewSorters builds the sorter authenticator; cacheTTL bounds how long a
// revoked key keeps working on an instance.
func NewSorters(db *pgxpool.Pool, cacheTTL time.Duration) *Sorters {
	return &Sorters{db: db, cacheTTL: cacheTTL, maxCache: 4096, now: time.Now, cache: map[[32]byte]cachedSorter{}}
}

// AddSorter registers a sorter at a station and returns its key. The key is
// shown only here: only its hash is stored.
func (s *Sorters) AddSorter(ctx context.Context, sorter Sorter) (string, error) {
	if !operatorIDPattern.MatchString(sorter.ID) {
		return "", fmt.Errorf("%w: id must be 2-64 letters, digits, dot, dash or underscore", ErrInvalidSorter)
	}
	if !ValidSiteID(sorter.StationID) {
		return "", fmt.Errorf("%w: station %q is not a site id like SG-H01", ErrInvalidSorter, sorter.StationID)
	}
	key, h, err := newSorterKey()
	if err != nil {
		return "", err
	}
	tag, err := s.db.Exec(ctx,
		`INSERT INTO sorters (id, station_id, key_hash) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
		sorter.ID, sorter.StationID, h[:])
	if err != nil {
		return "", fmt.Errorf("auth: add sorter %s: %w", sorter.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return "", fmt.Errorf("auth: add sorter %s: %w", sorter.ID, ErrSorterExists)
	}
	return key, nil
}

// RevokeSorter deactivates a sorter: its key is refused from the next
// database check on, that is within cacheTTL on every instance.
func (s *Sorters) RevokeSorter(ctx context.Context, id string) error {
	tag, err := s.db.Exec(ctx, `UPDATE sorters SET active = false WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("auth: revoke sorter %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("auth: revoke sorter %s: %w", id, ErrSorterNotFound)
	}
	return nil
}

// RotateSorterKey gives a sorter a new key (and reactivates it), for a key
// that leaked: the machine keeps its id, so its confirmations and history
// stay one sorter's. The old key stops working as RevokeSorter's does.
func (s *Sorters) RotateSorterKey(ctx context.Context, id string) (string, error) {
	key, h, err := newSorterKey()
	if err != nil {
		return "", err
	}
	tag, err := s.db.Exec(ctx, `UPDATE sorters SET key_hash = $2, active = true WHERE id = $1`, id, h[:])
	if err != nil {
		return "", fmt.Errorf("auth: rotate sorter key %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return "", fmt.Errorf("auth: rotate sorter key %s: %w", id, ErrSorterNotFound)
	}
	return key, nil
}

func newSorterKey() (string, [32]byte, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", [32]byte{}, fmt.Errorf("auth: sorter key: %w", err)
	}
	key := sorterKeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	return key, sha256.Sum256([]byte(key)), nil
}

// AuthenticateSorter resolves a sorter key to its principal.
func (s *Sorters) AuthenticateSorter(ctx context.Context, key string) (Principal, error) {
	if !strings.HasPrefix(key, sorterKeyPrefix) || len(key) > 128 {
		return Principal{}, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(key))
	now := s.now()
	s.mu.RLock()
	c, hit := s.cache[h]
	s.mu.RUnlock()
	if hit && c.ok && !c.failed.IsZero() {
		// A good key that could not be checked again is not a bad key
		// (as on an open stream): with PostgreSQL out of reach the machine
		// keeps working, and the key is checked again every half TTL, in
		// the background, until the database answers. A revocation needs
		// the database too, so none can have been made meanwhile that this
		// instance could have seen.
		if now.Sub(c.failed) >= s.cacheTTL/2 {
			s.lookups.DoChan(string(h[:]), func() (any, error) { return s.lookup(context.Background(), h) })
		}
		return c.p, nil
	}
	if age := now.Sub(c.fetched); hit && age < s.cacheTTL {
		if c.ok && age >= s.cacheTTL/2 {
			// Refreshed ahead, in the background: a key in use is checked
			// again within the TTL without any call waiting for it.
			s.lookups.DoChan(string(h[:]), func() (any, error) { return s.lookup(context.Background(), h) })
		}
		if !c.ok {
			return Principal{}, ErrUnauthenticated
		}
		return c.p, nil
	}
	ch := s.lookups.DoChan(string(h[:]), func() (any, error) { return s.lookup(context.WithoutCancel(ctx), h) })
	// known is a good key whose check ran out: what answers when the
	// database does not.
	known := hit && c.ok
	select {
	case <-ctx.Done():
		if known {
			return c.p, nil
		}
		return Principal{}, fmt.Errorf("auth: authenticate sorter: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			if known && !errors.Is(r.Err, ErrUnauthenticated) {
				return c.p, nil
			}
			return Principal{}, r.Err
		}
		return r.Val.(Principal), nil
	}
}

// lookupTimeout bounds a shared key lookup, which no single caller's
// context may cut short for the others.
const lookupTimeout = 5 * time.Second

// lookup reads a key's sorter from the database and caches the answer.
func (s *Sorters) lookup(ctx context.Context, h [32]byte) (Principal, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	now := s.now()
	p := Principal{Kind: KindSorter}
	err := s.db.QueryRow(ctx, `SELECT id, station_id FROM sorters WHERE key_hash = $1 AND active`, h[:]).
		Scan(&p.ID, &p.StationID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		s.remember(h, cachedSorter{fetched: now})
		return Principal{}, ErrUnauthenticated
	case err != nil:
		s.mu.Lock()
		if c, ok := s.cache[h]; ok && c.ok {
			c.failed = s.now()
			s.cache[h] = c
		}
		s.mu.Unlock()
		return Principal{}, fmt.Errorf("auth: authenticate sorter: %w", err)
	}
	p.Name = p.ID
	s.remember(h, cachedSorter{p: p, ok: true, fetched: now})
	return p, nil
}

// remember caches an answer; a full cache is emptied rather than grown, so
// a flood of random keys costs memory no more than maxCache entries.
func (s *Sorters) remember(h [32]byte, c cachedSorter) {
	s.mu.Lock()
	if len(s.cache) >= s.maxCache {
		clear(s.cache)
	}
	s.cache[h] = c
	s.mu.Unlock()
}
