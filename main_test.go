package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/expresshub/station/station/config"
)

func TestInvalidConfigurationIsAConfigError(t *testing.T) {
	t.Setenv("STATION_LOG_FORMAT", "xml")
	err := run(context.Background(), []string{"serve"}, strings.NewReader(""), new(bytes.Buffer))
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "log.format") {
		t.Fatalf("run = %v, want a config error naming log.format (main exits 2 on it)", err)
	}
}

func TestHelpListsTheCommands(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"serve", "migrate", "sim", "dev", "operator", "version"} {
		if !strings.Contains(out.String(), cmd) {
			t.Errorf("--help does not list %s", cmd)
		}
	}
}
