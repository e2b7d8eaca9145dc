// Command station runs a parcel hub: receive, sort, pack and hand over, for
// people over HTTP and for the sorting machine over gRPC. See README.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/migrations"
	"github.com/expresshub/station/sorting/whatif"
	"github.com/expresshub/station/station/app"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/devenv"
	"github.com/expresshub/station/station/logging"
	"github.com/expresshub/station/station/testsorter"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "station:", err)
		if errors.Is(err, config.ErrInvalid) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run is the whole program; main only turns its error into an exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	root := &cobra.Command{
		Use:           "station",
		Short:         "Station runs a parcel hub: receive, sort, pack and hand over parcels",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	config.Flags(root.PersistentFlags())
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)

	load := func(cmd *cobra.Command, format string) (config.Config, *zap.Logger, error) {
		env := config.Environ()
		if format != "" && os.Getenv("STATION_LOG_FORMAT") == "" && !cmd.Flags().Changed("log-format") {
			env = append(env, "STATION_LOG_FORMAT="+format)
		}
		cfg, err := config.Load(cmd.Flags(), env)
		if err != nil {
			return cfg, nil, err
		}
		log, err := newLogger(cfg.Log)
		if err != nil {
			return cfg, nil, err
		}
		return cfg, log, nil
	}

	// withDB is the frame of the admin commands: configuration, then a pool
	// that is closed when the command is done.
	// withDB runs f with the configuration, a database pool and the
	// security logger (operator and key changes are security lines).
	withDB := func(cmd *cobra.Command, f func(config.Config, *pgxpool.Pool, *zap.Logger) error) error {
		cfg, log, err := load(cmd, "console")
		if err != nil {
			return err
		}
		db, err := app.OpenPool(ctx, cfg.Database)
		if err != nil {
			return err
		}
		defer db.Close()
		return f(cfg, db, logging.Security(log))
	}

	var applyMigrations bool
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve HTTP and gRPC and run the background workers",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := load(cmd, "json")
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			log.Info("starting", zap.String("version", version), zap.Any("config", cfg.Redacted()))
			a, err := app.New(ctx, cfg, log, app.Options{Migrate: applyMigrations})
			if err != nil {
				return err
			}
			return a.Run(ctx)
		},
	}
	serve.Flags().BoolVar(&applyMigrations, "migrate", false, "apply pending migrations before serving")

	migrate := &cobra.Command{Use: "migrate", Short: "Apply, roll back or list database migrations"}
	migrateCmd := func(use, short string, f func(context.Context, *migrations.Migrator, io.Writer) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return withDB(cmd, func(_ config.Config, db *pgxpool.Pool, _ *zap.Logger) error {
					m, closeDB, err := migrations.FromPool(db)
					if err != nil {
						return err
					}
					defer func() { _ = closeDB() }()
					return f(ctx, m, cmd.OutOrStdout())
				})
			},
		}
	}
	migrate.AddCommand(
		migrateCmd("up", "Apply every pending migration", func(ctx context.Context, m *migrations.Migrator, out io.Writer) error {
			res, err := m.Up(ctx)
			for _, r := range res {
				fmt.Fprintf(out, "applied %d %s (%s)\n", r.Source.Version, r.Source.Path, r.Duration)
			}
			if err == nil && len(res) == 0 {
				fmt.Fprintln(out, "no pending migrations")
			}
			return err
		}),
		migrateCmd("down", "Roll back the newest migration", func(ctx context.Context, m *migrations.Migrator, out io.Writer) error {
			r, err := m.Down(ctx)
			if r != nil && r.Source != nil {
				fmt.Fprintf(out, "rolled back %d %s\n", r.Source.Version, r.Source.Path)
			} else if err == nil {
				fmt.Fprintln(out, "nothing to roll back")
			}
			return err
		}),
		migrateCmd("status", "List migrations and whether each is applied", func(ctx context.Context, m *migrations.Migrator, out io.Writer) error {
			st, err := m.Status(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
			for _, s := range st {
				at := ""
				if !s.AppliedAt.IsZero() {
					at = s.AppliedAt.Format("2006-01-02 15:04:05")
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, at, s.Source.Path)
			}
			return tw.Flush()
		}),
	)

	var op auth.Operator
	var role string
	operator := &cobra.Command{Use: "operator", Short: "Manage operators"}
	operatorAdd := &cobra.Command{
		Use:   "add",
		Short: "Add an operator; the password is read from STATION_OPERATOR_PASSWORD or stdin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			password := os.Getenv("STATION_OPERATOR_PASSWORD")
			if password == "" {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("read password: %w", err)
				}
				password = strings.TrimRight(line, "\r\n")
			}
			return withDB(cmd, func(cfg config.Config, db *pgxpool.Pool, security *zap.Logger) error {
				op.Role = auth.Role(role)
				svc := auth.NewService(db, cfg.Auth.TokenTTL, auth.WithBcryptCost(cfg.Auth.BcryptCost))
				if err := svc.AddOperator(ctx, op, password); err != nil {
					return err
				}
				security.Info("operator added", zap.String("operator", op.ID), zap.String("station", op.StationID), zap.String("role", string(op.Role)))
				fmt.Fprintf(cmd.OutOrStdout(), "operator %s added at %s as %s\n", op.ID, op.StationID, op.Role)
				return nil
			})
		},
	}
	operatorAdd.Flags().StringVar(&op.ID, "id", "", "operator id (required)")
	operatorAdd.Flags().StringVar(&op.Name, "name", "", "display name (defaults to the id)")
	operatorAdd.Flags().StringVar(&op.StationID, "station", "", "station (site id such as SG-H01; required)")
	operatorAdd.Flags().StringVar(&role, "role", "operator", "operator, supervisor or ops")
	_ = operatorAdd.MarkFlagRequired("id")
	_ = operatorAdd.MarkFlagRequired("station")
	operator.AddCommand(operatorAdd)

	var sorterDef auth.Sorter
	sorter := &cobra.Command{Use: "sorter", Short: "Manage sorting machines (their gRPC keys)"}
	sorterAdd := &cobra.Command{
		Use:   "add",
		Short: "Register a sorting machine at a station and print its key (shown once; only its hash is stored)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd, func(cfg config.Config, db *pgxpool.Pool, security *zap.Logger) error {
				key, err := auth.NewSorters(db, cfg.Sorter.KeyCacheTTL).AddSorter(ctx, sorterDef)
				if err != nil {
					return err
				}
				security.Info("sorter key issued", zap.String("sorter", sorterDef.ID), zap.String("station", sorterDef.StationID))
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "sorter %s added at %s\n", sorterDef.ID, sorterDef.StationID)
				fmt.Fprintf(out, "key (shown only now; send it as gRPC metadata x-sorter-key):\n%s\n", key)
				return nil
			})
		},
	}
	sorterAdd.Flags().StringVar(&sorterDef.ID, "id", "", "sorter id, unique network-wide (required)")
	sorterAdd.Flags().StringVar(&sorterDef.StationID, "station", "", "station (site id such as SG-H01; required)")
	_ = sorterAdd.MarkFlagRequired("id")
	_ = sorterAdd.MarkFlagRequired("station")
	var sorterID string
	sorterRevoke := &cobra.Command{
		Use:   "revoke",
		Short: "Deactivate a sorting machine's key (refused everywhere within sorter.key_cache_ttl)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd, func(cfg config.Config, db *pgxpool.Pool, security *zap.Logger) error {
				if err := auth.NewSorters(db, cfg.Sorter.KeyCacheTTL).RevokeSorter(ctx, sorterID); err != nil {
					return err
				}
				security.Info("sorter key revoked", zap.String("sorter", sorterID))
				fmt.Fprintf(cmd.OutOrStdout(), "sorter %s revoked; its key is refused within %v\n", sorterID, cfg.Sorter.KeyCacheTTL)
				return nil
			})
		},
	}
	sorterRotate := &cobra.Command{
		Use:   "rotate",
		Short: "Give a sorting machine a new key and print it (the old one is refused within sorter.key_cache_ttl)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd, func(cfg config.Config, db *pgxpool.Pool, security *zap.Logger) error {
				key, err := auth.NewSorters(db, cfg.Sorter.KeyCacheTTL).RotateSorterKey(ctx, sorterID)
				if err != nil {
					return err
				}
				security.Info("sorter key rotated", zap.String("sorter", sorterID))
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "sorter %s has a new key; the old one is refused within %v\n", sorterID, cfg.Sorter.KeyCacheTTL)
				fmt.Fprintf(out, "key (shown only now; send it as gRPC metadata x-sorter-key):\n%s\n", key)
				return nil
			})
		},
	}
	for _, c := range []*cobra.Command{sorterRevoke, sorterRotate} {
		c.Flags().StringVar(&sorterID, "id", "", "sorter id (required)")
		_ = c.MarkFlagRequired("id")
	}
	var feedAddr, feedKeyFile, feedStation string
	sorterFeed := &cobra.Command{
		Use:   "feed TRACKING_NO...",
		Short: "Play a sorting machine: resolve a chute for each parcel over gRPC and confirm it sorted there",
		Long: "feed plays a sorting machine against a running station: for each parcel it calls Resolve and then\n" +
			"Confirm SORTED into the chute it got, so a bag bound to that chute takes the parcel. The defaults\n" +
			"fit `station dev`, which registers the sorter asm-demo and writes its key to " + devenv.DemoSorterKeyFile + ".",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := readFileLimited(feedKeyFile, maxKeyFile)
			if err != nil {
				return fmt.Errorf("sorter key: %w (start `station dev`, or pass --key-file with a key from `station sorter add`)", err)
			}
			conn, err := grpc.NewClient(feedAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			defer conn.Close()
			f := testsorter.NewFeeder(conn, strings.TrimSpace(string(key)), feedStation)
			for _, tn := range args {
				r, err := f.Sort(ctx, tn)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), r)
			}
			return nil
		},
	}
	sorterFeed.Flags().StringVar(&feedAddr, "addr", "localhost:9090", "the station's gRPC address")
	sorterFeed.Flags().StringVar(&feedKeyFile, "key-file", devenv.DemoSorterKeyFile, "file holding the sorter's key")
	sorterFeed.Flags().StringVar(&feedStation, "station", devenv.DemoStation, "the sorter's station")
	sorter.AddCommand(sorterAdd, sorterRevoke, sorterRotate, sorterFeed)

	dev := &cobra.Command{
		Use:   "dev",
		Short: "Run everything for a local try-out: databases, migrations, simulator, demo data, server",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := load(cmd, "console")
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			return devenv.Run(ctx, cfg, log, cmd.OutOrStdout())
		},
	}

	simCmd := &cobra.Command{
		Use:   "sim",
		Short: "Run the downstream simulator (order center, basic, finance, delivery, container, linehaul)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := load(cmd, "console")
			if err != nil {
				return err
			}
			s, err := devenv.StartSim(ctx, cfg.Sim, log)
			if err != nil {
				return err
			}
			// With a broker sink (relay.sink) the order center consumes
			// what the relays publish instead of taking pushes.
			stopConsumer, err := devenv.ConsumeSink(ctx, cfg, s, cmd.OutOrStdout())
			if err != nil {
				s.Stop()
				return err
			}
			defer stopConsumer()
			fmt.Fprintf(cmd.OutOrStdout(), "simulator serving on %s (latency profile %s); Ctrl-C stops it\n", s.Addr(), cfg.Sim.Latency)
			<-ctx.Done()
			s.Stop()
			return nil
		},
	}

	var publishAs, publishReason string
	flowCmd := &cobra.Command{Use: "flow", Short: "Manage sorting flows (versions stored in PostgreSQL)"}
	flowPublish := &cobra.Command{
		Use:   "publish FILE",
		Short: "Compile a flow config and publish it as the next version of its flow; running instances pick it up",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := readFileLimited(args[0], maxFlowFile)
			if err != nil {
				return err
			}
			cfg, _, err := load(cmd, "console")
			if err != nil {
				return err
			}
			pub, err := app.PublishFlow(ctx, cfg, src, publishAs, publishReason)
			if err != nil {
				if f, ok := fault.As(err); ok {
					if ps, ok := f.Details["problems"].([]dag.Problem); ok {
						for _, p := range ps {
							fmt.Fprintf(cmd.ErrOrStderr(), "  %s\n", problemText(p))
						}
					}
				}
				return err
			}
			if pub.Unchanged {
				fmt.Fprintf(cmd.OutOrStdout(), "flow %s unchanged: version %d already holds this config\n", pub.Name, pub.Version)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "flow %s version %d published\n", pub.Name, pub.Version)
			return nil
		},
	}
	flowPublish.Flags().StringVar(&publishAs, "as", "cli", "who publishes (recorded in the audit)")
	flowPublish.Flags().StringVar(&publishReason, "reason", "", "why (recorded in the audit)")
	flowCmd.AddCommand(flowPublish)

	whatifRun := whatifCmd(func(cmd *cobra.Command, in whatif.Input, c whatif.Candidate) (whatif.Report, error) {
		cfg, _, err := load(cmd, "console")
		if err != nil {
			return whatif.Report{}, err
		}
		return app.Whatif(ctx, cfg, in, c)
	})

	root.AddCommand(serve, migrate, operator, sorter, dev, simCmd, flowCmd, whatifRun, &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "station", version) },
	})
	return root.ExecuteContext(ctx)
}

func problemText(p dag.Problem) string {
	if p.Node != "" {
		return "node " + p.Node + ": " + p.Problem
	}
	return p.Problem
}

func newLogger(c config.Log) (*zap.Logger, error) {
	// Security lines are never sampled: see station/logging.
	log, err := logging.New(c.Format, c.Level, zapcore.Lock(os.Stderr))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", config.ErrInvalid, err)
	}
	return log, nil
}
