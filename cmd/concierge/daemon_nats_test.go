package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/crypto/bcrypt"

	"concierge/alert"
	"concierge/internal/testenv"
)

// An external NATS server that authorizes by user and password (the
// bank's own, or HQ's): the daemon uses the configured credentials on every
// connection it makes, publishes and drains its outbox, and its desk and
// eraser are connected too. A wrong password leaves alerts in the outbox,
// none lost.
func TestDaemonExternalAuthorizingNATS(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(`authorization { users = [ {user: concierge, password: "s3cret-pw"} ] }`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testenv.RunNATS(t, testenv.NATSConfig(func(c *alert.ServerConfig) { c.ConfigFile = conf }))

	for _, tc := range []struct {
		password string
		drained  bool
	}{{"wrong-pw", false}, {"s3cret-pw", true}} {
		cfg, _ := enrolledConfig(t)
		cfg.NATS.URL = srv.ClientURL()
		cfg.NATS.User, cfg.NATS.Password = "concierge", tc.password
		d := NewDaemon(cfg, testLogger(t))
		if err := d.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		a := arrive(t, d, "C1001")
		pub := d.notifier.(*alert.Publisher)
		if tc.drained {
			testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
				if p, q := pub.Stats.Published.Load(), pub.Stats.Enqueued.Load(); p < q {
					return fmt.Errorf("%d of %d alert messages published", p, q)
				}
				return nil
			})
			// The desk reached the server as well: a claim goes through.
			if err := d.desk.Claim(context.Background(), a.ID, "Li"); err != nil {
				t.Fatalf("claim through the desk: %v", err)
			}
		} else {
			testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
				if pub.Stats.Failures.Load() == 0 {
					return fmt.Errorf("no failed delivery yet")
				}
				return nil
			})
			if n := pub.Stats.Published.Load(); n != 0 {
				t.Fatalf("%d messages published with a wrong password", n)
			}
			msgs, err := d.app.db.PendingOutbox(context.Background(), 10)
			if err != nil || len(msgs) == 0 {
				t.Fatalf("the undelivered alert left the outbox: %d, %v", len(msgs), err)
			}
		}
		d.Close()
	}
}

// The embedded server never listens beyond loopback without TLS, and the
// daemon makes its identities private to the service's user.
func TestNATSConfigClosed(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:4222", ":4222", "192.0.2.7:4222"} {
		cfg := DefaultConfig()
		cfg.NATS.Listen = listen
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "nats.listen") {
			t.Errorf("listen %s without TLS: %v", listen, err)
		}
		cfg.NATS.ServerTLSCert, cfg.NATS.ServerTLSKey = "cert.pem", "key.pem"
		if err := cfg.Validate(); err != nil {
			t.Errorf("listen %s with TLS: %v", listen, err)
		}
	}
	cfg := DefaultConfig()
	cfg.NATS.ServerTLSCert = "cert.pem"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "server_tls_key") {
		t.Errorf("a certificate without a key: %v", err)
	}
	cfg = DefaultConfig()
	cfg.DB = "/var/lib/concierge/concierge.db"
	if got := cfg.natsCredentials().Dir; got != "/var/lib/concierge/nats" {
		t.Errorf("credentials dir %s", got)
	}
	cfg.NATS.CredentialsDir = "/etc/concierge/nats"
	if got := cfg.natsCredentials().Dir; got != "/etc/concierge/nats" {
		t.Errorf("credentials dir %s", got)
	}
}

// A terminal's claim and mark reach the stream only through the daemon's
// desk, checked against web.staff (the real directory, bcrypt and all) and
// the daemon's own visit log; a refused mark tightens no rule.
func TestDaemonDeskChecksStaff(t *testing.T) {
	cfg, _ := enrolledConfig(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("li-pin-8642"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Web.Staff = []WebStaff{{Name: "Li", Password: string(hash)}}
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, b := arrive(t, d, "C1001"), arrive(t, d, "C1002")
	pub := d.notifier.(*alert.Publisher)
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if p, q := pub.Stats.Published.Load(), pub.Stats.Enqueued.Load(); p < q {
			return fmt.Errorf("%d of %d alert messages published", p, q)
		}
		return nil
	})
	// A lobby terminal off the box: nats.url and a copy of the lobby seed.
	term := filepath.Join(t.TempDir(), "terminal.yaml")
	if err := os.WriteFile(term, []byte(fmt.Sprintf("branch: t1\nnats:\n  url: %s\n  nkey_seed_file: %s\n",
		d.NATSURL(), d.natsCreds.SeedFile(alert.IdentityLobby))), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONCIERGE_CONFIG", "")
	t.Setenv("CONCIERGE_STAFF_PASSWORD", "wrong-pin")
	if _, errOut, code := run(t, "watch", "--config", term, "--reject", b.ID, "--by", "Li"); code == 0 || !strings.Contains(errOut, "wrong name or password") {
		t.Fatalf("mark with a wrong password: exit %d, %q", code, errOut)
	}
	t.Setenv("CONCIERGE_STAFF_PASSWORD", "li-pin-8642")
	if _, errOut, code := run(t, "watch", "--config", term, "--reject", ulid.Make().String(), "--by", "Li"); code != 1 || !strings.Contains(errOut, "no such alert") {
		t.Fatalf("mark of an alert the daemon never sent: exit %d, %q", code, errOut)
	}
	if v, dt := d.checkin.Strictness("C1002", time.Now()); v != 0 || dt != 0 {
		t.Fatalf("a refused mark tightened C1002's rule: %d %v", v, dt)
	}
	if out, errOut, code := run(t, "watch", "--config", term, "--claim", a.ID, "--by", "Li"); code != 0 || !strings.Contains(out, "claimed") {
		t.Fatalf("claim: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := run(t, "watch", "--config", term, "--reject", b.ID, "--by", "Li"); code != 0 {
		t.Fatalf("mark: exit %d, %q %q", code, out, errOut)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if v, _ := d.checkin.Strictness("C1002", time.Now()); v != 1 {
			return fmt.Errorf("C1002's rule not tightened by the checked mark")
		}
		return nil
	})
}
