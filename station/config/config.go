// Package config is the station's one typed configuration: defaults, loading
// from a YAML file, STATION_* environment variables and flags (in rising
// precedence, with viper), validation that names the offending key, and a
// redacted view for the start-up log. Nothing else reads the environment.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/expresshub/station/clients"
)

// Config is everything the binary can be told.
type Config struct {
	Database   Database       `mapstructure:"database"`
	Redis      Redis          `mapstructure:"redis"`
	HTTP       HTTP           `mapstructure:"http"`
	GRPC       GRPC           `mapstructure:"grpc"`
	Log        Log            `mapstructure:"log"`
	Auth       Auth           `mapstructure:"auth"`
	Shutdown   Shutdown       `mapstructure:"shutdown"`
	Downstream clients.Config `mapstructure:"downstream"`
	Sim        Sim            `mapstructure:"sim"`
	Relay      Relay          `mapstructure:"relay"`
	Release    Release        `mapstructure:"release"`
	Sorter     Sorter         `mapstructure:"sorter"`
	Lease      Lease          `mapstructure:"lease"`
	Floor      Floor          `mapstructure:"floor"`
	OTel       OTel           `mapstructure:"otel"`
	History    History        `mapstructure:"history"`
}

// Floor configures the bags under the sorter's chutes: a station without
// limits of its own (PUT /api/v1/stations/{id}/bag-limits) uses these.
type Floor struct {
	BagMaxParcels int     `mapstructure:"bag_max_parcels"` // a bag at this many parcels is "seal now" and its chute full
	BagMaxGrams   int     `mapstructure:"bag_max_grams"`   // ... or at this weight, by the parcels' waybills
	SealSoon      float64 `mapstructure:"seal_soon"`       // the share of either limit at which the floor says "seal soon"
}

// OTel configures OpenTelemetry tracing. It is off while Endpoint is empty:
// nothing is instrumented and nothing is exported.
type OTel struct {
	// Endpoint is the OTLP/gRPC collector, host:port (4317 by convention).
	Endpoint string `mapstructure:"endpoint"`
	// Insecure sends spans without TLS (a collector on the same host or
	// network segment).
	Insecure bool `mapstructure:"insecure"`
	// SampleRatio is the share of new traces kept (0..1); a request that
	// arrives with a sampled trace context is kept whatever the ratio.
	SampleRatio float64 `mapstructure:"sample_ratio"`
	// ServiceName names this process in the traces.
	ServiceName string `mapstructure:"service_name"`
}

// History configures the partitioned history tables (package history):
// daily partitions made ahead, and how long each table keeps its days.
type History struct {
	Every  time.Duration `mapstructure:"every"` // how often one instance runs the partition job; 0: never
	Ahead  int           `mapstructure:"ahead"` // days of partitions created ahead of today
	Retain Retain        `mapstructure:"retain"`
}

// Retain is each history table's retention: a day's partition is dropped
// once all of it is older than this (scan_keys: rows older than this are
// deleted).
type Retain struct {
	WorkOrders         time.Duration `mapstructure:"work_orders"`
	SortResults        time.Duration `mapstructure:"sort_results"`
	TrackingOutbox     time.Duration `mapstructure:"tracking_outbox"` // a day with an undelivered event is kept
	ParcelStateHistory time.Duration `mapstructure:"parcel_state_history"`
	ScanKeys           time.Duration `mapstructure:"scan_keys"` // idempotency keys: longer than any retry
	BeltDecisions      time.Duration `mapstructure:"belt_decisions"`
}

// Lease configures the leases of singleton jobs (package station/lease).
type Lease struct {
	TTL time.Duration `mapstructure:"ttl"` // a holder that stops renewing loses its job after this
}

// Sorter configures the sorting machine's gRPC API (the belt).
type Sorter struct {
	PresortTTL    time.Duration `mapstructure:"presort_ttl"`    // how long a pre-sorted answer is used
	SafetyMargin  time.Duration `mapstructure:"safety_margin"`  // kept back from a Resolve's deadline
	DefaultBudget time.Duration `mapstructure:"default_budget"` // a Resolve or stream message without a deadline
	Parallelism   int           `mapstructure:"parallelism"`    // concurrent sorts of one pre-sort batch
	OnTheFly      int           `mapstructure:"on_the_fly"`     // concurrent on-the-fly sorts per instance
	CacheEntries  int           `mapstructure:"cache_entries"`  // in-process cache of answers
	PerSorter     int           `mapstructure:"per_sorter"`     // calls in flight per sorter
	Global        int           `mapstructure:"global"`         // sorter calls in flight per instance
	StreamWindow  int           `mapstructure:"stream_window"`  // parcels decided at once per stream
	KeyCacheTTL   time.Duration `mapstructure:"key_cache_ttl"`  // how long a revoked key may still work
	// ConfirmMaxAhead and ConfirmMaxAge bound a Confirm's occurred_at
	// against the server clock.
	ConfirmMaxAhead time.Duration `mapstructure:"confirm_max_ahead"`
	ConfirmMaxAge   time.Duration `mapstructure:"confirm_max_age"`
	// PreSortTimeout bounds a PreSort batch whatever the call's deadline,
	// so a database that does not answer gives Unavailable, not a hang.
	PreSortTimeout time.Duration `mapstructure:"presort_timeout"`
	// DecisionBuffer bounds the belt decisions waiting to be written to
	// belt_decisions; past it a decision's record is dropped (and counted),
	// never waited for. DecisionFlush is how often they are written.
	DecisionBuffer int           `mapstructure:"decision_buffer"`
	DecisionFlush  time.Duration `mapstructure:"decision_flush"`
}

// Release configures gray release and shadow reconciliation.
type Release struct {
	Resync         time.Duration `mapstructure:"resync"`          // periodic reload, the fallback to pub/sub
	MinMatchRate   float64       `mapstructure:"min_match_rate"`  // guard on raising a ratio
	MinComparisons int           `mapstructure:"min_comparisons"` // guard: comparisons needed
	GuardWindow    time.Duration `mapstructure:"guard_window"`    // guard: how recent
	ShadowBudget   int           `mapstructure:"shadow_budget"`   // shadow runs in flight at most
	ShadowDeadline time.Duration `mapstructure:"shadow_deadline"` // one shadow run at most
	NoiseEvery     int           `mapstructure:"noise_every"`     // old-vs-old check on 1 in N shadows
	OfflineEvery   time.Duration `mapstructure:"offline_every"`   // scheduled offline reconciliation; 0: off
	OfflineWindow  time.Duration `mapstructure:"offline_window"`  // stored sorts it re-runs: this far back
	RampEvery      time.Duration `mapstructure:"ramp_every"`      // how often the singleton ramp job judges running ramps; 0: off
	Ramp           Ramp          `mapstructure:"ramp"`            // defaults of a rule's schedule
}

// Ramp is the default schedule and guards of a guarded ramp; a rule's own
// ramp overrides any of them.
type Ramp struct {
	StepsBP         []int         `mapstructure:"steps_bp"`         // split ratios in basis points, ascending
	MinStepTime     time.Duration `mapstructure:"min_step_time"`    // T: at least this long on each step
	MinComparisons  int           `mapstructure:"min_comparisons"`  // N: shadow comparisons on each step
	MinMatchRate    float64       `mapstructure:"min_match_rate"`   // guard
	ExceptionMargin float64       `mapstructure:"exception_margin"` // guard: candidate's exception-chute rate - stable's
	NoChuteMargin   float64       `mapstructure:"no_chute_margin"`  // guard: candidate's NO_CHUTE rate - stable's
	MaxP99Ratio     float64       `mapstructure:"max_p99_ratio"`    // guard: candidate's sort p99 / stable's
	MinSamples      int           `mapstructure:"min_samples"`      // sorts per flow before the rate and p99 guards judge
	OnBreach        string        `mapstructure:"on_breach"`        // off or previous
}

type Database struct {
	URL            string        `mapstructure:"url"`
	MaxConns       int32         `mapstructure:"max_conns"`
	AcquireTimeout time.Duration `mapstructure:"acquire_timeout"`
	// StartupWait is how long serve keeps trying a database that does not
	// answer at start-up (0: it fails at once).
	StartupWait time.Duration `mapstructure:"startup_wait"`
}

type Redis struct {
	Addr     string `mapstructure:"addr"`
	Password string `mapstructure:"password"`
	DB       int    `mapstructure:"db"`
	Prefix   string `mapstructure:"prefix"`
}

type HTTP struct {
	Addr              string        `mapstructure:"addr"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	// RequestTimeout is every request's server-side deadline, which reaches
	// the database: below WriteTimeout, so the answer still goes out.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	MaxBodyBytes   int64         `mapstructure:"max_body_bytes"`
}

type GRPC struct {
	Addr string `mapstructure:"addr"`
	// TLS: a certificate and key serve TLS; a client CA also requires and
	// verifies client certificates (mTLS). All empty: plaintext.
	TLSCert  string `mapstructure:"tls_cert"`
	TLSKey   string `mapstructure:"tls_key"`
	ClientCA string `mapstructure:"client_ca"`
	// ConnectionTimeout bounds a new connection's set-up, HTTP/2 preface
	// included: a client that connects and never speaks is dropped.
	ConnectionTimeout time.Duration `mapstructure:"connection_timeout"`
}

type Log struct {
	Format string `mapstructure:"format"` // json | console
	Level  string `mapstructure:"level"`  // debug | info | warn | error
}

type Auth struct {
	TokenTTL          time.Duration `mapstructure:"token_ttl"`
	LoginPerMinute    int           `mapstructure:"login_per_minute"`
	RequestsPerSecond int           `mapstructure:"requests_per_second"` // per operator
	// TerminalRequestsPerSecond limits each terminal named at login,
	// shared by whoever is logged in on it.
	TerminalRequestsPerSecond int `mapstructure:"terminal_requests_per_second"`
	BcryptCost                int `mapstructure:"bcrypt_cost"`
}

type Shutdown struct {
	Grace time.Duration `mapstructure:"grace"`
}

// Sim configures the downstream simulator run by `station sim` and `dev`.
type Sim struct {
	Addr    string `mapstructure:"addr"`
	Seed    int64  `mapstructure:"seed"`
	Latency string `mapstructure:"latency"` // default | zero
}

type Relay struct {
	BatchSize   int           `mapstructure:"batch_size"`
	Interval    time.Duration `mapstructure:"interval"`
	MaxAttempts int           `mapstructure:"max_attempts"`
	// Sink is where events go: grpc (the order center's PushTrackingEvents),
	// jetstream or kafka (a broker the order center consumes from).
	Sink      string         `mapstructure:"sink"`
	JetStream RelayJetStream `mapstructure:"jetstream"`
	Kafka     RelayKafka     `mapstructure:"kafka"`
}

// RelayJetStream configures the jetstream sink.
type RelayJetStream struct {
	URL           string        `mapstructure:"url"`
	Stream        string        `mapstructure:"stream"`
	SubjectPrefix string        `mapstructure:"subject_prefix"` // subjects are <prefix>.<station id>
	DedupWindow   time.Duration `mapstructure:"dedup_window"`   // longer than the relay's retry horizon
}

// RelayKafka configures the kafka sink.
type RelayKafka struct {
	Brokers string `mapstructure:"brokers"` // comma-separated host:port
	Topic   string `mapstructure:"topic"`
}

// Relay sinks.
const (
	SinkGRPC      = "grpc"
	SinkJetStream = "jetstream"
	SinkKafka     = "kafka"
)

// Defaults are the embedded defaults `make run` works with.
func Defaults() Config {
	return Config{
		Database: Database{
			URL:            "postgres://postgres@localhost:5432/station?sslmode=disable",
			MaxConns:       20,
			AcquireTimeout: 2 * time.Second,
			StartupWait:    30 * time.Second,
		},
		Redis: Redis{Addr: "localhost:6379", Prefix: "station:"},
		HTTP: HTTP{
			Addr:              ":8080",
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			RequestTimeout:    10 * time.Second,
			MaxBodyBytes:      1 << 20,
		},
		GRPC:       GRPC{Addr: ":9090", ConnectionTimeout: 5 * time.Second},
		Log:        Log{Format: "json", Level: "info"},
		Auth:       Auth{TokenTTL: 12 * time.Hour, LoginPerMinute: 10, RequestsPerSecond: 50, TerminalRequestsPerSecond: 50, BcryptCost: 10},
		Shutdown:   Shutdown{Grace: 15 * time.Second},
		Sim:        Sim{Addr: "127.0.0.1:9191", Seed: 1, Latency: "default"},
		Downstream: clients.DefaultConfig().WithAddr("127.0.0.1:9191"), // where `station dev` runs the simulator
		Relay: Relay{BatchSize: 500, Interval: 200 * time.Millisecond, MaxAttempts: 10,
			Sink:      SinkGRPC,
			JetStream: RelayJetStream{URL: "nats://127.0.0.1:4222", Stream: "TRACKING", SubjectPrefix: "tracking", DedupWindow: 2 * time.Hour},
			Kafka:     RelayKafka{Brokers: "127.0.0.1:9092", Topic: "tracking-events"}},
		Sorter: Sorter{PresortTTL: 12 * time.Hour, SafetyMargin: 20 * time.Millisecond, DefaultBudget: 150 * time.Millisecond,
			Parallelism: 64, OnTheFly: 256, CacheEntries: 200000, PerSorter: 64, Global: 1024, StreamWindow: 64,
			KeyCacheTTL: 30 * time.Second, ConfirmMaxAhead: 5 * time.Minute, ConfirmMaxAge: 7 * 24 * time.Hour,
			PreSortTimeout: 30 * time.Second, DecisionBuffer: 65536, DecisionFlush: time.Second},
		Release: Release{Resync: 5 * time.Second, MinMatchRate: 0.999, MinComparisons: 1000, GuardWindow: 24 * time.Hour,
			ShadowBudget: 64, ShadowDeadline: time.Second, NoiseEvery: 20, OfflineEvery: time.Hour, OfflineWindow: 24 * time.Hour,
			RampEvery: 5 * time.Second, Ramp: Ramp{StepsBP: []int{100, 500, 2500, 10000}, MinStepTime: 10 * time.Minute,
				MinComparisons: 1000, MinMatchRate: 0.999, ExceptionMargin: 0.005, NoChuteMargin: 0.002, MaxP99Ratio: 1.5,
				MinSamples: 200, OnBreach: "off"}},
		Lease: Lease{TTL: 30 * time.Second},
		Floor: Floor{BagMaxParcels: 60, BagMaxGrams: 25_000, SealSoon: 0.9},
		OTel:  OTel{SampleRatio: 1, ServiceName: "station"},
		History: History{Every: time.Hour, Ahead: 7, Retain: Retain{WorkOrders: 90 * 24 * time.Hour,
			SortResults: 90 * 24 * time.Hour, TrackingOutbox: 3 * 24 * time.Hour, ParcelStateHistory: 90 * 24 * time.Hour,
			ScanKeys: 30 * 24 * time.Hour, BeltDecisions: 14 * 24 * time.Hour}},
	}
}

// FieldError names the configuration key that is wrong and why.
type FieldError struct {
	Key    string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Reason) }

// ErrInvalid is wrapped by every validation failure.
var ErrInvalid = errors.New("invalid configuration")

// Load reads the configuration: defaults, then the YAML file named by the
// --config flag or STATION_CONFIG (if any), then STATION_* variables, then the
// flags that were set. env is the process environment as KEY=VALUE pairs.
func Load(flags *pflag.FlagSet, env []string) (Config, error) {
	v := viper.New()
	def := Defaults()
	var asMap map[string]any
	if err := mapstructure.Decode(def, &asMap); err != nil {
		return Config{}, err
	}
	for _, key := range leafKeys("", reflect.TypeOf(def)) {
		v.SetDefault(key, lookup(asMap, key))
	}

	envMap := map[string]string{}
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok {
			envMap[k] = val
		}
	}
	file := envMap["STATION_CONFIG"]
	if flags != nil {
		if f := flags.Lookup("config"); f != nil && f.Changed {
			file = f.Value.String()
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("%w: %w", ErrInvalid, &FieldError{Key: "config", Reason: err.Error()})
		}
	}
	for _, key := range leafKeys("", reflect.TypeOf(def)) {
		name := "STATION_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		if val, ok := envMap[name]; ok {
			v.Set(key, val)
		}
	}
	if flags != nil {
		flags.VisitAll(func(f *pflag.Flag) {
			key := strings.ReplaceAll(f.Name, "-", "_")
			if k, ok := flagKeys[f.Name]; ok {
				key = k
			}
			if f.Changed && v.IsSet(key) {
				v.Set(key, f.Value.String())
			}
		})
	}

	var cfg Config
	for _, key := range leafKeys("", reflect.TypeOf(def)) {
		if err := decodeKey(v, key, &cfg); err != nil {
			return Config{}, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// flagKeys maps the command-line flags to configuration keys.
var flagKeys = map[string]string{
	"database-url":    "database.url",
	"redis-addr":      "redis.addr",
	"http-addr":       "http.addr",
	"grpc-addr":       "grpc.addr",
	"log-format":      "log.format",
	"downstream-addr": "downstream.addr",
	"sim-addr":        "sim.addr",
}

// Flags registers the flags Load understands on fs.
func Flags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML configuration file (also STATION_CONFIG)")
	fs.String("database-url", "", "PostgreSQL URL (STATION_DATABASE_URL)")
	fs.String("redis-addr", "", "Redis host:port (STATION_REDIS_ADDR)")
	fs.String("http-addr", "", "HTTP listen address (STATION_HTTP_ADDR)")
	fs.String("grpc-addr", "", "gRPC listen address (STATION_GRPC_ADDR)")
	fs.String("log-format", "", "json or console (STATION_LOG_FORMAT)")
	fs.String("downstream-addr", "", "one address for all downstream services (STATION_DOWNSTREAM_ADDR)")
	fs.String("sim-addr", "", "simulator listen address (STATION_SIM_ADDR)")
}

// decodeKey decodes one key into cfg so a bad value is reported with its key.
func decodeKey(v *viper.Viper, key string, cfg *Config) error {
	nested := map[string]any{}
	cur := nested
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		next := map[string]any{}
		cur[p] = next
		cur = next
	}
	cur[parts[len(parts)-1]] = v.Get(key)
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           cfg,
		WeaklyTypedInput: true,
		DecodeHook:       mapstructure.StringToTimeDurationHookFunc(),
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(nested); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, &FieldError{Key: key, Reason: fmt.Sprintf("cannot parse %q", fmt.Sprint(v.Get(key)))})
	}
	return nil
}

func leafKeys(prefix string, t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("mapstructure")
		if prefix != "" {
			name = prefix + "." + name
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			keys = append(keys, leafKeys(name, f.Type)...)
			continue
		}
		keys = append(keys, name)
	}
	return keys
}

func lookup(m map[string]any, key string) any {
	parts := strings.Split(key, ".")
	var cur any = m
	for _, p := range parts {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// Validate checks every value and returns the first problem, naming its key.
func (c Config) Validate() error {
	bad := func(key, reason string) error {
		return fmt.Errorf("%w: %w", ErrInvalid, &FieldError{Key: key, Reason: reason})
	}
	if _, err := pgxpool.ParseConfig(c.Database.URL); err != nil || c.Database.URL == "" {
		return bad("database.url", "not a PostgreSQL URL")
	}
	if c.Database.MaxConns < 1 {
		return bad("database.max_conns", "must be at least 1")
	}
	if c.Database.AcquireTimeout <= 0 {
		return bad("database.acquire_timeout", "must be positive")
	}
	if c.Database.StartupWait < 0 {
		return bad("database.startup_wait", "must be 0 or more")
	}
	for key, addr := range map[string]string{"redis.addr": c.Redis.Addr, "http.addr": c.HTTP.Addr, "grpc.addr": c.GRPC.Addr, "sim.addr": c.Sim.Addr} {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return bad(key, fmt.Sprintf("%q is not host:port", addr))
		}
	}
	if c.Downstream.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Downstream.Addr); err != nil {
			return bad("downstream.addr", fmt.Sprintf("%q is not host:port", c.Downstream.Addr))
		}
	}
	if err := c.Downstream.Validate(); err != nil {
		return bad("downstream", err.Error())
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		return bad("log.format", fmt.Sprintf("%q is not json or console", c.Log.Format))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", fmt.Sprintf("%q is not debug, info, warn or error", c.Log.Level))
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		return bad("http.max_body_bytes", "must be at least 1024")
	}
	for key, d := range map[string]time.Duration{
		"http.read_header_timeout": c.HTTP.ReadHeaderTimeout, "http.read_timeout": c.HTTP.ReadTimeout,
		"http.write_timeout": c.HTTP.WriteTimeout, "http.idle_timeout": c.HTTP.IdleTimeout,
		"auth.token_ttl": c.Auth.TokenTTL, "shutdown.grace": c.Shutdown.Grace, "relay.interval": c.Relay.Interval,
		"grpc.connection_timeout": c.GRPC.ConnectionTimeout, "http.request_timeout": c.HTTP.RequestTimeout,
	} {
		if d <= 0 {
			return bad(key, "must be a positive duration such as 15s")
		}
	}
	if c.HTTP.RequestTimeout >= c.HTTP.WriteTimeout {
		return bad("http.request_timeout", "must be below http.write_timeout, so that the answer can still be written")
	}
	if c.OTel.SampleRatio < 0 || c.OTel.SampleRatio > 1 {
		return bad("otel.sample_ratio", "must be between 0 and 1")
	}
	if c.OTel.Endpoint != "" {
		if _, port, err := net.SplitHostPort(c.OTel.Endpoint); err != nil || port == "" {
			return bad("otel.endpoint", fmt.Sprintf("%q is not host:port", c.OTel.Endpoint))
		}
	}
	if c.Auth.BcryptCost < 4 || c.Auth.BcryptCost > 16 {
		return bad("auth.bcrypt_cost", "must be between 4 and 16")
	}
	if c.Auth.LoginPerMinute < 1 {
		return bad("auth.login_per_minute", "must be at least 1")
	}
	if c.Auth.RequestsPerSecond < 1 {
		return bad("auth.requests_per_second", "must be at least 1")
	}
	if c.Auth.TerminalRequestsPerSecond < 1 {
		return bad("auth.terminal_requests_per_second", "must be at least 1")
	}
	if c.Relay.BatchSize < 1 || c.Relay.BatchSize > 10000 {
		return bad("relay.batch_size", "must be between 1 and 10000")
	}
	if c.Release.MinMatchRate < 0 || c.Release.MinMatchRate > 1 {
		return bad("release.min_match_rate", "must be between 0 and 1")
	}
	if r := c.Release.Ramp; len(r.StepsBP) == 0 || !slices.IsSorted(r.StepsBP) || r.StepsBP[0] < 1 || r.StepsBP[len(r.StepsBP)-1] > 10000 ||
		r.MinStepTime < 0 || r.MinComparisons < 1 || r.MinSamples < 1 || r.MinMatchRate <= 0 || r.MinMatchRate > 1 ||
		r.ExceptionMargin < 0 || r.NoChuteMargin < 0 || r.MaxP99Ratio < 1 || (r.OnBreach != "off" && r.OnBreach != "previous") {
		return bad("release.ramp", "steps_bp ascending within 1..10000; min_comparisons, min_samples at least 1; min_match_rate in (0, 1]; margins at least 0; max_p99_ratio at least 1; on_breach off or previous")
	}
	if c.Release.RampEvery < 0 {
		return bad("release.ramp_every", "must be at least 0 (0: off)")
	}
	if c.Release.MinComparisons < 1 || c.Release.ShadowBudget < 1 || c.Release.NoiseEvery < 0 {
		return bad("release", "min_comparisons and shadow_budget must be at least 1, noise_every at least 0")
	}
	for key, d := range map[string]time.Duration{"release.resync": c.Release.Resync, "release.guard_window": c.Release.GuardWindow, "release.shadow_deadline": c.Release.ShadowDeadline} {
		if d <= 0 {
			return bad(key, "must be a positive duration")
		}
	}
	if c.Relay.MaxAttempts < 1 {
		return bad("relay.max_attempts", "must be at least 1")
	}
	switch c.Relay.Sink {
	case SinkGRPC:
	case SinkJetStream:
		if c.Relay.JetStream.URL == "" || c.Relay.JetStream.Stream == "" || c.Relay.JetStream.SubjectPrefix == "" {
			return bad("relay.jetstream", "url, stream and subject_prefix are required with relay.sink jetstream")
		}
		if c.Relay.JetStream.DedupWindow <= 0 {
			return bad("relay.jetstream.dedup_window", "must be a positive duration, longer than the relay's retry horizon")
		}
	case SinkKafka:
		if strings.TrimSpace(c.Relay.Kafka.Brokers) == "" || c.Relay.Kafka.Topic == "" {
			return bad("relay.kafka", "brokers and topic are required with relay.sink kafka")
		}
	default:
		return bad("relay.sink", fmt.Sprintf("%q is not grpc, jetstream or kafka", c.Relay.Sink))
	}
	if err := c.History.validate(bad); err != nil {
		return err
	}
	for key, d := range map[string]time.Duration{"history.every": c.History.Every, "release.offline_every": c.Release.OfflineEvery} {
		if d < 0 {
			return bad(key, "must be 0 (off) or a positive duration")
		}
	}
	for key, d := range map[string]time.Duration{"release.offline_window": c.Release.OfflineWindow} {
		if d <= 0 {
			return bad(key, "must be a positive duration")
		}
	}
	if c.Lease.TTL < time.Second {
		return bad("lease.ttl", "must be at least 1s")
	}
	if c.Floor.BagMaxParcels <= 0 || c.Floor.BagMaxGrams <= 0 {
		return bad("floor.bag_max_parcels", "bag limits must be positive")
	}
	if c.Floor.SealSoon <= 0 || c.Floor.SealSoon > 1 {
		return bad("floor.seal_soon", "must be above 0 and at most 1")
	}
	if err := c.Sorter.validate(bad); err != nil {
		return err
	}
	if (c.GRPC.TLSCert == "") != (c.GRPC.TLSKey == "") || (c.GRPC.ClientCA != "" && c.GRPC.TLSCert == "") {
		return bad("grpc.tls_cert", "tls_cert and tls_key go together, and client_ca needs them")
	}
	switch c.Sim.Latency {
	case "default", "zero":
	default:
		return bad("sim.latency", fmt.Sprintf("%q is not default or zero", c.Sim.Latency))
	}
	return nil
}

// Redacted returns a copy safe to log: passwords in URLs and Redis are masked.
func (c Config) Redacted() Config {
	out := c
	out.Database.URL = RedactURL(c.Database.URL)
	out.Relay.JetStream.URL = RedactURL(c.Relay.JetStream.URL)
	out.Downstream = c.Downstream.Redacted()
	if out.Redis.Password != "" {
		out.Redis.Password = "xxxxx"
	}
	return out
}

// RedactURL masks the password of a URL, and of a key=value DSN.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		return u.String()
	}
	if strings.Contains(raw, "password=") {
		fields := strings.Fields(raw)
		for i, f := range fields {
			if strings.HasPrefix(f, "password=") {
				fields[i] = "password=xxxxx"
			}
		}
		return strings.Join(fields, " ")
	}
	return raw
}

// Environ is os.Environ, named so main passes it explicitly.
func Environ() []string { return os.Environ() }

func (s Sorter) validate(bad func(key, reason string) error) error {
	for key, d := range map[string]time.Duration{"sorter.presort_ttl": s.PresortTTL, "sorter.default_budget": s.DefaultBudget,
		"sorter.key_cache_ttl": s.KeyCacheTTL, "sorter.confirm_max_ahead": s.ConfirmMaxAhead, "sorter.confirm_max_age": s.ConfirmMaxAge,
		"sorter.presort_timeout": s.PreSortTimeout, "sorter.decision_flush": s.DecisionFlush} {
		if d <= 0 {
			return bad(key, "must be a positive duration")
		}
	}
	if s.SafetyMargin < 0 || s.SafetyMargin >= s.DefaultBudget {
		return bad("sorter.safety_margin", "must be at least 0 and below sorter.default_budget")
	}
	for key, n := range map[string]int{"sorter.parallelism": s.Parallelism, "sorter.on_the_fly": s.OnTheFly,
		"sorter.cache_entries": s.CacheEntries, "sorter.per_sorter": s.PerSorter, "sorter.global": s.Global,
		"sorter.stream_window": s.StreamWindow, "sorter.decision_buffer": s.DecisionBuffer} {
		if n < 1 {
			return bad(key, "must be at least 1")
		}
	}
	return nil
}

// validate checks the retentions: every table keeps at least a day (the
// day being written is never dropped), and a scan key never outlives its
// work order (a replay would find a key naming nothing).
func (h History) validate(bad func(key, reason string) error) error {
	if h.Ahead < 1 {
		return bad("history.ahead", "must be at least 1 day")
	}
	for key, d := range map[string]time.Duration{"history.retain.work_orders": h.Retain.WorkOrders,
		"history.retain.sort_results": h.Retain.SortResults, "history.retain.tracking_outbox": h.Retain.TrackingOutbox,
		"history.retain.parcel_state_history": h.Retain.ParcelStateHistory, "history.retain.scan_keys": h.Retain.ScanKeys,
		"history.retain.belt_decisions": h.Retain.BeltDecisions} {
		if d < 24*time.Hour {
			return bad(key, "must be at least 24h")
		}
	}
	if h.Retain.ScanKeys > h.Retain.WorkOrders {
		return bad("history.retain.scan_keys", "must not be longer than history.retain.work_orders")
	}
	return nil
}
