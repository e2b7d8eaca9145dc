package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/app"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/relay"
)

// DemoStation is the station `make run` operates.
const DemoStation = "SG-H01"

// DemoPassword is the password of every demo operator; `dev` is for a
// developer's machine only and prints it.
const DemoPassword = "station-demo"

// DemoSorter is the sorting machine `station dev` registers at the demo
// station; `station sorter feed` plays it with the key in DemoSorterKeyFile.
const DemoSorter = "asm-demo"

// DemoSorterKeyFile holds the demo sorter's key. Keys are stored hashed, so
// each start rotates it and writes the new one here (owner-only).
const DemoSorterKeyFile = ".run/asm-demo.key"

// demoOperators are created at start when missing.
var demoOperators = []auth.Operator{
	{ID: "op1", Name: "Ana (operator)", StationID: DemoStation, Role: auth.RoleOperator},
	{ID: "sup1", Name: "Budi (supervisor)", StationID: DemoStation, Role: auth.RoleSupervisor},
	{ID: "ops1", Name: "Chen (ops)", StationID: DemoStation, Role: auth.RoleOps},
	{ID: "op2", Name: "Dewi (operator at SG-H02)", StationID: "SG-H02", Role: auth.RoleOperator},
}

// Run is `station dev`: databases (found or started), migrations, the
// downstream simulator, demo data and the server, in one process; Ctrl-C stops
// everything it started.
func Run(ctx context.Context, cfg config.Config, log *zap.Logger, out io.Writer) error {
	env, err := Ensure(ctx, log, cfg.Database.URL, cfg.Redis.Addr, ".run")
	if err != nil {
		return err
	}
	defer env.Stop()
	cfg.Database.URL = env.DatabaseURL
	cfg.Redis.Addr = env.RedisAddr

	simulator, err := StartSim(ctx, cfg.Sim, log)
	if err != nil {
		return err
	}
	defer simulator.Stop()
	cfg.Downstream = cfg.Downstream.WithAddr(simulator.Addr())
	stopConsumer, err := chooseSink(ctx, &cfg, simulator, out)
	if err != nil {
		return err
	}
	defer stopConsumer()

	a, err := app.New(ctx, cfg, log, app.Options{
		Migrate: true,
		Ready: func(httpAddr, grpcAddr string) {
			printWelcome(out, cfg, httpAddr, grpcAddr)
		},
	})
	if err != nil {
		return err
	}
	if err := loadDemoData(ctx, a, simulator.Fixtures()); err != nil {
		a.Close() // New already listens on HTTP
		return err
	}
	return a.Run(ctx)
}

// loadDemoData creates the demo operators and a chute map for every hub of
// the demo market, unless they exist (a restart keeps what was changed).
func loadDemoData(ctx context.Context, a *app.App, fx *sim.Fixtures) error {
	for _, op := range demoOperators {
		err := a.Auth().AddOperator(ctx, op, DemoPassword)
		if err != nil && !errors.Is(err, auth.ErrOperatorExists) {
			return fmt.Errorf("demo operator %s: %w", op.ID, err)
		}
	}
	if err := demoSorterKey(ctx, a.Sorters()); err != nil {
		return err
	}
	for _, site := range fx.Sites("SG") {
		if site.Type != sim.SiteHub {
			continue
		}
		_, err := a.Sorting().Chutes().Put(ctx, site.ID, sorting.NumberedChuteMap(fx.NextHops(site.ID)), 0, "demo")
		if err != nil && !errors.Is(err, sorting.ErrVersionConflict) {
			return fmt.Errorf("demo chute map %s: %w", site.ID, err)
		}
	}
	return nil
}

// demoSorterKey registers the demo sorter, or gives it a new key when it
// exists, and writes the key to DemoSorterKeyFile.
func demoSorterKey(ctx context.Context, sorters *auth.Sorters) error {
	key, err := sorters.AddSorter(ctx, auth.Sorter{ID: DemoSorter, StationID: DemoStation})
	if errors.Is(err, auth.ErrSorterExists) {
		key, err = sorters.RotateSorterKey(ctx, DemoSorter)
	}
	if err != nil {
		return fmt.Errorf("demo sorter %s: %w", DemoSorter, err)
	}
	if err := os.MkdirAll(filepath.Dir(DemoSorterKeyFile), 0o700); err != nil {
		return fmt.Errorf("demo sorter key: %w", err)
	}
	if err := os.WriteFile(DemoSorterKeyFile, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("demo sorter key: %w", err)
	}
	return nil
}

// chooseSink picks the relay's sink for `station dev`: JetStream when NATS
// answers at relay.jetstream.url (localhost:4222 by default), gRPC
// otherwise, and says which. With a broker sink the simulated order
// center consumes from the broker through a durable consumer.
func chooseSink(ctx context.Context, cfg *config.Config, s *sim.Simulator, out io.Writer) (stop func(), err error) {
	js := cfg.Relay.JetStream
	if cfg.Relay.Sink == config.SinkGRPC {
		if err := JetStreamAnswers(ctx, js.URL); err != nil {
			fmt.Fprintf(out, "relay sink: grpc (no NATS JetStream at %s: %v)\n", config.RedactURL(js.URL), err)
			return func() {}, nil
		}
		cfg.Relay.Sink = config.SinkJetStream
	}
	return ConsumeSink(ctx, *cfg, s, out)
}

// ConsumeSink makes the simulated order center consume from the relay's
// broker sink (relay.sink jetstream or kafka) through a durable consumer,
// and says which; with the grpc sink the order center takes pushes and
// there is nothing to consume. `station dev` and `station sim` both use it.
func ConsumeSink(ctx context.Context, cfg config.Config, s *sim.Simulator, out io.Writer) (stop func(), err error) {
	js := cfg.Relay.JetStream
	switch cfg.Relay.Sink {
	case config.SinkJetStream:
		// The relay creates the stream when it starts; the consumer needs
		// it first.
		sink, err := relay.NewJetStream(ctx, relay.JetStreamConfig{URL: js.URL, Stream: js.Stream,
			SubjectPrefix: js.SubjectPrefix, DedupWindow: js.DedupWindow})
		if err != nil {
			return nil, err
		}
		sink.Close()
		c, err := s.ConsumeJetStream(ctx, sim.JetStreamSource{URL: js.URL, Stream: js.Stream,
			Subject: js.SubjectPrefix + ".>", Durable: "order-center"})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "relay sink: jetstream (NATS at %s, stream %s, subjects %s.<station>; the simulated order center consumes it)\n",
			config.RedactURL(js.URL), js.Stream, js.SubjectPrefix)
		return c.Stop, nil
	case config.SinkKafka:
		c, err := s.ConsumeKafka(ctx, sim.KafkaSource{Brokers: strings.Split(cfg.Relay.Kafka.Brokers, ","),
			Topic: cfg.Relay.Kafka.Topic, Group: "order-center"})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "relay sink: kafka (brokers %s, topic %s)\n", cfg.Relay.Kafka.Brokers, cfg.Relay.Kafka.Topic)
		return c.Stop, nil
	}
	fmt.Fprintln(out, "relay sink: grpc")
	return func() {}, nil
}

// JetStreamAnswers reports whether a NATS server with JetStream answers at
// url within a second.
func JetStreamAnswers(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.MaxReconnects(0))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = js.AccountInfo(actx)
	return err
}

// StartSim starts the downstream simulator in this process.
func StartSim(ctx context.Context, c config.Sim, log *zap.Logger) (*sim.Simulator, error) {
	sc := sim.DefaultConfig()
	sc.Seed, sc.Latency = c.Seed, c.Latency
	s, err := sim.New(sc, slog.New(zapslog.NewHandler(log.Named("sim").Core())))
	if err != nil {
		return nil, err
	}
	if err := s.Start(c.Addr); err != nil {
		return nil, err
	}
	return s, nil
}

func printWelcome(out io.Writer, cfg config.Config, httpAddr, grpcAddr string) {
	base := "http://" + hostPort(httpAddr)
	fmt.Fprintf(out, `
  Station is running (demo station %s). Ctrl-C stops everything.

    Web terminal   %s/
    Ops console    %s/ops
    Sorter floor   %s/floor   (supervisors: chutes, bags, handovers, live)
    Health         %s/readyz   metrics %s/metrics
    Sorter gRPC    %s   (test sorter: ./bin/station sorter feed --addr %s SG1000000001)
    Simulator      %s (downstream services)
    PostgreSQL     %s
    Redis          %s

  Demo operators (password %q):
`, DemoStation, base, base, base, base, base, hostPort(grpcAddr), hostPort(grpcAddr), cfg.Downstream.Addr, config.RedactURL(cfg.Database.URL), cfg.Redis.Addr, DemoPassword)
	for _, op := range demoOperators {
		fmt.Fprintf(out, "    %-5s %-28s %-10s %s\n", op.ID, op.Name, op.Role, op.StationID)
	}
	fmt.Fprintln(out)
}

// hostPort turns a wildcard listen address into one a browser can open.
func hostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
