// Package app wires one station process from its configuration: it builds
// every dependency once by explicit constructor, starts the HTTP and gRPC
// servers and the background workers, and shuts them down in reverse order.
// main and the end-to-end tests both start a station through it, so what the
// tests exercise is exactly what runs.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/migrations"
	"github.com/expresshub/station/packing"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/belt"
	"github.com/expresshub/station/sorting/belt/decisionlog"
	"github.com/expresshub/station/sorting/whatif"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/floor"
	"github.com/expresshub/station/station/grpcserver"
	"github.com/expresshub/station/station/httpapi"
	"github.com/expresshub/station/station/lease"
	"github.com/expresshub/station/station/ratelimit"
	"github.com/expresshub/station/station/relay"
	"github.com/expresshub/station/station/sorterapi"
	"github.com/expresshub/station/workorder"
)

// Options adjust how a station starts.
type Options struct {
	Migrate bool // apply pending migrations before serving
	// HTTPListener and GRPCListener, when set, are used instead of listening
	// on the configured addresses (tests pass 127.0.0.1:0 listeners).
	HTTPListener net.Listener
	GRPCListener net.Listener
	// Ready, when set, receives the bound addresses once both servers accept.
	Ready func(httpAddr, grpcAddr string)
	// TracerProvider, when set, is used instead of the one otel.* would
	// build (tests pass one with an in-memory exporter); the caller shuts
	// it down.
	TracerProvider trace.TracerProvider
}

// App is one running station process.
type App struct {
	cfg       config.Config
	log       *zap.Logger
	opts      Options
	db        *pgxpool.Pool
	rdb       *redis.Client
	registry  *prometheus.Registry
	auth      *auth.Service
	clients   *clients.Set
	sorting   *sorting.Service
	releases  *sorting.Releases
	shadow    *sorting.Shadow
	packing   *packing.Service
	relay     *relay.Relay
	leases    *lease.Holder
	http      *httpapi.Server
	grpc      *grpcserver.Server
	belt      *belt.Service
	floorHub  *floor.Hub
	floor     *floor.Floor
	sorters   *auth.Sorters
	sorterAPI *sorterapi.Server
	decisions *decisionlog.Recorder
	// The HTTP server listens from the start of New, on front, which
	// answers the probes while the database is awaited; Run puts the API
	// behind it.
	httpLis  net.Listener
	httpSrv  *http.Server
	front    *frontDoor
	httpErrs chan error
	tracer   trace.TracerProvider // nil: tracing is off
	closers  []func()
}

// New connects to PostgreSQL and Redis and builds every component. It does
// not start serving; Run does.
func New(ctx context.Context, cfg config.Config, log *zap.Logger, opts Options) (*App, error) {
	a := &App{cfg: cfg, log: log, opts: opts, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The tracer provider comes first and is shut down last, after every
	// part that makes spans has stopped, so its last spans are flushed.
	if err := a.startTracing(ctx); err != nil {
		return nil, err
	}
	// HTTP listens before the database is awaited: the platform sees a
	// live process that is not ready yet, not a port that refuses.
	if err := a.listenHTTP(); err != nil {
		return nil, err
	}
	db, err := openWhenUp(ctx, cfg.Database, a.pgxTracer(), log)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.db = db
	a.closers = append(a.closers, db.Close)

	if opts.Migrate {
		if err := MigrateUp(ctx, db, log); err != nil {
			a.Close()
			return nil, err
		}
	}

	a.rdb = redis.NewClient(&redis.Options{
		Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB,
		DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
	})
	a.closers = append(a.closers, func() { _ = a.rdb.Close() })
	if err := a.traceRedis(); err != nil {
		a.Close()
		return nil, err
	}

	a.auth = auth.NewService(db, cfg.Auth.TokenTTL, auth.WithBcryptCost(cfg.Auth.BcryptCost))
	limiter := ratelimit.New(a.rdb, cfg.Redis.Prefix)

	migrator, closeMigrator, err := migrations.FromPool(db)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.closers = append(a.closers, func() { _ = closeMigrator() })

	a.clients, err = clients.Dial(ctx, cfg.Downstream, clients.Options{
		Registerer:  a.registry,
		Redis:       a.rdb,
		Logger:      slog.New(zapslog.NewHandler(log.Named("clients").Core())),
		DialOptions: a.grpcClientTracing(),
	})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("downstream clients: %w", err)
	}
	a.closers = append(a.closers, func() { _ = a.clients.Close() })

	dagMetrics, err := dag.NewMetrics(a.registry)
	if err != nil {
		a.Close()
		return nil, err
	}
	chutes := sorting.NewChuteStore(db, 2*time.Second, sorting.WithSiteCheck(a.clients.Basic))
	flows, err := sorting.NewFlowSet(ctx, db, sorting.Clients(a.clients), chutes, sorting.WithSignals(a.rdb, cfg.Redis.Prefix, log.Named("flows")))
	if err != nil {
		a.Close()
		return nil, err
	}
	rc := cfg.Release.Ramp
	a.releases = sorting.NewReleases(db, a.rdb, cfg.Redis.Prefix, flows, sorting.GuardConfig{
		MinMatchRate: cfg.Release.MinMatchRate, MinComparisons: cfg.Release.MinComparisons, Window: cfg.Release.GuardWindow,
	}, log.Named("release"), sorting.WithRamp(sorting.Ramp{StepsBP: rc.StepsBP, MinStepTime: sorting.Duration(rc.MinStepTime),
		MinComparisons: rc.MinComparisons, MinMatchRate: rc.MinMatchRate, ExceptionDelta: rc.ExceptionMargin,
		NoChuteDelta: rc.NoChuteMargin, MaxP99Ratio: rc.MaxP99Ratio, MinSamples: rc.MinSamples, OnBreach: rc.OnBreach}, a.registry))
	ruleVersion := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "station_release_rule_version", Help: "Release rule version this instance applies, by site.",
	}, []string{"site"})
	a.registry.MustRegister(ruleVersion)
	a.releases.OnApply(func(site string, version int) { ruleVersion.WithLabelValues(site).Set(float64(version)) })
	if err := a.releases.Load(ctx); err != nil {
		a.Close()
		return nil, err
	}
	// One router chooses and runs the flows for terminals, shadow runs and
	// the belt; each part is built once, with what it needs.
	router := sorting.NewRouter(flows, chutes, dagMetrics, a.releases)
	a.shadow = sorting.NewShadow(router, db, sorting.ShadowConfig{
		Budget: cfg.Release.ShadowBudget, Deadline: cfg.Release.ShadowDeadline, NoiseEvery: cfg.Release.NoiseEvery,
	}, log.Named("shadow"), a.registry)
	// Bags come first: the belt's confirms fill the bags under chutes, and
	// the floor hears of every change.
	a.packing = packing.New(db, a.clients.Container, a.clients.Linehaul,
		packing.WithBagLimits(packing.BagLimits{MaxParcels: cfg.Floor.BagMaxParcels, MaxGrams: cfg.Floor.BagMaxGrams, SealSoon: cfg.Floor.SealSoon}))
	a.floorHub = floor.NewHub(a.rdb, cfg.Redis.Prefix, log.Named("floor"))
	// The sorting machine: the belt's answers and the machines' keys.
	a.belt = belt.New(router, db, a.rdb, belt.Config{
		Bags: floor.Bags{Packing: a.packing}, OnFloorChange: a.floorHub.Changed,
		TTL: cfg.Sorter.PresortTTL, SafetyMargin: cfg.Sorter.SafetyMargin, DefaultBudget: cfg.Sorter.DefaultBudget,
		Parallelism: cfg.Sorter.Parallelism, OnTheFly: cfg.Sorter.OnTheFly, CacheEntries: cfg.Sorter.CacheEntries,
		ConfirmMaxAhead: cfg.Sorter.ConfirmMaxAhead, ConfirmMaxAge: cfg.Sorter.ConfirmMaxAge,
		RedisPrefix: cfg.Redis.Prefix, Log: slog.New(zapslog.NewHandler(log.Named("belt").Core())), Registerer: a.registry,
	})
	a.sorting = sorting.NewService(db, router, a.shadow, a.belt)
	a.sorters = auth.NewSorters(db, cfg.Sorter.KeyCacheTTL)
	// Each belt decision's latency, lateness and source: recorded in memory
	// on the belt's path, written in batches by a worker.
	a.decisions = decisionlog.New(db, decisionlog.Config{
		Buffer: cfg.Sorter.DecisionBuffer, FlushEvery: cfg.Sorter.DecisionFlush,
		SafetyMargin: cfg.Sorter.SafetyMargin, DefaultBudget: cfg.Sorter.DefaultBudget,
		Log: slog.New(zapslog.NewHandler(log.Named("decisions").Core())), Registerer: a.registry,
	})
	a.sorterAPI = sorterapi.New(a.belt, a.decisions, sorterapi.Config{
		PerSorter: cfg.Sorter.PerSorter, Global: cfg.Sorter.Global, StreamWindow: cfg.Sorter.StreamWindow,
		StreamBudget: cfg.Sorter.DefaultBudget, SafetyMargin: cfg.Sorter.SafetyMargin, PreSortTimeout: cfg.Sorter.PreSortTimeout,
	}, log.Named("sorterapi"))
	a.floor = floor.New(db, a.belt, a.packing, chutes, a.floorHub, a.registry)
	relayCfg := relay.Config{
		BatchSize:   cfg.Relay.BatchSize,
		Interval:    cfg.Relay.Interval,
		MaxAttempts: cfg.Relay.MaxAttempts,
	}
	sink, err := a.trackingSink(ctx, relayCfg)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.relay = relay.New(db, sink, relayCfg, log.Named("relay"), a.registry, relay.WithTracerProvider(a.tracer))
	a.leases = lease.NewHolder(db, lease.Options{Registerer: a.registry, Log: log.Named("lease")})

	a.http = httpapi.New(httpapi.Config{
		MaxBodyBytes:              cfg.HTTP.MaxBodyBytes,
		LoginPerMinute:            cfg.Auth.LoginPerMinute,
		RequestsPerSecond:         cfg.Auth.RequestsPerSecond,
		TerminalRequestsPerSecond: cfg.Auth.TerminalRequestsPerSecond,
		RequestTimeout:            cfg.HTTP.RequestTimeout,
	}, httpapi.Deps{
		Log:       log,
		Auth:      a.auth,
		Limiter:   limiter,
		Registry:  a.registry,
		Sorting:   a.sorting,
		Releases:  a.releases,
		Packing:   a.packing,
		Floor:     a.floor,
		Outbox:    workorder.NewOutbox(db),
		Decisions: a.decisions,
		// What-if replays read the recorded history and write nothing; the
		// belt's deadline is what the late-decision prediction holds a
		// candidate flow to.
		Whatif: whatif.New(db, a.sorting, func(ctx context.Context, station string) (whatif.BagLimits, error) {
			l, err := a.packing.Limits(ctx, db, station)
			return whatif.BagLimits{MaxParcels: l.MaxParcels, MaxGrams: l.MaxGrams}, err
		}, whatif.Config{BeltDeadline: cfg.Sorter.DefaultBudget - cfg.Sorter.SafetyMargin}),
		// Readiness follows what the station cannot work without; Redis
		// down is degraded, never unready (it is never the arbiter).
		Optional: map[string]httpapi.Check{
			"redis": func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() },
		},
		Ready: map[string]httpapi.Check{
			"postgres": func(ctx context.Context) error { return db.Ping(ctx) },
			"migrations": func(ctx context.Context) error {
				ok, err := migrator.Current(ctx)
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("pending migrations; run `station migrate up`")
				}
				return nil
			},
		},
	})
	tlsOpts, err := grpcTLS(cfg.GRPC)
	if err != nil {
		a.Close()
		return nil, err
	}
	// A pool of stream workers keeps handler goroutines (and their grown
	// stacks) across calls: with the interceptor chain, a fresh goroutine
	// per Resolve spent more time growing its stack than answering.
	extra := append(tlsOpts, grpc.NumStreamWorkers(uint32(4*runtime.GOMAXPROCS(0))),
		// A connection that never finishes its TLS and HTTP/2 handshake
		// would otherwise hold a socket and a goroutine for 120 s.
		grpc.ConnectionTimeout(cfg.GRPC.ConnectionTimeout))
	a.grpc = grpcserver.New(grpcserver.Options{Log: log, Registry: a.registry, Auth: a.sorters,
		Extra:         append(extra, a.grpcServerTracing()...),
		QuietMethods:  []string{stationv1.SorterService_Resolve_FullMethodName},
		StreamRecheck: cfg.Sorter.KeyCacheTTL / 2})
	a.sorterAPI.Register(a.grpc)
	// Stop is a no-op after Run's graceful stop; for an App that never ran
	// it ends the server's stream workers.
	a.closers = append(a.closers, a.grpc.GRPC.Stop)
	return a, nil
}

// DB is the station's pool (tests and the dev command seed data through it).
func (a *App) DB() *pgxpool.Pool { return a.db }

// Releases is the gray-release rule store.
func (a *App) Releases() *sorting.Releases { return a.releases }

// Sorting is the sorting service.
func (a *App) Sorting() *sorting.Service { return a.sorting }

// Auth is the operator authentication service.
func (a *App) Auth() *auth.Service { return a.auth }

// Sorters registers and authenticates sorting machines.
func (a *App) Sorters() *auth.Sorters { return a.sorters }

// Belt serves the sorting machine.
func (a *App) Belt() *belt.Service { return a.belt }

// Floor is the sorter floor (live views, chute binds).
func (a *App) Floor() *floor.Floor { return a.floor }

// Decisions records the belt's decisions (tests flush it).
func (a *App) Decisions() *decisionlog.Recorder { return a.decisions }

// Run serves until ctx is cancelled, then shuts down gracefully: readiness
// and gRPC health go NOT_SERVING, listeners close, in-flight requests finish
// within the configured grace, workers stop, pools close.
func (a *App) Run(ctx context.Context) error {
	defer a.Close()
	httpLis, srv := a.httpLis, a.httpSrv
	grpcLis, err := listen(a.opts.GRPCListener, a.cfg.GRPC.Addr)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	a.front.set(a.traceHTTP(a.http.Handler()))

	errc := make(chan error, 2)
	go func() {
		if err := <-a.httpErrs; err != nil {
			errc <- err
		}
	}()
	go func() {
		if err := a.grpc.Serve(grpcLis); err != nil {
			errc <- err
		}
	}()

	workers, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	a.startWorkers(workers, &wg)

	a.log.Info("station serving", zap.String("http", httpLis.Addr().String()), zap.String("grpc", grpcLis.Addr().String()))
	if a.opts.Ready != nil {
		a.opts.Ready(httpLis.Addr().String(), grpcLis.Addr().String())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}

	a.log.Info("shutting down", zap.Duration("grace", a.cfg.Shutdown.Grace))
	a.http.Drain()
	graceCtx, cancel := context.WithTimeout(context.Background(), a.cfg.Shutdown.Grace)
	defer cancel()
	var sd sync.WaitGroup
	sd.Add(2)
	go func() {
		defer sd.Done()
		if err := srv.Shutdown(graceCtx); err != nil {
			a.log.Warn("http grace expired; closing connections", zap.Error(err))
			_ = srv.Close()
		}
	}()
	go func() {
		defer sd.Done()
		// Sorter streams never end on their own: ask them to, so the
		// graceful stop does not wait out the whole grace.
		a.sorterAPI.Drain()
		a.grpc.Shutdown(graceCtx)
	}()
	sd.Wait()
	stopWorkers()
	wg.Wait()
	a.belt.Close()
	a.log.Info("station stopped")
	return runErr
}

// startWorkers launches the background jobs; each stops when ctx ends.
func (a *App) startWorkers(ctx context.Context, wg *sync.WaitGroup) {
	// The tracking relay: on stop it finishes or releases its batch.
	wg.Go(func() { a.relay.Run(ctx) })
	// Release rules: pub/sub signals plus a periodic resync.
	wg.Go(func() { a.releases.Watch(ctx, a.cfg.Release.Resync) })
	// Flow versions and market assignments: the same path.
	wg.Go(func() { a.sorting.Flows().Watch(ctx, a.cfg.Release.Resync) })
	// Shadow counts flush; on stop it waits for shadow runs in flight.
	wg.Go(func() { a.shadow.Run(ctx) })
	// The belt: invalidation signals from every instance, and its upkeep.
	wg.Go(func() { a.belt.Run(ctx) })
	// The belt's decisions: written every second; on stop, after the gRPC
	// server, so the last answers are written too.
	wg.Go(func() { a.decisions.Run(ctx) })
	wg.Go(func() { a.floorHub.Run(ctx) })
	// Singleton jobs (history partitions, scheduled offline reconciliation):
	// one instance at a time, behind a lease.
	a.startSingletons(ctx, wg)
}

// Close releases pools and clients in reverse order of creation.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// listenHTTP starts the HTTP server with the start-up edge
// (httpapi.Starting) behind its front door; Run swaps in the API.
func (a *App) listenHTTP() error {
	lis, err := listen(a.opts.HTTPListener, a.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	a.httpLis, a.front, a.httpErrs = lis, &frontDoor{}, make(chan error, 1)
	a.front.set(httpapi.Starting())
	a.httpSrv = &http.Server{
		Handler:           a.front,
		ReadHeaderTimeout: a.cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       a.cfg.HTTP.ReadTimeout,
		WriteTimeout:      a.cfg.HTTP.WriteTimeout,
		IdleTimeout:       a.cfg.HTTP.IdleTimeout,
		ErrorLog:          zap.NewStdLog(a.log.Named("http")),
	}
	srv := a.httpSrv
	a.log.Info("http listening; not ready until the database answers", zap.String("http", lis.Addr().String()))
	go func() {
		err := srv.Serve(lis)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else if err != nil {
			err = fmt.Errorf("http serve: %w", err)
		}
		a.httpErrs <- err
	}()
	// Closed last: after Run's graceful shutdown this is a no-op; for an
	// App that never ran, it stops the start-up edge.
	a.closers = append(a.closers, func() { _ = srv.Close() })
	return nil
}

// frontDoor is the HTTP server's handler, swapped once from the start-up
// edge to the API.
type frontDoor struct{ h atomic.Pointer[http.Handler] }

func (f *frontDoor) set(h http.Handler) { f.h.Store(&h) }

func (f *frontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*f.h.Load()).ServeHTTP(w, r) }

func listen(l net.Listener, addr string) (net.Listener, error) {
	if l != nil {
		return l, nil
	}
	return net.Listen("tcp", addr)
}

// ErrDatabaseUnreachable means PostgreSQL did not answer (as opposed to
// answering with a refusal: a bad password, a missing database).
var ErrDatabaseUnreachable = errors.New("database does not answer")

// openWhenUp is OpenPool, tried again with backoff for up to
// cfg.StartupWait while the database does not answer: after a power cut or
// a host restart the station and its database come up together, and a
// station that gave up at once would leave its start to a process manager
// it may not have. A database that answers with a refusal fails at once.
func openWhenUp(ctx context.Context, cfg config.Database, tracer pgx.QueryTracer, log *zap.Logger) (*pgxpool.Pool, error) {
	giveUp := time.Now().Add(cfg.StartupWait)
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		db, err := openPool(ctx, cfg, tracer)
		if err == nil || !errors.Is(err, ErrDatabaseUnreachable) || time.Now().Add(wait).After(giveUp) {
			return db, err
		}
		log.Warn("database does not answer yet; retrying", zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// OpenPool connects to PostgreSQL and checks that it answers.
func OpenPool(ctx context.Context, cfg config.Database) (*pgxpool.Pool, error) {
	return openPool(ctx, cfg, acquireDeadline{d: cfg.AcquireTimeout})
}

// openPool is OpenPool with the pool's tracer, which must include
// acquireDeadline (see pgxTracer).
func openPool(ctx context.Context, cfg config.Database, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("database.url: %w", err)
	}
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.ConnectTimeout = 3 * time.Second
	pc.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		var refused *pgconn.PgError
		if errors.As(err, &refused) {
			return nil, fmt.Errorf("database at %s: %w", config.RedactURL(cfg.URL), err)
		}
		return nil, fmt.Errorf("database at %s: %w: %w", config.RedactURL(cfg.URL), ErrDatabaseUnreachable, err)
	}
	return pool, nil
}

// MigrateUp applies pending migrations and logs each.
func MigrateUp(ctx context.Context, db *pgxpool.Pool, log *zap.Logger) error {
	m, closeDB, err := migrations.FromPool(db)
	if err != nil {
		return err
	}
	defer func() { _ = closeDB() }()
	res, err := m.Up(ctx)
	for _, r := range res {
		log.Info("migration applied", zap.Int64("version", r.Source.Version), zap.String("file", r.Source.Path), zap.Duration("took", r.Duration))
	}
	return err
}

// grpcTLS builds the gRPC server's transport security from config: none,
// TLS, or mutual TLS when a client CA is named.
func grpcTLS(c config.GRPC) ([]grpc.ServerOption, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("grpc.tls_cert: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("grpc.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("grpc.client_ca: no certificate in %s", c.ClientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(tc))}, nil
}
