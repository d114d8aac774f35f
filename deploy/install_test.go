package deploy_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// install runs install.sh into root with bin as the binary and returns its output.
func install(t *testing.T, root, bin string) string {
	t.Helper()
	cmd := exec.Command("bash", "install.sh", "--root", root, "--binary", bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	return string(out)
}

func wantMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (fs.ModePerm | fs.ModeDir); got&fs.ModePerm != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

// TestInstall installs into a clean tree twice and checks paths and modes;
// the second run (an upgrade) keeps a locally edited configuration, keeps
// the replaced binary for a rollback and leaves modes as they were.
func TestInstall(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(t.TempDir(), "concierge")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho v1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := install(t, root, bin)
	if !strings.Contains(out, "not creating user concierge: --root") {
		t.Errorf("a --root install must say why it made no user; output:\n%s", out)
	}
	p := func(rel string) string { return filepath.Join(root, rel) }
	check := func() {
		t.Helper()
		wantMode(t, p("var/lib/concierge"), 0o700)
		wantMode(t, p("var/cache/concierge"), 0o700)
		wantMode(t, p("etc/concierge"), 0o750)
		wantMode(t, p("etc/concierge/concierge.yaml"), 0o640)
		wantMode(t, p("usr/local/bin/concierge"), 0o755)
		wantMode(t, p("etc/systemd/system/concierge.service"), 0o644)
	}
	check()
	example, _ := os.ReadFile("concierge.yaml")
	if got, _ := os.ReadFile(p("etc/concierge/concierge.yaml")); !bytes.Equal(got, example) {
		t.Error("the first install must put the example configuration in place")
	}
	unit, _ := os.ReadFile("concierge.service")
	if got, _ := os.ReadFile(p("etc/systemd/system/concierge.service")); !bytes.Equal(got, unit) {
		t.Error("unit not installed as is")
	}

	// The branch edits its configuration and loosens a mode; an upgrade
	// brings a new binary.
	edited := append(append([]byte{}, example...), "# branch b042's own edit\n"...)
	if err := os.WriteFile(p("etc/concierge/concierge.yaml"), edited, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p("var/lib/concierge"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho v2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out = install(t, root, bin)
	check()
	if !strings.Contains(out, "keeping existing") {
		t.Errorf("second run should say it kept the configuration:\n%s", out)
	}
	if got, _ := os.ReadFile(p("etc/concierge/concierge.yaml")); !bytes.Equal(got, edited) {
		t.Error("install overwrote an existing configuration")
	}
	if got, _ := os.ReadFile(p("etc/concierge/concierge.yaml.example")); !bytes.Equal(got, example) {
		t.Error("the new example should sit beside an edited configuration")
	}
	if got, _ := os.ReadFile(p("usr/local/bin/concierge")); !strings.Contains(string(got), "v2") {
		t.Error("upgrade did not install the new binary")
	}
	if got, _ := os.ReadFile(p("usr/local/bin/concierge.previous")); !strings.Contains(string(got), "v1") {
		t.Error("upgrade did not keep the previous binary for a rollback")
	}

	// A third run with the same binary changes nothing.
	out = install(t, root, bin)
	check()
	if !strings.Contains(out, "up to date") {
		t.Errorf("third run should find the binary up to date:\n%s", out)
	}
	if got, _ := os.ReadFile(p("usr/local/bin/concierge.previous")); !strings.Contains(string(got), "v1") {
		t.Error("a re-run with the same binary must not replace the rollback copy")
	}
}

// TestInstallRefuses checks the clear failures: no binary, unknown option.
func TestInstallRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"--root", t.TempDir(), "--binary", "/nonexistent/concierge"},
		{"--bogus"},
	} {
		out, err := exec.Command("bash", append([]string{"install.sh"}, args...)...).CombinedOutput()
		if err == nil {
			t.Errorf("install.sh %v succeeded; want a failure", args)
		}
		if !strings.HasPrefix(string(out), "install: ") {
			t.Errorf("install.sh %v: want an \"install: \" message, got %q", args, out)
		}
	}
}
