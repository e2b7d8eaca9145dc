// Package app wires one station process from its configuration: it builds
// every dependency once by explicit constructor, starts the HTTP and gRPC
// servers and the background workers, and shuts them down in reverse order.
// main and the end-to-end tests both start a station through it, so what the
// tests exercise is exactly what runs.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/migrations"
	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/grpcserver"
	"github.com/expresshub/station/station/httpapi"
	"github.com/expresshub/station/station/ratelimit"
	"github.com/expresshub/station/station/relay"
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
}

// App is one running station process.
type App struct {
	cfg      config.Config
	log      *zap.Logger
	opts     Options
	db       *pgxpool.Pool
	rdb      *redis.Client
	registry *prometheus.Registry
	auth     *auth.Service
	clients  *clients.Set
	sorting  *sorting.Service
	releases *sorting.Releases
	shadow   *sorting.Shadow
	packing  *packing.Service
	relay    *relay.Relay
	http     *httpapi.Server
	grpc     *grpcserver.Server
	closers  []func()
}

// New connects to PostgreSQL and Redis and builds every component. It does
// not start serving; Run does.
func New(ctx context.Context, cfg config.Config, log *zap.Logger, opts Options) (*App, error) {
	a := &App{cfg: cfg, log: log, opts: opts, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	db, err := OpenPool(ctx, cfg.Database)
	if err != nil {
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

	a.auth = auth.NewService(db, cfg.Auth.TokenTTL, auth.WithBcryptCost(cfg.Auth.BcryptCost))
	limiter := ratelimit.New(a.rdb, cfg.Redis.Prefix)

	migrator, closeMigrator, err := migrations.FromPool(db)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.closers = append(a.closers, func() { _ = closeMigrator() })

	a.clients, err = clients.Dial(ctx, cfg.Downstream, clients.Options{
		Registerer: a.registry,
		Redis:      a.rdb,
		Logger:     slog.New(zapslog.NewHandler(log.Named("clients").Core())),
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
	chutes := sorting.NewChuteStore(db, 2*time.Second)
	flows, err := sorting.NewFlowSet(ctx, db, sorting.Clients(a.clients), chutes)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.sorting = sorting.NewService(db, flows, chutes, dagMetrics)
	a.releases = sorting.NewReleases(db, a.rdb, cfg.Redis.Prefix, flows, sorting.GuardConfig{
		MinMatchRate: cfg.Release.MinMatchRate, MinComparisons: cfg.Release.MinComparisons, Window: cfg.Release.GuardWindow,
	}, log.Named("release"))
	ruleVersion := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "station_release_rule_version", Help: "Release rule version this instance applies, by site.",
	}, []string{"site"})
	a.registry.MustRegister(ruleVersion)
	a.releases.OnApply(func(site string, version int) { ruleVersion.WithLabelValues(site).Set(float64(version)) })
	if err := a.releases.Load(ctx); err != nil {
		a.Close()
		return nil, err
	}
	a.shadow = sorting.NewShadow(a.sorting, db, sorting.ShadowConfig{
		Budget: cfg.Release.ShadowBudget, Deadline: cfg.Release.ShadowDeadline, NoiseEvery: cfg.Release.NoiseEvery,
	}, log.Named("shadow"), a.registry)
	a.sorting.EnableRelease(a.releases, a.shadow)
	a.packing = packing.New(db, a.clients.Container, a.clients.Linehaul)
	a.relay = relay.New(db, a.clients.OrderCenter, relay.Config{
		BatchSize:   cfg.Relay.BatchSize,
		Interval:    cfg.Relay.Interval,
		MaxAttempts: cfg.Relay.MaxAttempts,
	}, log.Named("relay"), a.registry)

	a.http = httpapi.New(httpapi.Config{
		MaxBodyBytes:      cfg.HTTP.MaxBodyBytes,
		LoginPerMinute:    cfg.Auth.LoginPerMinute,
		RequestsPerSecond: cfg.Auth.RequestsPerSecond,
	}, httpapi.Deps{
		Log:      log,
		Auth:     a.auth,
		Limiter:  limiter,
		Registry: a.registry,
		Sorting:  a.sorting,
		Releases: a.releases,
		Packing:  a.packing,
		Outbox:   relay.NewOutbox(db),
		Ready: map[string]httpapi.Check{
			"postgres": func(ctx context.Context) error { return db.Ping(ctx) },
			"redis":    func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() },
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
	a.grpc = grpcserver.New(grpcserver.Options{Log: log, Registry: a.registry})
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

// Run serves until ctx is cancelled, then shuts down gracefully: readiness
// and gRPC health go NOT_SERVING, listeners close, in-flight requests finish
// within the configured grace, workers stop, pools close.
func (a *App) Run(ctx context.Context) error {
	defer a.Close()
	httpLis, err := listen(a.opts.HTTPListener, a.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	grpcLis, err := listen(a.opts.GRPCListener, a.cfg.GRPC.Addr)
	if err != nil {
		_ = httpLis.Close()
		return fmt.Errorf("grpc listen: %w", err)
	}
	srv := &http.Server{
		Handler:           a.http.Handler(),
		ReadHeaderTimeout: a.cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       a.cfg.HTTP.ReadTimeout,
		WriteTimeout:      a.cfg.HTTP.WriteTimeout,
		IdleTimeout:       a.cfg.HTTP.IdleTimeout,
		ErrorLog:          zap.NewStdLog(a.log.Named("http")),
	}

	errc := make(chan error, 2)
	go func() {
		if err := srv.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http serve: %w", err)
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
		a.grpc.Shutdown(graceCtx)
	}()
	sd.Wait()
	stopWorkers()
	wg.Wait()
	a.log.Info("station stopped")
	return runErr
}

// startWorkers launches the background jobs; each stops when ctx ends.
func (a *App) startWorkers(ctx context.Context, wg *sync.WaitGroup) {
	// The tracking relay: on stop it finishes or releases its batch.
	wg.Go(func() { a.relay.Run(ctx) })
	// Release rules: pub/sub signals plus a periodic resync.
	wg.Go(func() { a.releases.Watch(ctx, a.cfg.Release.Resync) })
	// Shadow counts flush; on stop it waits for shadow runs in flight.
	wg.Go(func() { a.shadow.Run(ctx) })
}

// Close releases pools and clients in reverse order of creation.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

func listen(l net.Listener, addr string) (net.Listener, error) {
	if l != nil {
		return l, nil
	}
	return net.Listen("tcp", addr)
}

// OpenPool connects to PostgreSQL and checks that it answers.
func OpenPool(ctx context.Context, cfg config.Database) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("database.url: %w", err)
	}
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.ConnectTimeout = 3 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database at %s does not answer: %w", config.RedactURL(cfg.URL), err)
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
