package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"concierge/alert"
	"concierge/internal/testenv"
)

// TestWatchClaimRefusals: against the real daemon and its desk, `watch
// --claim` exits non-zero with the desk's reason for an id that is not an
// alert id at all, and for an alert already marked "not this person" (the
// issue saw both print "claimed" and exit 0).
func TestWatchClaimRefusals(t *testing.T) {
	cfg, _ := enrolledConfig(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("li-pin-8642"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Web.Staff = []WebStaff{{Name: "Li", Password: string(hash)}, {Name: "Wang", Password: string(hash)}}
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a := arrive(t, d, "C1001")
	term := filepath.Join(t.TempDir(), "terminal.yaml")
	if err := os.WriteFile(term, []byte(fmt.Sprintf("branch: t1\nnats:\n  url: %s\n  nkey_seed_file: %s\n",
		d.NATSURL(), d.natsCreds.SeedFile(alert.IdentityLobby))), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONCIERGE_CONFIG", "")
	t.Setenv("CONCIERGE_STAFF_PASSWORD", "li-pin-8642")

	out, errOut, code := run(t, "watch", "--config", term, "--claim", "NOTANID", "--by", "Li")
	if code == 0 || strings.Contains(out, "claimed") || !strings.Contains(errOut, "NOTANID") {
		t.Errorf("claim NOTANID: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	if out, errOut, code := run(t, "watch", "--config", term, "--reject", a.ID, "--by", "Li", "--reason", "different person"); code != 0 {
		t.Fatalf("reject: exit %d, %q %q", code, out, errOut)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		rec, err := d.app.db.AlertRecord(context.Background(), a.ID)
		if err != nil || !rec.Rejected {
			return errors.Join(err, fmt.Errorf("the daemon has not recorded the mark yet"))
		}
		return nil
	})
	out, errOut, code = run(t, "watch", "--config", term, "--claim", a.ID, "--by", "Wang")
	if code == 0 || strings.Contains(out, "claimed") || !strings.Contains(errOut, "not this person") {
		t.Errorf("claim after not this person: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
