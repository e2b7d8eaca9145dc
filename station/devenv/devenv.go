// Package devenv gives `station dev` a PostgreSQL and a Redis to run on: it
// uses the servers configured (localhost by default) when they answer, and
// otherwise starts throwaway ones under .run/ from locally installed binaries.
// It stops only what it started. Where a binary is missing it says exactly
// what to install. Never used by `serve`.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Env is what devenv started; Stop ends it.
type Env struct {
	DatabaseURL string
	RedisAddr   string
	stops       []func()
	log         *zap.Logger
}

// Stop ends every server this Env started, in reverse order.
func (e *Env) Stop() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	e.stops = nil
}

// Ensure makes dbURL and redisAddr usable, starting throwaway servers under
// runDir where nothing answers. The returned Env holds the addresses to use.
func Ensure(ctx context.Context, log *zap.Logger, dbURL, redisAddr, runDir string) (*Env, error) {
	e := &Env{DatabaseURL: dbURL, RedisAddr: redisAddr, log: log}
	if err := e.ensurePostgres(ctx, runDir); err != nil {
		e.Stop()
		return nil, err
	}
	if err := e.ensureRedis(ctx, runDir); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) ensurePostgres(ctx context.Context, runDir string) error {
	if err := createDatabase(ctx, e.DatabaseURL); err == nil {
		return nil
	} else {
		e.log.Info("PostgreSQL does not answer; starting a throwaway cluster", zap.String("dir", filepath.Join(runDir, "pg")), zap.Error(err))
	}
	initdb, pgctl, err := postgresBinaries()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Join(runDir, "pg"))
	if err != nil {
		return err
	}
	port := 55432
	runAs, err := postgresUser()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := chown(dir, runAs); err != nil {
			return err
		}
		if out, err := command(ctx, runAs, initdb, "-D", dir, "-U", "postgres", "--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
			return fmt.Errorf("initdb: %v: %s", err, out)
		}
	}
	sock := dir
	if out, err := command(ctx, runAs, pgctl, "-D", dir, "-l", filepath.Join(dir, "server.log"), "-w",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, sock), "start").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	e.stops = append(e.stops, func() {
		_ = command(context.Background(), runAs, pgctl, "-D", dir, "-m", "fast", "-w", "stop").Run()
		e.log.Info("throwaway PostgreSQL stopped")
	})
	u, err := url.Parse(e.DatabaseURL)
	if err != nil {
		return err
	}
	u.Host = "127.0.0.1:" + strconv.Itoa(port)
	u.User = url.User("postgres")
	e.DatabaseURL = u.String()
	return createDatabase(ctx, e.DatabaseURL)
}

// createDatabase connects to the server of dbURL and creates its database if
// it does not exist yet.
func createDatabase(ctx context.Context, dbURL string) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(cctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return nil
}

func postgresBinaries() (initdb, pgctl string, err error) {
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
		if len(matches) > 0 {
			return matches[len(matches)-1]
		}
		return ""
	}
	initdb, pgctl = find("initdb"), find("pg_ctl")
	if initdb == "" || pgctl == "" {
		return "", "", errors.New("no PostgreSQL answers on the configured URL and initdb/pg_ctl are not installed; " +
			"install PostgreSQL (Debian/Ubuntu: `sudo apt-get install postgresql`; macOS: `brew install postgresql@16`) " +
			"or set STATION_DATABASE_URL to a server you have")
	}
	return initdb, pgctl, nil
}

// postgresUser is the account the throwaway cluster runs as: PostgreSQL
// refuses to run as root, so root delegates to the postgres account.
func postgresUser() (string, error) {
	if os.Geteuid() != 0 {
		return "", nil
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return "", errors.New("running as root and there is no postgres account to run a throwaway PostgreSQL as; run `make run` as a normal user")
	}
	return "postgres", nil
}

func command(ctx context.Context, runAs, name string, args ...string) *exec.Cmd {
	if runAs == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "runuser", append([]string{"-u", runAs, "--", name}, args...)...)
}

func chown(dir, account string) error {
	if account == "" {
		return nil
	}
	u, err := user.Lookup(account)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chown(d, uid, gid); err != nil {
			return err
		}
		if strings.HasSuffix(d, ".run") {
			break
		}
	}
	return nil
}

func (e *Env) ensureRedis(ctx context.Context, runDir string) error {
	if pingRedis(ctx, e.RedisAddr) == nil {
		return nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("no Redis answers on the configured address and redis-server is not installed; " +
			"install Redis (Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`) " +
			"or set STATION_REDIS_ADDR to a server you have")
	}
	dir, err := filepath.Abs(filepath.Join(runDir, "redis"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	addr := "127.0.0.1:56379"
	e.log.Info("Redis does not answer; starting a throwaway server", zap.String("addr", addr))
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", "56379", "--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	e.stops = append(e.stops, func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		e.log.Info("throwaway Redis stopped")
	})
	for i := 0; i < 50; i++ {
		if pingRedis(ctx, addr) == nil {
			e.RedisAddr = addr
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("throwaway redis-server did not answer within 5s")
}

func pingRedis(ctx context.Context, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	defer rdb.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return rdb.Ping(cctx).Err()
}
