package app_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/app"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest/linkproxy"
)

// behindProxy is a station config whose database is reached through a link
// the test can cut.
func behindProxy(t *testing.T) (config.Config, *linkproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := linkproxy.New(t, u.Host)
	u.Host = p.Addr()
	cfg := config.Defaults()
	cfg.Database.URL = u.String()
	cfg.Redis.Addr = dbtest.RedisAddr()
	_, cfg.Redis.Prefix = dbtest.Redis(t)
	return cfg, p
}

// After a power cut the station may come up before its database: it waits
// for it instead of exiting.
func TestServeWaitsForADatabaseThatComesUpLate(t *testing.T) {
	cfg, link := behindProxy(t)
	link.Cut()
	type opened struct {
		a   *app.App
		err error
	}
	done := make(chan opened, 1)
	go func() {
		a, err := app.New(context.Background(), cfg, zaptest.NewLogger(t), app.Options{Migrate: true})
		done <- opened{a, err}
	}()
	// Two refused attempts: the station is retrying, not hung or gone.
	for link.Refused() < 2 {
		select {
		case o := <-done:
			t.Fatalf("app.New returned while the database was down: %v", o.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	link.Restore()
	o := <-done
	if o.err != nil {
		t.Fatalf("app.New after the database came up: %v", o.err)
	}
	defer o.a.Close()
	if err := o.a.DB().Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestServeGivesUpOnADatabaseThatStaysDown(t *testing.T) {
	cfg, link := behindProxy(t)
	link.Cut()
	cfg.Database.StartupWait = 600 * time.Millisecond
	_, err := app.New(context.Background(), cfg, zaptest.NewLogger(t), app.Options{})
	if !errors.Is(err, app.ErrDatabaseUnreachable) {
		t.Fatalf("got %v, want ErrDatabaseUnreachable", err)
	}
	if link.Refused() < 2 {
		t.Fatalf("%d attempts, want it tried again before giving up", link.Refused())
	}
}

// A database that answers with a refusal is not waited for: retrying a
// wrong password for half a minute helps nobody.
func TestServeFailsAtOnceWhenTheDatabaseRefuses(t *testing.T) {
	cfg, _ := behindProxy(t)
	u, err := url.Parse(cfg.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/no_such_database"
	cfg.Database.URL = u.String()
	_, err = app.New(context.Background(), cfg, zaptest.NewLogger(t), app.Options{})
	if err == nil || errors.Is(err, app.ErrDatabaseUnreachable) {
		t.Fatalf("got %v, want the server's refusal", err)
	}
}
