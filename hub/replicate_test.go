package hub_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge/alert"
	"concierge/enroll"
	"concierge/face"
	"concierge/hub"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
	"concierge/sqlite"
)

var _ hub.Store = (*sqlite.DB)(nil)

// box is a branch: its database, its embedded server joined to the hub
// and its replicator.
type box struct {
	id  string
	db  *sqlite.DB
	srv *alert.Server
	nc  *nats.Conn
	rep *hub.Replicator
}

func startBox(t *testing.T, h *hub.Hub, dir, id string) *box {
	return startBoxCA(t, h, dir, id, "")
}

func startBoxCA(t *testing.T, h *hub.Hub, dir, id, ca string) *box {
	t.Helper()
	return startBoxWith(t, h, dir, id, ca, 0)
}

// startBoxWith starts a box that keeps up to doors door templates of a
// customer (0: it does not learn).
func startBoxWith(t *testing.T, h *hub.Hub, dir, id, ca string, doors int) *box {
	t.Helper()
	b := &box{id: id}
	b.db = testdb.Open(t)
	n := testenv.RunNATS(t, testenv.ClosedNATS(id), testenv.NATSConfig(func(c *alert.ServerConfig) {
		c.HQURL, c.HQCredentials, c.HQCA = h.LeafURL(), hub.CredsFile(dir, id), ca
	}))
	b.srv = n.Server
	creds := n.Creds
	opt, err := nats.NkeyOptionFromSeed(creds.SeedFile(alert.IdentityDaemon))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.srv.ClientURL(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b.nc = nc
	key, err := hub.ReadKey(filepath.Join(dir, hub.NetworkKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	b.rep, err = hub.NewReplicator(hub.ReplicatorConfig{Branch: id, Conn: nc, Store: b.db, NetworkKey: key,
		DoorTemplates: doors, Poll: 100 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.rep.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.rep.Close() })
	return b
}

func vec(v float32) face.Embedding {
	var e face.Embedding
	for i := range e {
		e[i] = v + float32(i)/1000
	}
	return e
}

func (b *box) enroll(t *testing.T, id, scope string, v float32) {
	t.Helper()
	at := time.Now().UTC()
	if _, err := b.db.SaveEnrollment(context.Background(), enroll.Customer{ID: id, DisplayName: "Name " + id, Created: at},
		enroll.Consent{Reference: "F-" + id, TextVersion: "v1", Channel: "kiosk", GrantedAt: at, Scope: scope},
		[]enroll.Template{{Embedding: vec(v), Model: "m", Created: at}}); err != nil {
		t.Fatal(err)
	}
}

// templates is how many active templates the box holds of a customer.
func (b *box) templates(id string) int {
	ts, err := b.db.Templates(context.Background(), "m")
	if err != nil {
		return -1
	}
	n := 0
	for _, t := range ts {
		if t.CustomerID == id {
			n++
		}
	}
	return n
}

func want(b *box, id string, n int) func() error {
	return func() error {
		if got := b.templates(id); got != n {
			return fmt.Errorf("%s holds %d templates of %s, want %d", b.id, got, id, n)
		}
		return nil
	}
}

func TestReplicationBetweenBranches(t *testing.T) {
	h, dir, restart := runRestartableHub(t)
	a := startBox(t, h, dir, "a")
	b := startBox(t, h, dir, "b")

	// A network-scope enrollment at a reaches b; a branch-scope one never
	// leaves a.
	a.enroll(t, "C-branch", enroll.ScopeBranch, 0.2)
	a.enroll(t, "C-net", enroll.ScopeNetwork, 0.4)
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, want(b, "C-net", 1))
	if got, _ := b.db.Templates(context.Background(), "m"); len(got) != 1 {
		t.Fatalf("b holds %d templates, want only C-net's", len(got))
	}
	if e := b.templates("C-net"); e != 1 {
		t.Fatal(e)
	}
	cust, _ := b.db.Customer(context.Background(), "C-net")
	if cust.DisplayName != "Name C-net" {
		t.Fatalf("name at b %q", cust.DisplayName)
	}
	if n := hubMessages(t, h, dir); n != 1 {
		t.Fatalf("the hub stores %d events, want 1 (C-net's)", n)
	}

	// A withdrawal at b removes the customer at a, through a's erasure
	// queue.
	if _, err := b.db.Forget(context.Background(), "C-net", time.Now()); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, want(a, "C-net", 0))
	if er, _ := a.db.PendingErasures(context.Background()); len(er) != 1 {
		t.Fatalf("a queued %d erasures, want 1", len(er))
	}

	// With the hub down, both boxes go on; their changes reach each other
	// once it is back.
	b.enroll(t, "C-gone", enroll.ScopeNetwork, 0.8)
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, want(a, "C-gone", 1))
	if s := a.rep.Stale(time.Now(), time.Minute); s != "" {
		t.Fatalf("stale with the hub up: %s", s)
	}
	h.Close()
	// Without the hub the box knows it is out of step.
	testenv.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if a.rep.Stale(time.Now(), 500*time.Millisecond) == "" {
			return fmt.Errorf("a does not know the hub is gone")
		}
		return nil
	})
	a.enroll(t, "C-later", enroll.ScopeNetwork, 0.6)
	b.db.Forget(context.Background(), "C-gone", time.Now())
	restart()
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, want(b, "C-later", 1))
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, want(a, "C-gone", 0))
	if s := a.rep.Stale(time.Now(), 5*time.Second); s != "" {
		t.Fatalf("stale after the hub came back: %s", s)
	}
}

// A new box joining gets the current state, and catches up before it
// would recognise anyone.
func TestReplicationCatchUp(t *testing.T) {
	h, dir, _ := runRestartableHub(t)
	a := startBox(t, h, dir, "a")
	for i := range 20 {
		a.enroll(t, fmt.Sprintf("C%02d", i), enroll.ScopeNetwork, float32(i)/10)
	}
	a.db.Forget(context.Background(), "C03", time.Now())
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if n := hubMessages(t, h, dir); n != 20 {
			return fmt.Errorf("hub holds %d events", n)
		}
		return nil
	})
	b := startBox(t, h, dir, "b")
	b.rep.Close() // only CatchUp from here
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.rep.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	ts, _ := b.db.Templates(ctx, "m")
	if len(ts) != 19 || b.templates("C03") != 0 {
		t.Fatalf("b holds %d templates after catching up, want 19 without C03", len(ts))
	}
	if p, _ := b.db.NetworkPosition(ctx); p == 0 {
		t.Fatal("no position recorded")
	}
}

// runRestartableHub runs a hub for branches a and b on free ports, which
// restart keeps, so that it starts again where the boxes look for it.
func runRestartableHub(t *testing.T) (*hub.Hub, string, func()) {
	t.Helper()
	h, dir := testenv.RunHub(t, "a", "b")
	cfg, err := hub.ReadConfig(filepath.Join(dir, hub.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.LeafListen = strings.TrimPrefix(h.ClientURL(), "nats://"), h.LeafAddr()
	restart := func() {
		h2 := hub.New(cfg)
		h2.Logger = testLogger()
		if err := h2.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h2.Close() })
	}
	return h, dir, restart
}

func hubMessages(t *testing.T, h *hub.Hub, dir string) uint64 {
	t.Helper()
	return testenv.HubStream(t, dir, h.ClientURL()).CachedInfo().State.Msgs
}

// With TLS on the hub (required beyond loopback) the boxes verify it
// against hq.ca and replicate as before.
func TestReplicationOverTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hq")
	cfg, err := hub.Init(hub.InitOptions{Dir: dir, Branches: []string{"a", "b"},
		Listen: "127.0.0.1:-1", LeafListen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	crt, key := selfSigned(t)
	cfg, err = hub.ReadConfig(filepath.Join(dir, hub.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSCert, cfg.TLSKey = crt, key
	h := hub.New(cfg)
	h.Logger = testLogger()
	if err := h.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	a := startBoxCA(t, h, dir, "a", crt)
	b := startBoxCA(t, h, dir, "b", crt)
	a.enroll(t, "C-tls", enroll.ScopeNetwork, 0.3)
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, want(b, "C-tls", 1))
}

// A tier file imported once at HQ reaches every box, which imports it;
// no branch can publish one.
func TestTiersFromHQ(t *testing.T) {
	h, dir, _ := runRestartableHub(t)
	b := startBox(t, h, dir, "b")
	b.rep.Close()
	key, _ := hub.ReadKey(filepath.Join(dir, hub.NetworkKeyFile))
	got := make(chan string, 4)
	rep, err := hub.NewReplicator(hub.ReplicatorConfig{Branch: "b", Conn: b.nc, Store: b.db, NetworkKey: key,
		Logger: testLogger(), Tiers: func(_ context.Context, source string, data []byte) error {
			got <- source + ":" + string(data)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Open(); err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	cfg, err := hub.ReadConfig(filepath.Join(dir, hub.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = strings.TrimPrefix(h.ClientURL(), "nats://") // hub.yaml asked for any free port
	csv := "customer_id,month,points\nC1,2024-03,2000\n"
	if _, err := hub.PublishTiers(context.Background(), cfg, key, "march.csv", []byte(csv)); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		if g != "march.csv:"+csv {
			t.Fatalf("box imported %q", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tier file did not reach the box")
	}
	nc, _ := testenv.ConnectBranch(t, h.ClientURL(), hub.CredsFile(dir, "a"))
	js, _ := jetstream.NewWithDomain(nc, hub.Domain)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, hub.SubjectPrefix+".hq.tiers.x", []byte("x")); err == nil {
		t.Fatal("a branch published a tier file as HQ")
	}
	if _, err := hub.Init(hub.InitOptions{Dir: t.TempDir(), Branches: []string{"hq"}}); err == nil {
		t.Fatal("a branch may be called hq")
	}
}
