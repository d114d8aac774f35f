package alert_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge/alert"
	"concierge/hub"
	"concierge/internal/testenv"
)

// The box joins the hub as a leaf with its branch credential: network
// events reach the hub's stream, while the branch's alerts never leave the
// box and nothing from HQ can pose as one; the box's lobby identity gains
// no way to the hub.
func TestLeafToHub(t *testing.T) {
	h, dir := testenv.RunHub(t, branch, "b002")
	box := testenv.RunNATS(t, testenv.ClosedNATS(branch), testenv.NATSConfig(func(c *alert.ServerConfig) {
		c.HQURL, c.HQCredentials = h.LeafURL(), hub.CredsFile(dir, branch)
	}))
	creds := box.Creds
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	daemon, _, _ := connectAs(t, box.ClientURL(), creds, alert.IdentityDaemon)
	hq, err := jetstream.NewWithDomain(daemon, hub.Domain)
	if err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := hq.Publish(c, hub.SubjectPrefix+"."+branch+".c.x", []byte("{}"))
		return err
	})

	admin, err := nats.Connect(h.ClientURL(), nkeyFile(t, filepath.Join(dir, "hub.nk")))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	seen := make(chan string, 100)
	if _, err := admin.Subscribe(">", func(m *nats.Msg) { seen <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	admin.Flush()
	// Messages over one connection keep their order: once the network
	// event after it has arrived, the alert would have too.
	// The barrier goes where a branch may publish (hub.BranchSubjects).
	barrier := hub.SubjectPrefix + "." + branch + ".c.barrier"
	testenv.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		daemon.Publish(alert.Subject(branch, alert.FeedArrival), []byte("{}"))
		daemon.Publish(barrier, nil)
		daemon.Flush()
		for {
			select {
			case s := <-seen:
				if s == alert.Subject(branch, alert.FeedArrival) {
					t.Fatal("the branch's alert reached the hub")
				}
				if s == barrier {
					return nil
				}
			case <-time.After(200 * time.Millisecond):
				return context.DeadlineExceeded
			}
		}
	})

	// HQ cannot inject an alert into the box.
	local := make(chan string, 100)
	if _, err := daemon.Subscribe("concierge.>", func(m *nats.Msg) { local <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	if _, err := daemon.Subscribe("_INBOX.barrier", func(m *nats.Msg) { local <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	daemon.Flush()
	testenv.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		admin.Publish(alert.Subject(branch, alert.FeedArrival), []byte("{}"))
		admin.Publish("_INBOX.barrier", nil)
		admin.Flush()
		for {
			select {
			case s := <-local:
				if s != "_INBOX.barrier" {
					t.Fatalf("HQ published %s into the box", s)
				}
				return nil
			case <-time.After(200 * time.Millisecond):
				return context.DeadlineExceeded
			}
		}
	})

	// The lobby's permissions on the box stay as they were.
	lobby, _, errs := connectAs(t, box.ClientURL(), creds, alert.IdentityLobby)
	lobby.Publish("$JS."+hub.Domain+".API.STREAM.INFO."+hub.StreamName, nil)
	lobby.Flush()
	select {
	case err := <-errs:
		t.Logf("lobby: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the lobby reached the hub's JetStream API")
	}
}

// Without the hub the box opens and serves its clients.
func TestLeafHubDown(t *testing.T) {
	_, dir := testenv.RunHub(t, branch)
	creds, err := alert.EnsureCredentials(filepath.Join(t.TempDir(), "nats"))
	if err != nil {
		t.Fatal(err)
	}
	box := alert.NewServer(alert.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(t.TempDir(), "js"),
		Credentials: &creds, Branch: branch, Logger: testLogger(),
		HQURL: "nats-leaf://" + testenv.FreeAddr(t), HQCredentials: hub.CredsFile(dir, branch)})
	if err := box.Open(); err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	nc, _, _ := connectAs(t, box.ClientURL(), creds, alert.IdentityDaemon)
	if err := nc.Publish(alert.Subject(branch, alert.FeedArrival), nil); err != nil {
		t.Fatal(err)
	}
	bad := alert.NewServer(alert.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(t.TempDir(), "js"),
		Credentials: &creds, Branch: branch, Logger: testLogger(),
		HQURL: "nats-leaf://" + testenv.FreeAddr(t), HQCredentials: filepath.Join(dir, "missing.creds")})
	if err := bad.Open(); err == nil {
		bad.Close()
		t.Fatal("opened with missing hq credentials")
	}
	notPEM := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	bad = alert.NewServer(alert.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(t.TempDir(), "js"),
		Credentials: &creds, Branch: branch, Logger: testLogger(),
		HQURL: "nats-leaf://" + testenv.FreeAddr(t), HQCredentials: hub.CredsFile(dir, branch), HQCA: notPEM})
	if err := bad.Open(); err == nil || !strings.Contains(err.Error(), "hq ca") {
		bad.Close()
		t.Fatalf("opened with a CA file holding no certificate: %v", err)
	}
}

func nkeyFile(tb testing.TB, path string) nats.Option {
	opt, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		tb.Fatal(err)
	}
	return opt
}
