package clients

import (
	"fmt"
	"time"
)

// Service names: the keys of the configuration (downstream.<service>.addr)
// and the "service" label of the metrics.
const (
	ServiceOrderCenter = "order_center"
	ServiceBasic       = "basic"
	ServiceFinance     = "finance"
	ServiceDelivery    = "delivery"
	ServiceContainer   = "container"
	ServiceLinehaul    = "linehaul"
)

// Config is the `downstream` section of Station's configuration.
type Config struct {
	// Addr is used for every service whose own Addr is empty: the single
	// address of `station sim` (STATION_DOWNSTREAM_ADDR).
	Addr string `mapstructure:"addr" yaml:"addr"`

	OrderCenter Endpoint `mapstructure:"order_center" yaml:"order_center"`
	Basic       Endpoint `mapstructure:"basic" yaml:"basic"`
	Finance     Endpoint `mapstructure:"finance" yaml:"finance"`
	Delivery    Endpoint `mapstructure:"delivery" yaml:"delivery"`
	Container   Endpoint `mapstructure:"container" yaml:"container"`
	Linehaul    Endpoint `mapstructure:"linehaul" yaml:"linehaul"`

	// Deadlines caps each call by method name ("GetSite"); a caller's
	// earlier deadline still wins. Methods not listed use DefaultDeadlines.
	Deadlines map[string]time.Duration `mapstructure:"deadlines" yaml:"deadlines"`

	Retry   RetryConfig   `mapstructure:"retry" yaml:"retry"`
	Breaker BreakerConfig `mapstructure:"breaker" yaml:"breaker"`
	Token   TokenConfig   `mapstructure:"token" yaml:"token"`

	// DisableSiteSingleflight sends every site lookup downstream (for
	// comparison in benchmarks; leave false).
	DisableSiteSingleflight bool `mapstructure:"disable_site_singleflight" yaml:"disable_site_singleflight"`

	// Cache keeps the basic service's answers (sites, routes, service
	// areas, lane restrictions) for a few seconds.
	Cache CacheConfig `mapstructure:"cache" yaml:"cache"`
}

// CacheConfig shapes the caches in front of the basic service (master
// data: sites, routes, service areas, lane restrictions). It changes
// rarely, and Basic.ForgetSite drops a known site change at once; not-found
// answers and failures are never kept.
type CacheConfig struct {
	// TTL is how long an answer is given from memory.
	TTL time.Duration `mapstructure:"ttl" yaml:"ttl"`
	// MaxEntries bounds the answers held per kind; past it the oldest goes.
	MaxEntries int `mapstructure:"max_entries" yaml:"max_entries"`
	// Disabled sends every lookup on to singleflight and the downstream
	// (for the benchmarks' baselines; leave false).
	Disabled bool `mapstructure:"disabled" yaml:"disabled"`
}

// Endpoint is where one service answers.
type Endpoint struct {
	Addr string `mapstructure:"addr" yaml:"addr"`
}

// RetryConfig shapes retries of idempotent reads on Unavailable and
// ResourceExhausted. They run inside the call's deadline, and a budget per
// connection stops them while most calls fail (gRPC retry throttling: each
// failure costs a token, each success earns BudgetRatio back, retries stop
// below half of BudgetTokens).
type RetryConfig struct {
	// MaxAttempts includes the first (gRPC caps it at 5); 1 disables.
	MaxAttempts    int           `mapstructure:"max_attempts" yaml:"max_attempts"`
	InitialBackoff time.Duration `mapstructure:"initial_backoff" yaml:"initial_backoff"`
	MaxBackoff     time.Duration `mapstructure:"max_backoff" yaml:"max_backoff"`
	BudgetTokens   int           `mapstructure:"budget_tokens" yaml:"budget_tokens"`
	BudgetRatio    float64       `mapstructure:"budget_ratio" yaml:"budget_ratio"`
}

// BreakerConfig shapes the circuit breaker of each service. It opens after
// ConsecutiveFailures failures in a row, or when at least half of the calls
// in Window failed (MinRequests or more), stays open for OpenFor, then lets
// one trial call through.
type BreakerConfig struct {
	ConsecutiveFailures uint32        `mapstructure:"consecutive_failures" yaml:"consecutive_failures"`
	MinRequests         uint32        `mapstructure:"min_requests" yaml:"min_requests"`
	Window              time.Duration `mapstructure:"window" yaml:"window"`
	OpenFor             time.Duration `mapstructure:"open_for" yaml:"open_for"`
}

// TokenConfig is how the order center's access token is obtained and shared.
type TokenConfig struct {
	ClientID     string `mapstructure:"client_id" yaml:"client_id"`
	ClientSecret string `mapstructure:"client_secret" yaml:"client_secret"`
	// RefreshBefore is how long before expiry a token is replaced (at most
	// half its lifetime).
	RefreshBefore time.Duration `mapstructure:"refresh_before" yaml:"refresh_before"`
	// KeyPrefix prefixes the Redis keys of the shared token and its lock.
	KeyPrefix string `mapstructure:"key_prefix" yaml:"key_prefix"`
	// LockTTL bounds how long one instance may hold the refresh lock;
	// LockWait how long another waits for it before fetching on its own.
	LockTTL  time.Duration `mapstructure:"lock_ttl" yaml:"lock_ttl"`
	LockWait time.Duration `mapstructure:"lock_wait" yaml:"lock_wait"`
}

// DefaultConfig has every default; only addresses are left to set.
func DefaultConfig() Config {
	return Config{
		Retry: RetryConfig{
			MaxAttempts:    3,
			InitialBackoff: 20 * time.Millisecond,
			MaxBackoff:     200 * time.Millisecond,
			BudgetTokens:   10,
			BudgetRatio:    0.1,
		},
		Breaker: BreakerConfig{
			ConsecutiveFailures: 5,
			MinRequests:         20,
			Window:              10 * time.Second,
			OpenFor:             5 * time.Second,
		},
		Cache: CacheConfig{TTL: 5 * time.Second, MaxEntries: 4096},
		Token: TokenConfig{
			ClientID:      "station",
			RefreshBefore: 30 * time.Second,
			KeyPrefix:     "station:",
			LockTTL:       5 * time.Second,
			LockWait:      2 * time.Second,
		},
	}
}

// WithAddr returns c with one address for every service.
func (c Config) WithAddr(addr string) Config {
	c.Addr = addr
	return c
}

// Redacted returns c with secrets masked, for logging.
func (c Config) Redacted() Config {
	if c.Token.ClientSecret != "" {
		c.Token.ClientSecret = "***"
	}
	return c
}

// AddrOf is the address of a service: its own, else Addr.
func (c Config) AddrOf(service string) string {
	var e Endpoint
	switch service {
	case ServiceOrderCenter:
		e = c.OrderCenter
	case ServiceBasic:
		e = c.Basic
	case ServiceFinance:
		e = c.Finance
	case ServiceDelivery:
		e = c.Delivery
	case ServiceContainer:
		e = c.Container
	case ServiceLinehaul:
		e = c.Linehaul
	}
	if e.Addr != "" {
		return e.Addr
	}
	return c.Addr
}

// Validate reports a configuration Dial cannot use; zero numbers take their
// defaults rather than failing.
func (c Config) Validate() error {
	for _, s := range []string{ServiceOrderCenter, ServiceBasic, ServiceFinance, ServiceDelivery, ServiceContainer, ServiceLinehaul} {
		if c.AddrOf(s) == "" {
			return fmt.Errorf("clients: no address for %s: set downstream.%s.addr or downstream.addr", s, s)
		}
	}
	for m, d := range c.Deadlines {
		if _, ok := DefaultDeadlines()[m]; !ok {
			return fmt.Errorf("clients: deadline for unknown method %q", m)
		}
		if d <= 0 {
			return fmt.Errorf("clients: deadline of %s must be positive, got %v", m, d)
		}
	}
	if c.Retry.MaxAttempts > 5 || c.Retry.MaxAttempts < 0 {
		return fmt.Errorf("clients: retry.max_attempts %d: want 0..5", c.Retry.MaxAttempts)
	}
	if c.Retry.BudgetRatio < 0 || c.Retry.BudgetRatio > 1 {
		return fmt.Errorf("clients: retry.budget_ratio %v: want 0..1", c.Retry.BudgetRatio)
	}
	if c.Cache.TTL < 0 || c.Cache.TTL > time.Hour {
		return fmt.Errorf("clients: cache.ttl %v: want 0 (the default) up to 1h; a master-data change must show within the TTL", c.Cache.TTL)
	}
	if c.Cache.MaxEntries < 0 {
		return fmt.Errorf("clients: cache.max_entries %d: want 0 (the default) or more", c.Cache.MaxEntries)
	}
	return nil
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Retry.MaxAttempts == 0 {
		c.Retry.MaxAttempts = d.Retry.MaxAttempts
	}
	if c.Retry.InitialBackoff <= 0 {
		c.Retry.InitialBackoff = d.Retry.InitialBackoff
	}
	if c.Retry.MaxBackoff <= 0 {
		c.Retry.MaxBackoff = d.Retry.MaxBackoff
	}
	if c.Retry.BudgetTokens <= 0 {
		c.Retry.BudgetTokens = d.Retry.BudgetTokens
	}
	if c.Retry.BudgetRatio == 0 {
		c.Retry.BudgetRatio = d.Retry.BudgetRatio
	}
	if c.Breaker.ConsecutiveFailures == 0 {
		c.Breaker.ConsecutiveFailures = d.Breaker.ConsecutiveFailures
	}
	if c.Breaker.MinRequests == 0 {
		c.Breaker.MinRequests = d.Breaker.MinRequests
	}
	if c.Breaker.Window <= 0 {
		c.Breaker.Window = d.Breaker.Window
	}
	if c.Breaker.OpenFor <= 0 {
		c.Breaker.OpenFor = d.Breaker.OpenFor
	}
	if c.Cache.TTL <= 0 {
		c.Cache.TTL = d.Cache.TTL
	}
	if c.Cache.MaxEntries <= 0 {
		c.Cache.MaxEntries = d.Cache.MaxEntries
	}
	if c.Token.ClientID == "" {
		c.Token.ClientID = d.Token.ClientID
	}
	if c.Token.RefreshBefore <= 0 {
		c.Token.RefreshBefore = d.Token.RefreshBefore
	}
	if c.Token.KeyPrefix == "" {
		c.Token.KeyPrefix = d.Token.KeyPrefix
	}
	if c.Token.LockTTL <= 0 {
		c.Token.LockTTL = d.Token.LockTTL
	}
	if c.Token.LockWait <= 0 {
		c.Token.LockWait = d.Token.LockWait
	}
	return c
}

// DefaultDeadlines caps each method. Reads get 500 ms: seven times the
// slowest check's usual latency, room for a retry, short enough that a
// stuck dependency cannot hold a sort for long.
func DefaultDeadlines() map[string]time.Duration {
	const read = 500 * time.Millisecond
	return map[string]time.Duration{
		"GetWaybill":          read,
		"BatchGetWaybills":    2 * time.Second,
		"GetCustomerStatus":   read,
		"GetFiscalDocument":   read,
		"PushTrackingEvents":  3 * time.Second,
		"IssueToken":          2 * time.Second,
		"GetSite":             read,
		"GetRoute":            read,
		"GetRouteV2":          read,
		"CheckServiceArea":    read,
		"GetLaneRestrictions": read,
		"CheckBilling":        read,
		"CheckCODLimit":       read,
		"GetDeliveryStatus":   read,
		"ValidateAddress":     read,
		"AllocateBagID":       time.Second,
		"GetTrip":             time.Second,
	}
}
