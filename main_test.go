package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
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

// TestDependenciesPointOneWay enforces the layout: nothing imports station,
// dag imports nothing of ours, the domain packages do not reach up.
func TestDependenciesPointOneWay(t *testing.T) {
	const mod = "github.com/expresshub/station"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		for _, imp := range imports {
			if !strings.HasPrefix(imp, mod+"/") {
				continue
			}
			switch {
			case strings.HasPrefix(imp, mod+"/station") && pkg != mod && !strings.HasPrefix(pkg, mod+"/station"):
				t.Errorf("%s imports %s: nothing outside station/ imports station", pkg, imp)
			case strings.HasPrefix(pkg, mod+"/dag") && !strings.HasPrefix(imp, mod+"/dag"):
				t.Errorf("%s imports %s: dag imports nothing of ours", pkg, imp)
			case (strings.HasPrefix(pkg, mod+"/clients") || strings.HasPrefix(pkg, mod+"/workorder")) &&
				(strings.HasPrefix(imp, mod+"/sorting") || strings.HasPrefix(imp, mod+"/packing")):
				t.Errorf("%s imports %s: engines do not import the domain", pkg, imp)
			}
		}
	}
}
