package app_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
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
	cfg.HTTP.Addr = "127.0.0.1:0" // New listens at once
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

// While serve waits for its database, HTTP already listens: the process is
// alive (/healthz 200) and not ready (/readyz 503), so a platform neither
// restarts it nor sends it traffic.
func TestServeAnswersProbesWhileItWaitsForTheDatabase(t *testing.T) {
	cfg, link := behindProxy(t)
	link.Cut()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + lis.Addr().String()
	type opened struct {
		a   *app.App
		err error
	}
	done := make(chan opened, 1)
	go func() {
		a, err := app.New(context.Background(), cfg, zaptest.NewLogger(t), app.Options{Migrate: true, HTTPListener: lis})
		done <- opened{a, err}
	}()
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s while waiting for the database: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while waiting for the database: %d %s, want 200", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while waiting for the database: %d %s, want 503", code, body)
	}
	if code, body := get("/api/v1/me"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"starting"`) {
		t.Errorf("an API call while waiting for the database: %d %s, want 503 starting", code, body)
	}
	select {
	case o := <-done:
		t.Fatalf("app.New returned while the database was down: %v", o.err)
	default:
	}
	link.Restore()
	o := <-done
	if o.err != nil {
		t.Fatalf("app.New after the database came up: %v", o.err)
	}
	o.a.Close()
	if _, err := hc.Get(base + "/healthz"); err == nil {
		t.Error("still listening after Close of an app that never ran")
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
