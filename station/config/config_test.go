package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

func TestLoadPrecedenceFileEnvFlag(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "station.yaml")
	yaml := "http:\n  addr: \":1001\"\ngrpc:\n  addr: \":2001\"\nlog:\n  format: console\nshutdown:\n  grace: 3s\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse([]string{"--config", file, "--http-addr", ":1003"}); err != nil {
		t.Fatal(err)
	}
	env := []string{"STATION_HTTP_ADDR=:1002", "STATION_GRPC_ADDR=:2002", "STATION_REDIS_ADDR=redis.local:6380"}
	cfg, err := Load(fs, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":1003" {
		t.Errorf("flag must win over env and file: http.addr = %q", cfg.HTTP.Addr)
	}
	if cfg.GRPC.Addr != ":2002" {
		t.Errorf("env must win over file: grpc.addr = %q", cfg.GRPC.Addr)
	}
	if cfg.Log.Format != "console" || cfg.Shutdown.Grace != 3*time.Second {
		t.Errorf("file values not applied: %+v %v", cfg.Log, cfg.Shutdown.Grace)
	}
	if cfg.Redis.Addr != "redis.local:6380" {
		t.Errorf("redis.addr = %q", cfg.Redis.Addr)
	}
	if cfg.Database.URL != Defaults().Database.URL {
		t.Errorf("default lost: %q", cfg.Database.URL)
	}
}

func TestLoadRejectsInvalidValuesNamingTheKey(t *testing.T) {
	cases := map[string]string{
		"STATION_LOG_FORMAT=xml":                    "log.format",
		"STATION_HTTP_ADDR=8080":                    "http.addr",
		"STATION_SHUTDOWN_GRACE=soon":               "shutdown.grace",
		"STATION_DATABASE_URL=::not a url":          "database.url",
		"STATION_RELAY_BATCH_SIZE=0":                "relay.batch_size",
		"STATION_DATABASE_MAX_CONNS=many":           "database.max_conns",
		"STATION_DOWNSTREAM_ADDR=nope":              "downstream.addr",
		"STATION_AUTH_TOKEN_TTL=-1h":                "auth.token_ttl",
		"STATION_LEASE_TTL=10ms":                    "lease.ttl",
		"STATION_RELEASE_OFFLINE_EVERY=-1h":         "release.offline_every",
		"STATION_HTTP_REQUEST_TIMEOUT=0s":           "http.request_timeout",
		"STATION_HTTP_REQUEST_TIMEOUT=30s":          "http.request_timeout", // not below write_timeout: the answer could not go out
		"STATION_OTEL_SAMPLE_RATIO=1.5":             "otel.sample_ratio",
		"STATION_OTEL_ENDPOINT=collector":           "otel.endpoint",
		"STATION_HISTORY_RETAIN_TRACKING_OUTBOX=1h": "history.retain.tracking_outbox",
		"STATION_HISTORY_RETAIN_SCAN_KEYS=10000h":   "history.retain.scan_keys",
		"STATION_HISTORY_AHEAD=0":                   "history.ahead",
		"STATION_HISTORY_EVERY=-1m":                 "history.every",
	}
	for env, key := range cases {
		t.Run(key, func(t *testing.T) {
			_, err := Load(nil, []string{env})
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load(%s) = %v, want a FieldError", env, err)
			}
			if fe.Key != key {
				t.Fatalf("key = %q, want %q (%v)", fe.Key, key, err)
			}
		})
	}
}

func TestRedactedMasksSecrets(t *testing.T) {
	c := Defaults()
	c.Database.URL = "postgres://station:s3cret@db:5432/station"
	c.Redis.Password = "hunter2"
	r := c.Redacted()
	if strings.Contains(r.Database.URL, "s3cret") || r.Redis.Password == "hunter2" {
		t.Fatalf("secret leaked: %+v", r)
	}
	if got := RedactURL("host=db user=x password=pw dbname=y"); strings.Contains(got, "pw ") {
		t.Fatalf("dsn password leaked: %s", got)
	}
}

func TestExampleFileLoads(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse([]string{"--config", "../../station.example.yaml"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(fs, nil)
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	if cfg.Release.NoiseEvery != 20 || cfg.Downstream.Addr != "127.0.0.1:9191" {
		t.Fatalf("example values not applied: %+v", cfg.Release)
	}
}

// TestExampleDocumentsEveryKey: station.example.yaml is where the README
// sends a reader for every key, so each key of Config has a line there.
func TestExampleDocumentsEveryKey(t *testing.T) {
	raw, err := os.ReadFile("../../station.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range leafKeys("", reflect.TypeOf(Config{})) {
		var cur any = doc
		found, missing := true, ""
		for part := range strings.SplitSeq(key, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				found, missing = false, part
				break
			}
			if cur, found = m[part]; !found {
				missing = part
				break
			}
		}
		// A key commented out at its place ("# order_center: {addr: ...}")
		// documents it too.
		if !found && !strings.Contains(string(raw), "# "+missing+":") {
			t.Errorf("station.example.yaml does not document %s", key)
		}
	}
}
