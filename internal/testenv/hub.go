package testenv

import (
	"context"
	"path/filepath"
	"testing"

	"concierge/hub"
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
