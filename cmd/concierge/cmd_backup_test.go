package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"concierge/internal/testenv"
)

// Backup while the daemon runs, restore into a fresh directory tree: the
// same customers are recognised there. Restoring over the box is refused
// without --force; with it, a withdrawal made after the backup is applied
// again, so the customer who withdrew stays gone. A damaged backup is
// refused before anything is touched.
func TestBackupRestore(t *testing.T) {
	cfg, _ := enrolledConfig(t)
	yaml := func(db string) string {
		p := filepath.Join(t.TempDir(), "concierge.yaml")
		body := fmt.Sprintf("branch: t1\ndb: %s\nmodels: {dir: %s}\nvision: {engine: %s, pool: 1}\n", db, cfg.Models.Dir, cfg.Vision.Engine)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("CONCIERGE_CONFIG", "")
	box := yaml(cfg.DB)
	photos := []string{testenv.Photo(t, "sample2.jpg"), testenv.Photo(t, "sample6.jpg")}
	recognised := func(config string) string {
		t.Helper()
		out, errOut, code := run(t, append([]string{"identify", "--config", config, "--json"}, photos...)...)
		if code != 0 {
			t.Fatalf("identify: exit %d: %s", code, errOut)
		}
		var ids []string
		for _, id := range []string{"C1001", "C1002", "C1003"} {
			if strings.Contains(out, `"customer_id":"`+id+`"`) {
				ids = append(ids, id)
			}
		}
		return strings.Join(ids, " ")
	}
	before := recognised(box)
	if !strings.Contains(before, "C1001") || !strings.Contains(before, "C1002") {
		t.Fatalf("before the backup: %q", before)
	}

	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "backup")
	out, errOut, code := run(t, "backup", "--config", box, dir)
	if code != 0 {
		t.Fatalf("backup while the daemon runs: exit %d: %s", code, errOut)
	}
	var made struct{ Files int }
	if err := json.Unmarshal([]byte(out), &made); err != nil || made.Files < 4 {
		t.Fatalf("backup: %s %v", out, err)
	}
	for _, f := range []string{"concierge.db", "keys/template.key", "keys/nats/daemon.nk", "keys/nats/jetstream.key", "MANIFEST.json"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s in the backup: %v %v, want 0600", f, st, err)
		}
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("backup directory: %v %v, want 0700", st, err)
	}
	if _, errOut, code := run(t, "backup", "--config", box, dir); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Errorf("backup into a used directory: exit %d, %s", code, errOut)
	}
	// C1002 withdraws after the backup.
	if _, errOut, code := run(t, "forget", "--config", box, "--customer", "C1002"); code != 0 {
		t.Fatalf("forget: %d %s", code, errOut)
	}
	d.Close()

	// A fresh tree recognises the customers of the backup.
	fresh := yaml(filepath.Join(t.TempDir(), "new", "c.db"))
	if _, errOut, code := run(t, "restore", "--config", fresh, dir); code != 0 {
		t.Fatalf("restore into a fresh tree: exit %d: %s", code, errOut)
	}
	if got := recognised(fresh); got != before {
		t.Fatalf("restored in a fresh tree: %q, want %q", got, before)
	}

	// Over the box: refused, then forced; C1002's withdrawal holds.
	if _, errOut, code := run(t, "restore", "--config", box, dir); code == 0 || !strings.Contains(errOut, "--force") {
		t.Fatalf("restore over the box without --force: exit %d, %s", code, errOut)
	}
	out, errOut, code = run(t, "restore", "--force", "--config", box, dir)
	if code != 0 || !strings.Contains(out, `"withdrawals_applied_again":1`) {
		t.Fatalf("restore --force: exit %d, %s %s", code, out, errOut)
	}
	if got := recognised(box); !strings.Contains(got, "C1001") || strings.Contains(got, "C1002") {
		t.Fatalf("after restoring over the box: %q, want C1001 and never C1002", got)
	}

	// A changed byte anywhere is refused.
	f, err := os.OpenFile(filepath.Join(dir, "keys", "template.key"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("x")
	f.Close()
	if _, errOut, code := run(t, "restore", "--config", yaml(filepath.Join(t.TempDir(), "c.db")), dir); code == 0 || !strings.Contains(errOut, "does not match") {
		t.Fatalf("restore of a damaged backup: exit %d, %s", code, errOut)
	}
}
