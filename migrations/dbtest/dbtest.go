// Package dbtest gives each test its own PostgreSQL database, cloned from a
// template that the production migrations built once (pgtestdb), and a
// private Redis key prefix. A test that cannot reach either fails: a green run
// must mean the real thing was exercised.
package dbtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver pgtestdb opens
	"github.com/peterldowns/pgtestdb"
	"github.com/redis/go-redis/v9"

	"github.com/expresshub/station/migrations"
)

// DefaultDatabaseURL is the server tests use unless STATION_TEST_DATABASE_URL
// names another.
const DefaultDatabaseURL = "postgres://postgres@localhost:5432/postgres?sslmode=disable"

// DefaultRedisAddr is the Redis tests use unless STATION_TEST_REDIS_ADDR names
// another.
const DefaultRedisAddr = "localhost:6379"

// ServerURL is the PostgreSQL server tests run against.
func ServerURL() string {
	if u := os.Getenv("STATION_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultDatabaseURL
}

// RedisAddr is the Redis server tests run against.
func RedisAddr() string {
	if a := os.Getenv("STATION_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return DefaultRedisAddr
}

type migrator struct{}

// Hash names the template after the migration files' content, so a changed
// migration builds a new template instead of reusing a stale one.
func (migrator) Hash() (string, error) {
	files := migrations.Files()
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(files, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func (migrator) Migrate(ctx context.Context, db *sql.DB, _ pgtestdb.Config) error {
	m, err := migrations.New(db)
	if err != nil {
		return err
	}
	_, err = m.Up(ctx)
	return err
}

func serverConfig(t testing.TB) pgtestdb.Config {
	t.Helper()
	u, err := url.Parse(ServerURL())
	if err != nil {
		t.Fatalf("dbtest: bad STATION_TEST_DATABASE_URL: %v", err)
	}
	pass, _ := u.User.Password()
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return pgtestdb.Config{
		DriverName:                "pgx",
		Host:                      u.Hostname(),
		Port:                      port,
		User:                      u.User.Username(),
		Password:                  pass,
		Database:                  strings.TrimPrefix(u.Path, "/"),
		Options:                   "sslmode=disable",
		ForceTerminateConnections: true,
	}
}

// URL creates a fresh migrated database for t and returns its connection
// string. The database is dropped when t passes.
func URL(t testing.TB) string {
	t.Helper()
	u := pgtestdb.Custom(t, serverConfig(t), migrator{}).URL()
	ensurePartitions(t, u)
	return u
}

// ensurePartitions gives a clone of a template built on an earlier day the
// history tables' partitions of today and the week ahead (the migration
// made them for the day it ran).
func ensurePartitions(t testing.TB, dsn string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, migrations.EnsurePartitionsSQL, 7); err != nil {
		t.Fatalf("dbtest: history partitions: %v", err)
	}
}

// EmptyURL creates a fresh database with no schema at all, for tests of the
// migrations themselves.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return pgtestdb.Custom(t, serverConfig(t), pgtestdb.NoopMigrator{}).URL()
}

// Pool opens a pgx pool on a fresh migrated database, closed at cleanup.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return PoolFor(t, URL(t))
}

// PoolFor opens a pgx pool on dsn, closed at cleanup.
func PoolFor(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatalf("dbtest: open pool: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		t.Fatalf("dbtest: PostgreSQL at %s does not answer: %v", ServerURL(), err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Redis connects to the test Redis and returns a client plus a key prefix
// unique to t; keys under the prefix are deleted at cleanup.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: RedisAddr()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		t.Fatalf("dbtest: Redis at %s does not answer: %v", RedisAddr(), err)
	}
	prefix := fmt.Sprintf("test:%s:%d:", sanitize(t.Name()), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == ':' || r == '*' {
			return '_'
		}
		return r
	}, s)
}
