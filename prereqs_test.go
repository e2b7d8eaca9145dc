package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMENamesThePrerequisites: a newcomer learns from the README which
// Go (the go.mod directive) and which tools the commands need.
func TestREADMENamesThePrerequisites(t *testing.T) {
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Prerequisites")
	section, _, _ = strings.Cut(section, "\n## ")
	if !ok {
		t.Fatal("README.md has no Prerequisites section")
	}
	for _, want := range []string{"Go " + string(m[1]), "make", "gcc", "-race", "git", "PostgreSQL", "Redis", "Chromium", ".ci/run"} {
		if !strings.Contains(section, want) {
			t.Errorf("the README's prerequisites do not name %q", want)
		}
	}
}

// TestCIRunInstallsOnlyMissingBuildTools runs the build-tool part of
// .ci/run against stubs: apt-get records what it is asked to install,
// dpkg-query answers for ca-certificates, and make, gcc and git exist or
// not per case.
func TestCIRunInstallsOnlyMissingBuildTools(t *testing.T) {
	for _, c := range []struct {
		name    string
		present []string // of make, gcc, git, ca-certificates
		want    string   // apt-get calls, one a line
	}{
		{"all present", []string{"make", "gcc", "git", "ca-certificates"}, ""},
		{"fresh machine", nil, "update -qq\ninstall -y -qq make gcc git ca-certificates\n"},
		{"no gcc", []string{"make", "git", "ca-certificates"}, "update -qq\ninstall -y -qq gcc\n"},
		{"no certificates", []string{"make", "gcc", "git"}, "update -qq\ninstall -y -qq ca-certificates\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			if err := os.Mkdir(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, tool := range []string{"bash", "dirname", "grep"} {
				p, err := exec.LookPath(tool)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
					t.Fatal(err)
				}
			}
			stub := func(name, body string) {
				if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			log := filepath.Join(dir, "apt.log")
			stub("apt-get", `echo "$*" >> `+log)
			status := "deinstall ok config-files"
			for _, p := range c.present {
				if p == "ca-certificates" {
					status = "install ok installed"
				} else {
					stub(p, "exit 0")
				}
			}
			stub("dpkg-query", `echo "`+status+`"`)
			cmd := exec.Command(".ci/run", "--prereqs-only")
			cmd.Env = []string{"PATH=" + bin, "HOME=" + dir}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf(".ci/run --prereqs-only: %v\n%s", err, out)
			}
			got, err := os.ReadFile(log)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Fatalf("apt-get was asked:\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}
