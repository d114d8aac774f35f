package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"concierge/hub"
	"concierge/internal/testenv"
	"concierge/sqlite"
)

// hqBranch is a branch daemon joined to the hub, and its config file.
type hqBranch struct {
	id   string
	path string
	cfg  Config
	d    *Daemon
}

func startBranch(t *testing.T, hqDir, leaf, id string) *hqBranch {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`branch: %s
db: %s
models:
  dir: %s
vision:
  pool: 1
http:
  addr: 127.0.0.1:0
nats:
  listen: 127.0.0.1:-1
  store_dir: %s
cameras: []
hq:
  url: nats-leaf://%s
  credentials: %s
`, id, filepath.Join(dir, "c.db"), testenv.ModelsDir(t), filepath.Join(dir, "js"), leaf, hub.CredsFile(hqDir, id))
	b := &hqBranch{id: id, path: filepath.Join(dir, id+".yaml")}
	if err := os.WriteFile(b.path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfigFile(b.path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.resolveEngine()
	b.cfg = cfg
	b.d = NewDaemon(cfg, testLogger(t))
	if err := b.d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.d.Close() })
	return b
}

// holds reports whether the branch's database has active templates of
// the customer, read as another process would.
func (b *hqBranch) holds(t *testing.T, customer string) bool {
	t.Helper()
	db, err := sqlite.Open(context.Background(), b.cfg.DB, b.cfg.dbOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM templates t JOIN consents c ON c.id = t.consent_id
		WHERE t.customer_id = ? AND c.withdrawn_at IS NULL`, customer).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func (b *hqBranch) tierSnapshots(t *testing.T, customer string) int {
	t.Helper()
	db, err := sqlite.Open(context.Background(), b.cfg.DB, b.cfg.dbOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := db.TierSnapshots(context.Background(), customer)
	if err != nil {
		t.Fatal(err)
	}
	return len(s)
}

func (b *hqBranch) enroll(t *testing.T, customer, scope string, photos []string) {
	t.Helper()
	args := append([]string{"enroll", "--config", b.path, "--customer", customer, "--name", "Name " + customer,
		"--consent", "F-" + customer, "--scope", scope}, photos...)
	if _, errOut, code := run(t, args...); code != 0 {
		t.Fatalf("enroll %s at %s: exit %d: %s", customer, b.id, code, errOut)
	}
}

func (b *hqBranch) forget(t *testing.T, customer string) {
	t.Helper()
	if _, errOut, code := run(t, "forget", "--config", b.path, "--customer", customer); code != 0 {
		t.Fatalf("forget %s at %s: exit %d: %s", customer, b.id, code, errOut)
	}
}

func eventually(t *testing.T, total time.Duration, what string, ok func() bool) {
	t.Helper()
	testenv.CheckFor(t, total, 100*time.Millisecond, func() error {
		if !ok() {
			return fmt.Errorf("not yet: %s", what)
		}
		return nil
	})
}

// runHubProcess runs `concierge hub --config` until the returned stop is
// called, and waits until it listens.
func runHubProcess(t *testing.T, config, listen string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	errb := &syncBuffer{}
	go func() {
		m := &Main{Stdout: &strings.Builder{}, Stderr: errb, Stdin: strings.NewReader("")}
		done <- m.exitCode(m.Run(ctx, []string{"hub", "--config", config}))
	}()
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		select {
		case code := <-done:
			t.Fatalf("hub exited %d: %s", code, errb.String())
		default:
		}
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err
	})
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("hub: exit %d: %s", code, errb.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// The acceptance: a hub and two branch daemons on loopback with
// credentials from hub init.
func TestHubTwoBranches(t *testing.T) {
	blair, chretien, powell, schroeder := lfw(t, "Tony_Blair"), lfw(t, "Jean_Chretien"), lfw(t, "Colin_Powell"), lfw(t, "Gerhard_Schroeder")
	hqDir := filepath.Join(t.TempDir(), "hq")
	listen, leaf := testenv.FreeAddr(t), testenv.FreeAddr(t)
	if _, errOut, code := run(t, "hub", "init", "--dir", hqDir, "--branch", "a", "--branch", "b",
		"--listen", listen, "--leaf-listen", leaf); code != 0 {
		t.Fatalf("hub init: %s", errOut)
	}
	config := filepath.Join(hqDir, "hub.yaml")
	stop := runHubProcess(t, config, listen)
	// A box given another branch's credential refuses to start.
	wrong := filepath.Join(t.TempDir(), "wrong.yaml")
	os.WriteFile(wrong, []byte(fmt.Sprintf("branch: b\ndb: %s\nmodels:\n  dir: %s\nhttp:\n  addr: 127.0.0.1:0\nnats:\n  listen: 127.0.0.1:-1\n  store_dir: %s\ncameras: []\nhq:\n  url: nats-leaf://%s\n  credentials: %s\n",
		filepath.Join(t.TempDir(), "c.db"), testenv.ModelsDir(t), filepath.Join(t.TempDir(), "js"), leaf, hub.CredsFile(hqDir, "a"))), 0o600)
	wcfg, err := ReadConfigFile(wrong)
	if err != nil {
		t.Fatal(err)
	}
	wcfg.resolveEngine()
	wd := NewDaemon(wcfg, testLogger(t))
	if err := wd.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "made for branch \"a\"") {
		wd.Close()
		t.Fatalf("a box with another branch's credential: %v", err)
	}

	a := startBranch(t, hqDir, leaf, "a")
	b := startBranch(t, hqDir, leaf, "b")

	// Branch scope stays at a; network scope is recognised at b.
	a.enroll(t, "C-chretien", "branch", chretien[:3])
	a.enroll(t, "C-blair", "network", blair[:3])
	eventually(t, 10*time.Second, "Blair at b", func() bool { return b.holds(t, "C-blair") })
	// Photos not enrolled: b names Blair in some and nobody else in any.
	var probes [][]byte
	for _, f := range blair[3:9] {
		img, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		probes = append(probes, img)
	}
	if n := recognised(t, identifyCLI(t, b.path, probes), "C-blair"); n == 0 {
		t.Fatal("b recognised Blair in none of his photos")
	}
	if b.holds(t, "C-chretien") {
		t.Fatal("a branch-scope enrollment reached b")
	}

	// A tier file imported once at HQ reaches both branches; a bad one is
	// refused at HQ.
	csv := filepath.Join(t.TempDir(), "2024-03.csv")
	os.WriteFile(csv, []byte("customer_id,month,points,rm_name,form_of_address,risk_flags\nC-tier,2024-03,2000,李经理,李先生,\n"), 0o600)
	if out, errOut, code := run(t, "tiers", "import", "--hub", config, csv); code != 0 || !strings.Contains(out, "concierge-net.hq.tiers.") {
		t.Fatalf("tiers import --hub: exit %d: %s %s", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("customer_id,month,points\nC-x,2024-13,abc\n"), 0o600)
	if _, errOut, code := run(t, "tiers", "import", "--hub", config, bad); code != 1 {
		t.Fatalf("a bad tier file at HQ: exit %d: %s", code, errOut)
	}
	for _, br := range []*hqBranch{a, b} {
		eventually(t, 10*time.Second, "tiers at "+br.id, func() bool { return br.tierSnapshots(t, "C-tier") == 1 })
	}

	// a's credential, stolen, reads none of b's alerts and speaks not for b.
	seed, err := hub.ReadSeed(hub.CredsFile(hqDir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := nkeys.FromSeed([]byte(seed))
	pub, _ := kp.PublicKey()
	violations := make(chan error, 8)
	thief, err := nats.Connect("nats://"+listen, nats.Nkey(pub, kp.Sign),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case violations <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer thief.Close()
	thief.Subscribe("concierge.b.arrival", func(*nats.Msg) {})
	thief.Flush()
	select {
	case err := <-violations:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("subscribing to b's alerts: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a's credential subscribed to b's alerts")
	}
	tjs, _ := jetstream.NewWithDomain(thief, hub.Domain)
	pctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if _, err := tjs.Publish(pctx, hub.SubjectPrefix+".b.c.0123456789abcdef0123456789abcdef", []byte("x")); err == nil {
		t.Fatal("a's credential published an enrollment event as b")
	}
	cancel()

	// A withdrawal at b reaches a.
	b.forget(t, "C-blair")
	eventually(t, 10*time.Second, "Blair gone from a", func() bool { return !a.holds(t, "C-blair") })

	// With the hub stopped both branches work on; their changes cross
	// once it is back.
	b.enroll(t, "C-powell", "network", powell[:3])
	eventually(t, 10*time.Second, "Powell at a", func() bool { return a.holds(t, "C-powell") })
	hqDown := func() bool {
		for _, p := range a.d.problems(context.Background(), time.Now().Add(hqStaleAfter-3*time.Second)) {
			if p.Component == "hq" {
				return true
			}
		}
		return false
	}
	if hqDown() {
		t.Fatal("/healthz reports the hub down while it runs")
	}
	stop()
	eventually(t, 10*time.Second, "/healthz reporting the hub's silence", hqDown)
	a.enroll(t, "C-schroeder", "network", schroeder[:3])
	b.forget(t, "C-powell")
	if !a.holds(t, "C-powell") || b.holds(t, "C-schroeder") {
		t.Fatal("changes crossed without the hub")
	}
	runHubProcess(t, config, listen)
	eventually(t, 30*time.Second, "Schroeder at b", func() bool { return b.holds(t, "C-schroeder") })
	eventually(t, 30*time.Second, "Powell gone from a", func() bool { return !a.holds(t, "C-powell") })
	eventually(t, 10*time.Second, "/healthz clear again", func() bool { return !hqDown() })
}
