package sorting

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"gopkg.in/yaml.v3"

	"github.com/expresshub/station/dag"
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
// each market sorts with. Publishing a version swaps it in atomically; a sort
// in flight finishes on the plan it started with.
type FlowSet struct {
	db       *pgxpool.Pool
	registry *dag.Registry
	markets  map[string]string

	mu       sync.RWMutex
	versions map[string]map[int]*Flow // name -> version -> flow
	latest   map[string]*Flow
}

// NewFlowSet builds the step registry over d and chutes, stores the shipped
// flow files as new versions where they changed, and compiles every version.
func NewFlowSet(ctx context.Context, db *pgxpool.Pool, d Downstream, chutes *ChuteStore) (*FlowSet, error) {
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
	s := &FlowSet{db: db, registry: reg, markets: markets, versions: map[string]map[int]*Flow{}, latest: map[string]*Flow{}}
	if err := s.storeShipped(ctx); err != nil {
		return nil, err
	}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	for market, name := range markets {
		if _, ok := s.latest[name]; !ok {
			return nil, fmt.Errorf("sorting: market %s uses unknown flow %q", market, name)
		}
	}
	return s, nil
}

// storeShipped inserts each shipped flow file as a new version when its
// content differs from the newest stored version. Concurrent instances
// starting together are serialised by a transaction-scoped advisory lock.
func (s *FlowSet) storeShipped(ctx context.Context) error {
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
			if _, err := s.AddVersionTx(ctx, tx, cfg.Name, src, "shipped"); err != nil && !errors.Is(err, errUnchanged) {
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

// Reload compiles every stored version and swaps the set in at once.
func (s *FlowSet) Reload(ctx context.Context) error {
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
	versions := map[string]map[int]*Flow{}
	latest := map[string]*Flow{}
	for _, st := range all {
		f, err := s.compile(st.name, st.version, []byte(st.config))
		if err != nil {
			return fmt.Errorf("sorting: stored flow %s v%d no longer compiles: %w", st.name, st.version, err)
		}
		if versions[st.name] == nil {
			versions[st.name] = map[int]*Flow{}
		}
		versions[st.name][st.version] = f
		latest[st.name] = f
	}
	s.mu.Lock()
	s.versions, s.latest = versions, latest
	s.mu.Unlock()
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
	name, ok := s.markets[market]
	return name, ok
}

// ForStation is the newest version of the flow of the station's market.
func (s *FlowSet) ForStation(stationID string) (*Flow, error) {
	market, _, _ := strings.Cut(stationID, "-")
	name, ok := s.markets[market]
	if !ok {
		return nil, fmt.Errorf("station %s (market %q): %w", stationID, market, ErrNoFlow)
	}
	return s.Latest(name)
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
		var markets []string
		for m, n := range s.markets {
			if n == name {
				markets = append(markets, m)
			}
		}
		sort.Strings(markets)
		for v, f := range vs {
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
