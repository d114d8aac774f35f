package testenv

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"concierge/hub"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// RunHub provisions an HQ hub for branches in a temp dir, as `concierge
// hub init` does, and runs it on free loopback ports until the test ends.
// It returns the hub and the directory holding hub.yaml and the branches'
// .creds files.
func RunHub(tb testing.TB, branches ...string) (*hub.Hub, string) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "hq")
	if _, err := hub.Init(hub.InitOptions{Dir: dir, Branches: branches,
		Listen: "127.0.0.1:-1", LeafListen: "127.0.0.1:-1"}); err != nil {
		tb.Fatal(err)
	}
	cfg, err := hub.ReadConfig(filepath.Join(dir, hub.ConfigFile))
	if err != nil {
		tb.Fatal(err)
	}
	h := hub.New(cfg)
	h.Logger = Logger()
	if err := h.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h, dir
}

// HubStream is the hub's network stream, read with the hub's own identity
// (hub.yaml's admin seed in hqDir) through url, its client listener.
func HubStream(tb testing.TB, hqDir, url string) jetstream.Stream {
	tb.Helper()
	cfg, err := hub.ReadConfig(filepath.Join(hqDir, hub.ConfigFile))
	if err != nil {
		tb.Fatal(err)
	}
	seed := cfg.AdminSeedFile
	if !filepath.IsAbs(seed) {
		seed = filepath.Join(hqDir, seed)
	}
	opt, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		tb.Fatal(err)
	}
	nc, err := nats.Connect(url, opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, hub.StreamName)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// ConnectBranch connects to url with a branch's .creds file from `hub
// init`, as a thief of the file would; the permission violations the
// server reports arrive on the returned channel.
func ConnectBranch(tb testing.TB, url, credsFile string) (*nats.Conn, chan error) {
	tb.Helper()
	seed, err := hub.ReadSeed(credsFile)
	if err != nil {
		tb.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		tb.Fatal(err)
	}
	errs := make(chan error, 16)
	nc, err := nats.Connect(url, nats.Nkey(pub, kp.Sign),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc, errs
}
