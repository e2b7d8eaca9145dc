package sorting

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/fault"
)

//go:embed flows/*.yaml
var shippedFlows embed.FS

// LegacyFlow is the name of the sequential baseline flow.
const LegacyFlow = "legacy"

// ReceiveFlow is the name of the inbound-scan flow.
const ReceiveFlow = "receive"

// Flow is one compiled version of a sorting flow.
type Flow struct {
	Name       string
	Version    int
	Plan       *dag.Plan
	Sequential bool // the legacy baseline runs its nodes one at a time
}

// FlowSet holds every stored version of every flow, compiled, and which flow
// each market sorts with. PostgreSQL is the source of truth: a version
// published on any instance, or a market's new assignment, is announced on
// Redis pub/sub and a periodic resync covers lost signals. A published
// version is compiled once and never changes, so a sort in flight finishes
// on the *Flow it started with.
type FlowSet struct {
	db       *pgxpool.Pool
	registry *dag.Registry
	rdb      *redis.Client // nil: no signals, the resync alone propagates
	channel  string
	log      *zap.Logger

	mu       sync.RWMutex
	markets  map[string]Assignment
	versions map[string]map[int]*Flow // name -> version -> flow
	latest   map[string]*Flow
	reload   sync.Mutex // serialises reloads
	onApply  func()
}

// Assignment is the flow a market sorts with; Version 0 follows the newest
// version of the flow.
type Assignment struct {
	Market    string    `json:"market"`
	Flow      string    `json:"flow"`
	Version   int       `json:"version"`
	UpdatedBy string    `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Flow publication errors.
var (
	ErrInvalidFlow             = fault.New(fault.Invalid, "invalid_flow", "the flow config is invalid")
	ErrInvalidMarketAssignment = fault.New(fault.Invalid, "invalid_market_assignment", "the market assignment is invalid")
)

// FlowSetOption adjusts a FlowSet at construction.
type FlowSetOption func(*FlowSet)

// WithSignals makes publications and assignments signal every instance on
// Redis (channel prefix+"flows"), and log what could not be signalled.
func WithSignals(rdb *redis.Client, prefix string, log *zap.Logger) FlowSetOption {
	return func(s *FlowSet) { s.rdb, s.channel, s.log = rdb, prefix+"flows", log }
}

// WithOnApply runs f after every reload (metrics, tests of propagation).
func WithOnApply(f func()) FlowSetOption {
	return func(s *FlowSet) { s.onApply = f }
}

// NewFlowSet builds the step registry over d and chutes, seeds an empty
// database with the shipped flow files and market assignments, and compiles
// every stored version.
func NewFlowSet(ctx context.Context, db *pgxpool.Pool, d Downstream, chutes *ChuteStore, opts ...FlowSetOption) (*FlowSet, error) {
	reg, err := steps(d, chutes)
	if err != nil {
		return nil, fmt.Errorf("sorting: steps: %w", err)
	}
	raw, err := fs.ReadFile(shippedFlows, "flows/markets.yaml")
	if err != nil {
		return nil, err
	}
	var markets map[string]string
	if err := yaml.Unmarshal(raw, &markets); err != nil {
		return nil, fmt.Errorf("sorting: markets.yaml: %w", err)
	}
	s := &FlowSet{db: db, registry: reg, log: zap.NewNop(), markets: map[string]Assignment{},
		versions: map[string]map[int]*Flow{}, latest: map[string]*Flow{}}
	for _, o := range opts {
		o(s)
	}
	if err := s.storeShipped(ctx, markets); err != nil {
		return nil, err
	}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// storeShipped seeds the database: a shipped flow file is stored as version
// 1 of its flow when no version of that flow is stored yet, and the shipped
// market assignments are stored when there are none. Once stored, flows and
// assignments change only by publication (API or command), never by a
// deploy. Concurrent instances starting together are serialised by a
// transaction-scoped advisory lock.
func (s *FlowSet) storeShipped(ctx context.Context, markets map[string]string) error {
	entries, err := fs.Glob(shippedFlows, "flows/*.yaml")
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('sorting_flows', 0))`); err != nil {
			return err
		}
		for _, file := range entries {
			if path.Base(file) == "markets.yaml" {
				continue
			}
			src, err := fs.ReadFile(shippedFlows, file)
			if err != nil {
				return err
			}
			cfg, err := dag.ParseConfig(src)
			if err != nil {
				return fmt.Errorf("sorting: shipped flow %s: %w", file, err)
			}
			var stored bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sorting_flows WHERE name = $1)`, cfg.Name).Scan(&stored); err != nil {
				return err
			}
			if stored {
				continue
			}
			if _, err := s.AddVersionTx(ctx, tx, cfg.Name, src, "shipped"); err != nil && !errors.Is(err, errUnchanged) {
				return err
			}
		}
		var seeded bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM market_flows)`).Scan(&seeded); err != nil {
			return err
		}
		if seeded {
			return nil
		}
		for market, name := range markets {
			var known bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sorting_flows WHERE name = $1)`, name).Scan(&known); err != nil {
				return err
			}
			if !known {
				return fmt.Errorf("sorting: market %s uses unknown flow %q", market, name)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO market_flows (market, flow, version, updated_by) VALUES ($1, $2, 0, 'shipped')`, market, name); err != nil {
				return err
			}
		}
		return nil
	})
}

var errUnchanged = errors.New("flow unchanged")

// AddVersion validates a flow config and stores it as the next version of
// its flow; it is not used until Reload. A config identical to the newest
// version is not stored twice.
func (s *FlowSet) AddVersion(ctx context.Context, src []byte, by string) (int, error) {
	cfg, err := dag.ParseConfig(src)
	if err != nil {
		return 0, err
	}
	var v int
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		v, err = s.AddVersionTx(ctx, tx, cfg.Name, src, by)
		return err
	})
	return v, err
}

// AddVersionTx is AddVersion inside the caller's transaction.
func (s *FlowSet) AddVersionTx(ctx context.Context, tx pgx.Tx, name string, src []byte, by string) (int, error) {
	sum := sha256.Sum256(src)
	checksum := hex.EncodeToString(sum[:])
	var newest int
	var newestSum string
	err := tx.QueryRow(ctx, `SELECT version, checksum FROM sorting_flows WHERE name = $1 ORDER BY version DESC LIMIT 1`, name).
		Scan(&newest, &newestSum)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	if newestSum == checksum {
		return newest, errUnchanged
	}
	if _, err := s.compile(name, newest+1, src); err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO sorting_flows (name, version, config, checksum, created_by) VALUES ($1, $2, $3, $4, $5)`,
		name, newest+1, string(src), checksum, by)
	if err != nil {
		return 0, fmt.Errorf("sorting: store flow %s v%d: %w", name, newest+1, err)
	}
	return newest + 1, nil
}

func (s *FlowSet) compile(name string, version int, src []byte) (*Flow, error) {
	cfg, err := dag.ParseConfig(src)
	if err != nil {
		return nil, err
	}
	if cfg.Name != name {
		return nil, fmt.Errorf("sorting: flow file names %q, stored as %q", cfg.Name, name)
	}
	cfg.Version = strconv.Itoa(version)
	plan, err := dag.Compile(cfg, s.registry)
	if err != nil {
		return nil, err
	}
	return &Flow{Name: name, Version: version, Plan: plan, Sequential: name == LegacyFlow}, nil
}

var flowName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Published is the answer to a publication.
type Published struct {
	Name      string `json:"name"`
	Version   int    `json:"version"`
	Unchanged bool   `json:"unchanged"` // the config equals the newest version; nothing was stored
}

// Publish compiles src with the start-up compile and stores it as the next
// immutable version of the flow name, audited, then applies it here and
// signals every other instance. Every problem found is listed in the
// refusal (ErrInvalidFlow with details.problems).
func (s *FlowSet) Publish(ctx context.Context, name string, src []byte, actor, reason string) (Published, error) {
	if problems := s.check(name, src); len(problems) > 0 {
		return Published{}, ErrInvalidFlow.With(map[string]any{"problems": problems},
			"flow %q is invalid: %s", name, strings.Join(problemTexts(problems), "; "))
	}
	out := Published{Name: name}
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('sorting_flows', 0))`); err != nil {
			return err
		}
		v, err := s.AddVersionTx(ctx, tx, name, src, actor)
		out.Version = v
		if errors.Is(err, errUnchanged) {
			out.Unchanged = true
			return nil
		}
		if err != nil {
			return err
		}
		var before []byte
		if v > 1 {
			before, _ = json.Marshal(map[string]any{"name": name, "version": v - 1})
		}
		after, _ := json.Marshal(map[string]any{"name": name, "version": v})
		_, err = tx.Exec(ctx, `INSERT INTO flow_audit (subject, action, actor, reason, before, after) VALUES ($1, 'publish', $2, $3, $4, $5)`,
			name, actor, reason, before, after)
		return err
	})
	if err != nil {
		return Published{}, fmt.Errorf("sorting: publish flow %s: %w", name, err)
	}
	if !out.Unchanged {
		s.applied(ctx, name+":"+strconv.Itoa(out.Version))
	}
	return out, nil
}

// check runs the start-up compile over a config about to be published and
// returns every problem it finds.
func (s *FlowSet) check(name string, src []byte) []dag.Problem {
	if !flowName.MatchString(name) {
		return []dag.Problem{{Problem: fmt.Sprintf("flow name %q must be lower case letters, digits and _ (at most 63)", name)}}
	}
	cfg, err := dag.ParseConfig(src)
	if err != nil {
		return []dag.Problem{{Problem: err.Error()}}
	}
	var problems []dag.Problem
	if cfg.Name != name {
		problems = append(problems, dag.Problem{Problem: fmt.Sprintf("the config names flow %q, published as %q", cfg.Name, name)})
	}
	cfg.Name, cfg.Version = name, "next" // the stored version number is given at insert
	if _, err := dag.Compile(cfg, s.registry); err != nil {
		var ve *dag.ValidationError
		if !errors.As(err, &ve) {
			return append(problems, dag.Problem{Problem: err.Error()})
		}
		problems = append(problems, ve.Problems...)
	}
	return problems
}

func problemTexts(ps []dag.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Problem
		if p.Node != "" {
			out[i] = "node " + p.Node + ": " + p.Problem
		}
	}
	return out
}

// Assign changes which flow (and version; 0 follows the newest) a market
// sorts with, audited, and signals every instance.
func (s *FlowSet) Assign(ctx context.Context, market, flow string, version int, actor, reason string) (Assignment, error) {
	if !marketCode.MatchString(market) {
		return Assignment{}, ErrInvalidMarketAssignment.With(nil, "market %q is not a two-letter market code", market)
	}
	if version < 0 {
		return Assignment{}, ErrInvalidMarketAssignment.With(nil, "version %d: use 0 to follow the newest version", version)
	}
	if reason == "" {
		return Assignment{}, fmt.Errorf("changing a market's flow: %w", ErrReasonRequired)
	}
	var out Assignment
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sorting_flows WHERE name = $1 AND ($2 = 0 OR version = $2))`,
			flow, version).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrInvalidMarketAssignment.With(nil, "flow %s version %d does not exist", flow, version)
		}
		var before *Assignment
		var cur Assignment
		err := tx.QueryRow(ctx, `SELECT market, flow, version, updated_by, updated_at FROM market_flows WHERE market = $1 FOR UPDATE`, market).
			Scan(&cur.Market, &cur.Flow, &cur.Version, &cur.UpdatedBy, &cur.UpdatedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		default:
			before = &cur
		}
		out = Assignment{Market: market, Flow: flow, Version: version, UpdatedBy: actor}
		err = tx.QueryRow(ctx, `INSERT INTO market_flows (market, flow, version, updated_by) VALUES ($1, $2, $3, $4)
			ON CONFLICT (market) DO UPDATE SET flow = $2, version = $3, updated_by = $4, updated_at = now() RETURNING updated_at`,
			market, flow, version, actor).Scan(&out.UpdatedAt)
		if err != nil {
			return err
		}
		var beforeJSON []byte
		if before != nil {
			beforeJSON, _ = json.Marshal(before)
		}
		afterJSON, _ := json.Marshal(out)
		_, err = tx.Exec(ctx, `INSERT INTO flow_audit (subject, action, actor, reason, before, after) VALUES ($1, 'assign', $2, $3, $4, $5)`,
			market, actor, reason, beforeJSON, afterJSON)
		return err
	})
	if err != nil {
		return Assignment{}, fmt.Errorf("sorting: assign market %s: %w", market, err)
	}
	s.applied(ctx, "market:"+market)
	return out, nil
}

var marketCode = regexp.MustCompile(`^[A-Z]{2}$`)

// applied reloads here at once, then tells the others; a lost signal is
// covered by their resync.
func (s *FlowSet) applied(ctx context.Context, msg string) {
	if err := s.Reload(ctx); err != nil {
		s.log.Warn("flows reload failed", zap.Error(err))
	}
	if s.rdb != nil {
		if err := s.rdb.Publish(ctx, s.channel, msg).Err(); err != nil {
			s.log.Warn("flow change not announced; instances pick it up at the next resync", zap.Error(err))
		}
	}
}

// Watch applies announced changes and resyncs every interval until ctx ends.
func (s *FlowSet) Watch(ctx context.Context, resync time.Duration) {
	watch(ctx, s.rdb, s.channel, resync, func(ctx context.Context) error {
		err := s.Reload(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("flows reload failed", zap.Error(err))
		}
		return err
	}, nil)
}

// watch runs reload on every signal on channel (when rdb is set) and every
// resync until ctx ends; go-redis re-subscribes by itself after a Redis
// outage, and the resync covers what was said meanwhile.
func watch(ctx context.Context, rdb *redis.Client, channel string, resync time.Duration, reload func(context.Context) error, onSignal func()) {
	var wg sync.WaitGroup
	if rdb != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := rdb.Subscribe(ctx, channel)
			defer sub.Close()
			ch := sub.Channel()
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-ch:
					if !ok {
						return
					}
					_ = reload(ctx)
					if onSignal != nil {
						onSignal()
					}
				}
			}
		}()
	}
	t := time.NewTicker(resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
			_ = reload(ctx)
		}
	}
}

// Reload reads every stored version and the market assignments and swaps
// them in at once. Versions are immutable, so one compiled before is kept
// as it is: a sort holding it is not disturbed, and only new versions cost
// a compile.
func (s *FlowSet) Reload(ctx context.Context) error {
	s.reload.Lock()
	defer s.reload.Unlock()
	rows, err := s.db.Query(ctx, `SELECT name, version, config FROM sorting_flows ORDER BY name, version`)
	if err != nil {
		return fmt.Errorf("sorting: load flows: %w", err)
	}
	type stored struct {
		name    string
		version int
		config  string
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stored, error) {
		var st stored
		err := r.Scan(&st.name, &st.version, &st.config)
		return st, err
	})
	if err != nil {
		return fmt.Errorf("sorting: load flows: %w", err)
	}
	rows, err = s.db.Query(ctx, `SELECT market, flow, version, updated_by, updated_at FROM market_flows`)
	if err != nil {
		return fmt.Errorf("sorting: load market flows: %w", err)
	}
	assigned, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Assignment])
	if err != nil {
		return fmt.Errorf("sorting: load market flows: %w", err)
	}
	s.mu.RLock()
	known := s.versions
	s.mu.RUnlock()
	versions := map[string]map[int]*Flow{}
	latest := map[string]*Flow{}
	for _, st := range all {
		f := known[st.name][st.version]
		if f == nil {
			f, err = s.compile(st.name, st.version, []byte(st.config))
			if err != nil {
				return fmt.Errorf("sorting: stored flow %s v%d no longer compiles: %w", st.name, st.version, err)
			}
		}
		if versions[st.name] == nil {
			versions[st.name] = map[int]*Flow{}
		}
		versions[st.name][st.version] = f
		latest[st.name] = f
	}
	markets := make(map[string]Assignment, len(assigned))
	for _, a := range assigned {
		markets[a.Market] = a
	}
	s.mu.Lock()
	s.versions, s.latest, s.markets = versions, latest, markets
	s.mu.Unlock()
	if s.onApply != nil {
		s.onApply()
	}
	return nil
}

// Latest is the newest version of a flow.
func (s *FlowSet) Latest(name string) (*Flow, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.latest[name]
	if !ok {
		return nil, fmt.Errorf("flow %q: %w", name, ErrNoFlow)
	}
	return f, nil
}

// Version is one stored version of a flow.
func (s *FlowSet) Version(name string, version int) (*Flow, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.versions[name][version]
	if !ok {
		return nil, fmt.Errorf("flow %q version %d: %w", name, version, ErrNoFlow)
	}
	return f, nil
}

// MarketFlow names the flow a market sorts with.
func (s *FlowSet) MarketFlow(market string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.markets[market]
	return a.Flow, ok
}

// Markets lists the market assignments.
func (s *FlowSet) Markets() []Assignment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Assignment, 0, len(s.markets))
	for _, a := range s.markets {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Market < out[j].Market })
	return out
}

// ForStation is the flow version the station's market is assigned: the
// pinned version, or the newest one.
func (s *FlowSet) ForStation(stationID string) (*Flow, error) {
	market, _, _ := strings.Cut(stationID, "-")
	s.mu.RLock()
	a, ok := s.markets[market]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("station %s (market %q): %w", stationID, market, ErrNoFlow)
	}
	if a.Version == 0 {
		return s.Latest(a.Flow)
	}
	return s.Version(a.Flow, a.Version)
}

// FlowInfo describes a stored flow version for the API.
type FlowInfo struct {
	Name     string   `json:"name"`
	Version  int      `json:"version"`
	Nodes    []string `json:"nodes"`
	Markets  []string `json:"markets,omitempty"`
	IsLatest bool     `json:"latest"`
}

// List describes every stored flow version.
func (s *FlowSet) List() []FlowInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []FlowInfo
	for name, vs := range s.versions {
		for v, f := range vs {
			// The markets sorting with this very version: pinned to it, or
			// following the newest when it is the newest.
			var markets []string
			for m, a := range s.markets {
				if a.Flow == name && (a.Version == v || (a.Version == 0 && s.latest[name] == f)) {
					markets = append(markets, m)
				}
			}
			sort.Strings(markets)
			out = append(out, FlowInfo{Name: name, Version: v, Nodes: f.Plan.Nodes(), Markets: markets, IsLatest: s.latest[name] == f})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version < out[j].Version
	})
	return out
}
