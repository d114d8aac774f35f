package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"concierge/hub"
	"concierge/internal/testenv"
)

func TestHubInitAndRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hq")
	out, errOut, code := run(t, "hub", "init", "--dir", dir, "--branch", "a", "--branch", "b",
		"--listen", "127.0.0.1:-1", "--leaf-listen", "127.0.0.1:-1")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	var got struct {
		Config string            `json:"config"`
		Creds  map[string]string `json:"creds"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(got.Creds["b"]); err != nil || got.Config != filepath.Join(dir, "hub.yaml") {
		t.Fatalf("init output %s: %v", out, err)
	}
	if _, errOut, code := run(t, "hub", "init", "--dir", dir, "--branch", "c"); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second init: exit %d: %s", code, errOut)
	}
	if _, errOut, code := run(t, "hub", "init", "--dir", t.TempDir()); code != 2 || !strings.Contains(errOut, "--branch") {
		t.Fatalf("init without branches: exit %d: %s", code, errOut)
	}
	if _, errOut, code := run(t, "hub", "init", "--dir", filepath.Join(t.TempDir(), "x"), "--branch", "a.b"); code != 1 || !strings.Contains(errOut, "branch id") {
		t.Fatalf("init with a bad branch: exit %d: %s", code, errOut)
	}

	out, errOut, code = run(t, "hub", "add-branch", "--config", got.Config, "--branch", "c")
	if code != 0 || !strings.Contains(out, "c.creds") {
		t.Fatalf("add-branch: exit %d: %s %s", code, out, errOut)
	}
	if _, errOut, code := run(t, "hub", "remove-branch", "--config", got.Config, "--branch", "nope"); code != 1 || !strings.Contains(errOut, "no branch") {
		t.Fatalf("remove-branch of an unknown branch: exit %d: %s", code, errOut)
	}
	if _, errOut, code := run(t, "hub", "add-branch", "--config", got.Config); code != 2 {
		t.Fatalf("add-branch without --branch: exit %d: %s", code, errOut)
	}

	// The hub runs until its context ends; the branch's creds get in.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	errb := &syncBuffer{}
	go func() {
		m := &Main{Stdout: &strings.Builder{}, Stderr: errb, Stdin: strings.NewReader("")}
		done <- m.exitCode(m.Run(ctx, []string{"hub", "--config", got.Config}))
	}()
	url := ""
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		// The port is free-picked: read it from the hub's log line.
		for _, l := range strings.Split(errb.String(), "\n") {
			if i := strings.Index(l, "url=nats://"); i >= 0 && strings.Contains(l, "hub ready") {
				url = strings.Fields(l[i+4:])[0]
				return nil
			}
		}
		return os.ErrNotExist
	})
	seed, err := hub.ReadSeed(got.Creds["a"])
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(url, nats.Nkey(pub, kp.Sign))
	if err != nil {
		t.Fatalf("branch a at the hub: %v", err)
	}
	nc.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("hub: exit %d: %s", code, errb.String())
	}
}
