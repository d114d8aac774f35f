package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge/alert"
	"concierge/internal/testenv"
	"concierge/sqlite"
)

// buildConcierge builds the binary once for a test that needs a real
// process to signal.
func buildConcierge(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "concierge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startConcierge runs `concierge run` with a config file; the process is
// killed when the test ends if it is still running.
func startConcierge(t *testing.T, bin, cfgFile string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", cfgFile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &stderr
}

// outboxArrivals is the ids of the arrival alerts in the outbox, in the
// order they were written, and how many outbox messages are unsent.
func outboxArrivals(t *testing.T, dbPath, branch string) (ids []string, unsent int) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.SQL().Query(`SELECT payload FROM alert_outbox WHERE subject = ? ORDER BY seq`, alert.Subject(branch, alert.FeedArrival))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&payload); err != nil {
			t.Fatal(err)
		}
		m, err := alert.Decode(payload)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM alert_outbox WHERE sent_at IS NULL`).Scan(&unsent); err != nil {
		t.Fatal(err)
	}
	return ids, unsent
}

// The daemon is killed (SIGKILL, no chance to flush) while its NATS server
// is down and the visitors' alerts wait in the SQLite outbox. When NATS is
// back, the next run of the daemon publishes every one of them, in order
// and once.
func TestDaemonSIGKILLKeepsOutbox(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	env := newDaemonEnv(t)
	bin := buildConcierge(t)
	dir := t.TempDir()
	// NATS is down while the first run fills the outbox.
	ns := testenv.RunNATS(t, testenv.JetStreamDir(filepath.Join(dir, "js")))
	ns.Stop()
	natsURL := ns.URL()
	config := func(name string, cameras bool) string {
		yaml := fmt.Sprintf("branch: t1\ndb: %s\nmodels: {dir: %s}\nvision: {pool: 1}\nnats: {url: %q}\nhttp: {addr: \"127.0.0.1:0\"}\n",
			env.cfg.DB, env.cfg.Models.Dir, natsURL)
		if cameras {
			yaml += fmt.Sprintf("cameras:\n  - {id: door-1, source: %s, fast: true}\n", env.clip)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	// First run: NATS is down; the clip's three customers arrive.
	first, stderr := startConcierge(t, bin, config("first.yaml", true))
	var ids []string
	testenv.CheckFor(t, 90*time.Second, 100*time.Millisecond, func() error {
		var unsent int
		if ids, unsent = outboxArrivals(t, env.cfg.DB, "t1"); len(ids) < 3 || unsent == 0 {
			return fmt.Errorf("%d arrivals in the outbox, %d unsent; daemon log:\n%s", len(ids), unsent, stderr.String())
		}
		return nil
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	ids, unsent := outboxArrivals(t, env.cfg.DB, "t1")
	if unsent == 0 {
		t.Fatal("nothing left in the outbox to deliver")
	}

	// NATS comes back; the second run (no cameras, so nothing new) drains
	// the outbox.
	ns.Start()
	second, stderr := startConcierge(t, bin, config("second.yaml", false))
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if _, unsent := outboxArrivals(t, env.cfg.DB, "t1"); unsent != 0 {
			return fmt.Errorf("%d outbox messages unsent; daemon log:\n%s", unsent, stderr.String())
		}
		return nil
	})
	// Exactly the outbox's arrivals, in its order, each once.
	stream, err := js.Stream(ctx, alert.StreamName("t1"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != alert.Subject("t1", alert.FeedArrival) {
			continue
		}
		a, err := alert.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("stream holds arrivals %v, want the outbox's %v", got, ids)
	}
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second run: %v\n%s", err, stderr.String())
	}
}
