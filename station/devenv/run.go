package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"go.uber.org/zap"

	"github.com/expresshub/station/station/app"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
)

// DemoStation is the station `make run` operates.
const DemoStation = "SG-H01"

// DemoPassword is the password of every demo operator; `dev` is for a
// developer's machine only and prints it.
const DemoPassword = "station-demo"

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

	a, err := app.New(ctx, cfg, log, app.Options{
		Migrate: true,
		Ready: func(httpAddr, grpcAddr string) {
			printWelcome(out, cfg, httpAddr, grpcAddr)
		},
	})
	if err != nil {
		return err
	}
	for _, op := range demoOperators {
		err := a.Auth().AddOperator(ctx, op, DemoPassword)
		if err != nil && !errors.Is(err, auth.ErrOperatorExists) {
			return fmt.Errorf("demo operator %s: %w", op.ID, err)
		}
	}
	return a.Run(ctx)
}

func printWelcome(out io.Writer, cfg config.Config, httpAddr, grpcAddr string) {
	base := "http://" + hostPort(httpAddr)
	fmt.Fprintf(out, `
  Station is running (demo station %s). Ctrl-C stops everything.

    Web terminal   %s/
    Ops console    %s/ops
    Health         %s/readyz   metrics %s/metrics
    Sorter gRPC    %s
    PostgreSQL     %s
    Redis          %s

  Demo operators (password %q):
`, DemoStation, base, base, base, base, hostPort(grpcAddr), config.RedactURL(cfg.Database.URL), cfg.Redis.Addr, DemoPassword)
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
