package hub_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"concierge"
	"concierge/hub"
	"concierge/internal/testenv"
)

var testLogger = testenv.Logger

func TestInitWritesSecretsOnlyOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hq")
	cfg, err := hub.Init(hub.InitOptions{Dir: dir, Branches: []string{"b001", "b002"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Branches) != 2 || cfg.Listen != hub.DefaultListen || cfg.LeafListen != hub.DefaultLeafListen {
		t.Fatalf("config %+v", cfg)
	}
	for _, f := range []string{hub.ConfigFile, "b001.creds", "b002.creds", hub.NetworkKeyFile, "hub.nk", "jetstream.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	yml, _ := os.ReadFile(filepath.Join(dir, hub.ConfigFile))
	seed, err := hub.ReadSeed(hub.CredsFile(dir, "b001"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(yml), seed) || !strings.HasPrefix(seed, "SU") {
		t.Fatal("hub.yaml must hold public keys only, and the creds a user seed")
	}
	if _, err := hub.ReadKey(filepath.Join(dir, hub.NetworkKeyFile)); err != nil {
		t.Fatal(err)
	}
	if id, err := hub.CredsBranch(hub.CredsFile(dir, "b002")); err != nil || id != "b002" {
		t.Fatalf("creds made for %q: %v", id, err)
	}
	_, err = hub.Init(hub.InitOptions{Dir: dir, Branches: []string{"b003"}})
	if concierge.ErrorCode(err) != concierge.ECONFLICT {
		t.Fatalf("second init: %v, want a conflict", err)
	}
	for _, bad := range [][]string{nil, {"b.1"}, {"a", "a"}, {"x y"}} {
		_, err := hub.Init(hub.InitOptions{Dir: filepath.Join(t.TempDir(), "x"), Branches: bad})
		if concierge.ErrorCode(err) != concierge.EINVALID {
			t.Errorf("branches %q: %v, want invalid", bad, err)
		}
	}
}

func TestReadConfigNamesTheBadKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hub.yaml")
	os.WriteFile(p, []byte("store_dir: s\nstore_key_file: k\nadmin_seed_file: h\nbranches:\n- id: a\n  nkey: nope\n"), 0o600)
	if _, err := hub.ReadConfig(p); err == nil || !strings.Contains(err.Error(), "branches[0]") {
		t.Fatalf("err %v, want one naming branches[0]", err)
	}
}

// A branch's credential publishes its own events into the network
// stream and nothing for another branch; it cannot read other subjects
// nor manage the stream.
func TestBranchPermissions(t *testing.T) {
	h, dir := testenv.RunHub(t, "a", "b")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, errs := testenv.ConnectBranch(t, h.ClientURL(), hub.CredsFile(dir, "a"))
	js, err := jetstream.NewWithDomain(nc, hub.Domain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, hub.SubjectPrefix+".a.c.x", []byte("{}")); err != nil {
		t.Fatalf("own subject: %v", err)
	}
	if _, err := js.Publish(ctx, hub.SubjectPrefix+".a.d.x", []byte("{}")); err != nil {
		t.Fatalf("own door subject: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := js.Publish(short, hub.SubjectPrefix+".b.c.x", []byte("{}")); err == nil {
		t.Fatal("branch a published an event as branch b")
	}
	for _, subj := range []string{".b.d.x", ".a.x.x", ".a.c.x.y", ".a.tiers.x"} {
		short, cancelShort := context.WithTimeout(ctx, time.Second)
		_, err := js.Publish(short, hub.SubjectPrefix+subj, []byte("{}"))
		cancelShort()
		if err == nil {
			t.Fatalf("branch a published on %s", hub.SubjectPrefix+subj)
		}
	}
	s, err := js.Stream(ctx, hub.StreamName)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("stream holds %d messages, want only a's 2", n)
	}
	if err := js.DeleteStream(short, hub.StreamName); err == nil {
		t.Fatal("a branch deleted the network stream")
	}
	if _, err := nc.Subscribe("concierge.b.arrival", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	if err := waitViolation(errs, "concierge.b.arrival"); err != nil {
		t.Fatal(err)
	}
	// It reads the network stream through a consumer of its own.
	c, err := js.OrderedConsumer(ctx, hub.StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil || m.Subject() != hub.SubjectPrefix+".a.c.x" {
		t.Fatalf("next: %v", err)
	}
}

// waitViolation waits for the server's permissions violation on subj
// (the publishes refused before report theirs too).
func waitViolation(errs chan error, subj string) error {
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-errs:
			if strings.Contains(strings.ToLower(err.Error()), "permissions violation") && strings.Contains(err.Error(), subj) {
				return nil
			}
		case <-deadline:
			return errors.New("no permissions violation reported for another branch's alerts")
		}
	}
}

func TestOpenAndCloseTwice(t *testing.T) {
	h, _ := testenv.RunHub(t, "a", "b")
	if err := h.Open(context.Background()); err == nil {
		t.Fatal("second open succeeded")
	}
	h.Close()
	h.Close()
}

// A branch added to hub.yaml gets in after the hub's restart; a retired
// one no longer does.
func TestAddAndRemoveBranch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hq")
	if _, err := hub.Init(hub.InitOptions{Dir: dir, Branches: []string{"a", "b"},
		Listen: "127.0.0.1:-1", LeafListen: "127.0.0.1:-1"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, hub.ConfigFile)
	if _, err := hub.AddBranch(path, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.AddBranch(path, "c"); concierge.ErrorCode(err) != concierge.ECONFLICT {
		t.Fatalf("adding c twice: %v", err)
	}
	if _, err := hub.RemoveBranch(path, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.RemoveBranch(path, "zz"); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("removing an unknown branch: %v", err)
	}
	acc, _ := os.ReadFile(filepath.Join(dir, hub.AccountsConfFile))
	cfg, err := hub.ReadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Branches) != 2 || !strings.Contains(string(acc), cfg.Branches[1].NKey) || strings.Contains(string(acc), "# a\n") {
		t.Fatalf("branches %+v; accounts:\n%s", cfg.Branches, acc)
	}
	h := hub.New(cfg)
	h.Logger = testLogger()
	if err := h.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	testenv.ConnectBranch(t, h.ClientURL(), hub.CredsFile(dir, "c"))
	seed, _ := hub.ReadSeed(hub.CredsFile(dir, "a"))
	kp, _ := nkeys.FromSeed([]byte(seed))
	pub, _ := kp.PublicKey()
	if nc, err := nats.Connect(h.ClientURL(), nats.Nkey(pub, kp.Sign), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a retired branch got in")
	}
}
