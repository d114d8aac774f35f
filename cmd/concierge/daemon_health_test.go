package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/sqlite"
)

// `concierge run` with no configuration refuses, naming both ways out,
// with the usage exit status.
func TestRunNeedsConfigOrDefaults(t *testing.T) {
	t.Setenv("CONCIERGE_CONFIG", "")
	var stderr bytes.Buffer
	m := &Main{Stdout: io.Discard, Stderr: &stderr, Stdin: strings.NewReader("")}
	err := m.Run(context.Background(), []string{"run"})
	if code := m.exitCode(err); code != 2 {
		t.Fatalf("exit %d, want 2 (%v)", code, err)
	}
	if msg := stderr.String(); !strings.Contains(msg, "--config") || !strings.Contains(msg, "--defaults") {
		t.Fatalf("message %q names neither --config nor --defaults", msg)
	}
}

// frozenDB is a database file that exists, holds the schema, and cannot
// be written, even by root.
func frozenDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	testenv.Freeze(t, path)
	return path
}

// On a database it cannot write, `concierge run` refuses to start, with a
// message naming the file and a non-zero exit; the same with --defaults
// and the database named by the environment.
func TestRunRefusesReadOnlyDatabase(t *testing.T) {
	path := frozenDB(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.yaml")
	yaml := fmt.Sprintf("branch: t1\ndb: %s\nmodels: {dir: %s}\nnats: {listen: \"127.0.0.1:-1\", store_dir: %s}\nhttp: {addr: \"127.0.0.1:0\"}\n",
		path, filepath.Join(dir, "models"), filepath.Join(dir, "js"))
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONCIERGE_CONFIG", "")
	for _, args := range [][]string{{"run", "--config", cfgFile}, {"run", "--defaults"}} {
		t.Setenv("CONCIERGE_DB", path)
		var stderr bytes.Buffer
		m := &Main{Stdout: io.Discard, Stderr: &stderr, Stdin: strings.NewReader("")}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := m.Run(ctx, args)
		cancel()
		if code := m.exitCode(err); code != 1 {
			t.Fatalf("%v: exit %d (%v), want 1", args, code, err)
		}
		if msg := stderr.String(); !strings.Contains(msg, "not writable") || !strings.Contains(msg, path) {
			t.Fatalf("%v: message %q", args, msg)
		}
	}
}

type healthBody struct {
	Status   string `json:"status"`
	Problems []struct {
		Component, ID, Reason string
	} `json:"problems"`
	Cameras []struct {
		ID    string  `json:"id"`
		Up    bool    `json:"up"`
		FPS   float64 `json:"fps"`
		Error string  `json:"error"`
	} `json:"cameras"`
}

// getHealth returns /healthz's status code, decoded body and raw text.
func getHealth(t *testing.T, addr string) (int, healthBody, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var h healthBody
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("healthz body %q: %v", raw, err)
	}
	return resp.StatusCode, h, string(raw)
}

func (h healthBody) problem(component, id string) string {
	for _, p := range h.Problems {
		if p.Component == component && p.ID == id {
			return p.Reason
		}
	}
	return ""
}

// bareConfig is a daemon configuration on a fresh database with nobody
// enrolled, no cameras, and free loopback ports.
func bareConfig(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Branch = "t1"
	cfg.DB = filepath.Join(dir, "c.db")
	cfg.Models.Dir = testenv.ModelsDir(t)
	cfg.Vision.Pool = 1
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:-1"
	cfg.NATS.StoreDir = filepath.Join(dir, "js")
	cfg.resolveEngine()
	return cfg
}

// The database turning unwritable under the running daemon (immutable
// files: root cannot write them either) turns /healthz 503 with the
// database named, within the probe interval; writable again, 200 again.
func TestHealthzUnwritableDatabase(t *testing.T) {
	cfg := bareConfig(t)
	d := NewDaemon(cfg, testLogger(t))
	d.health.probeEvery = 100 * time.Millisecond
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if code, h, raw := getHealth(t, d.HTTPAddr()); code != 200 || h.Status != "ok" || len(h.Problems) != 0 {
		t.Fatalf("healthy daemon: %d %s", code, raw)
	}
	thaw := testenv.Freeze(t, cfg.DB, cfg.DB+"-wal", filepath.Dir(cfg.DB))
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		code, h, raw := getHealth(t, d.HTTPAddr())
		if code != http.StatusServiceUnavailable || h.Status != "failing" || !strings.Contains(h.problem("database", ""), "not writable") {
			return fmt.Errorf("frozen database: %d %s", code, raw)
		}
		return nil
	})
	thaw()
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if code, _, raw := getHealth(t, d.HTTPAddr()); code != 200 {
			return fmt.Errorf("thawed database: %d %s", code, raw)
		}
		return nil
	})
}

// The real binary with three real RTSP cameras behind basic auth: one with
// the right password, served for a few seconds only; one with a wrong
// password; one on a port where nothing listens. /healthz answers 503
// naming the two broken cameras; the good one is up with a frame rate
// until its server stops, and then it is named too, within
// vision.camera_stale_after. No password is ever in the log (OpenCV's own
// output included) or in /healthz and /metrics.
func TestDaemonCameraHealthAndMaskedCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	clip := testenv.Shared(t, "data/video/d11.mp4")
	// The binary is built before the camera starts serving: a build under
	// load can outlast the few seconds the camera serves.
	cfg := bareConfig(t)
	bin := buildConcierge(t)
	const serveFor = 20
	base, _ := testenv.RTSPServe(t, clip, serveFor, "cam:Good5ecret")
	started := time.Now()
	cred := func(pw, url string) string { return strings.Replace(url, "rtsp://", "rtsp://cam:"+pw+"@", 1) }
	dead := fmt.Sprintf("rtsp://127.0.0.1:%d/door", testenv.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.yaml")
	yaml := fmt.Sprintf("branch: t1\ndb: %s\nmodels: {dir: %s}\nvision: {pool: 1, camera_stale_after: 3s}\n"+
		"nats: {listen: \"127.0.0.1:%d\", store_dir: %s}\nhttp: {addr: %q}\nlog: {level: debug, format: json}\ncameras:\n"+
		"  - {id: door-1, source: %q}\n  - {id: wrong-pass, source: %q}\n  - {id: dead-port, source: %q}\n",
		cfg.DB, cfg.Models.Dir, testenv.FreePort(t), cfg.NATS.StoreDir, httpAddr,
		cred("Good5ecret", base), cred("Wr0ngSecret", base), cred("De4dSecret", dead))
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr := startConcierge(t, bin, cfgFile)
	var seen []string // every /healthz and /metrics body
	leak := func() error {
		for _, text := range append(seen, stderr.String()) {
			for _, pw := range []string{"Good5ecret", "Wr0ngSecret", "De4dSecret"} {
				if strings.Contains(text, pw) {
					return fmt.Errorf("password %s in:\n%s", pw, text)
				}
			}
		}
		return nil
	}

	// door-1 up with a frame rate, the other two failing. They are
	// checked apart: the two broken ones fail only after
	// camera_stale_after, and a test server under load may drop door-1's
	// stream before that.
	var doorUp, wrongFailing, deadFailing bool
	var metrics []byte
	testenv.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return fmt.Errorf("%v; daemon log:\n%s", err, stderr.String())
		}
		resp.Body.Close()
		code, h, raw := getHealth(t, httpAddr)
		seen = append(seen, raw)
		if len(h.Cameras) != 3 {
			return fmt.Errorf("%d %s", code, raw)
		}
		if h.Cameras[0].Up && h.Cameras[0].FPS > 0 && h.problem("camera", "door-1") == "" && !doorUp {
			doorUp = true
			resp, err := http.Get("http://" + httpAddr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			seen = append(seen, string(metrics))
		}
		wrongFailing = wrongFailing || (code == http.StatusServiceUnavailable && h.Status == "failing" && h.problem("camera", "wrong-pass") != "")
		deadFailing = deadFailing || (code == http.StatusServiceUnavailable && h.problem("camera", "dead-port") != "")
		if !doorUp || !wrongFailing || !deadFailing {
			return fmt.Errorf("door-1 seen up %v, wrong-pass failing %v, dead-port failing %v: %d %s\ndaemon log:\n%s",
				doorUp, wrongFailing, deadFailing, code, raw, stderr.String())
		}
		return nil
	})
	for _, want := range []string{`concierge_camera_up{camera="door-1"} 1`, `concierge_camera_fps{camera="door-1"}`, `concierge_camera_last_frame_age_seconds{camera="dead-port"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The server stops: door-1 goes stale within camera_stale_after.
	testenv.CheckFor(t, serveFor*time.Second+30*time.Second, 200*time.Millisecond, func() error {
		code, h, raw := getHealth(t, httpAddr)
		seen = append(seen, raw)
		if code != http.StatusServiceUnavailable || !strings.Contains(h.problem("camera", "door-1"), "no frame for") {
			return fmt.Errorf("%v after the server started: %d %s", time.Since(started).Round(time.Second), code, raw)
		}
		return nil
	})
	if el := time.Since(started); el > serveFor*time.Second+15*time.Second {
		t.Errorf("door-1 reported stale %v after its server started serving for %d s", el.Round(time.Second), serveFor)
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	seen = append(seen, string(metrics))
	for _, cam := range []string{"door-1", "wrong-pass", "dead-port"} {
		if want := `concierge_camera_up{camera="` + cam + `"} 0`; !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Masked errors do reach the log and /healthz: the operator sees why.
	if !strings.Contains(stderr.String(), "rtsp://***@127.0.0.1") {
		t.Errorf("no masked source in the log:\n%s", stderr.String())
	}
	if err := leak(); err != nil {
		t.Fatal(err)
	}
	// OpenCV's backends print to fd 2 beneath the logger (FFmpeg's
	// "[tcp @ 0x…] Connection refused" for the dead port, GStreamer's
	// blocks): the log stays one JSON record per line, theirs included.
	native := 0
	for i, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec struct{ Level, Msg, Component string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level == "" {
			t.Fatalf("log line %d is not a JSON record (%v): %q", i+1, err, line)
		}
		if rec.Msg == "native library output" && rec.Component == "native" {
			native++
		}
	}
	if native == 0 {
		t.Errorf("no native library output in the log: the dead port's FFmpeg line went elsewhere:\n%s", stderr.String())
	}
}

// The running daemon's database turns unwritable (immutable files) before
// the clip's three customers walk in: their arrivals are decided and held,
// /healthz names the database and the held arrivals, and nothing reaches
// staff. Writable again, every held arrival is recorded and alerted once,
// under the id it was decided with, and /healthz is 200 again.
func TestDaemonHoldsArrivalsWhileDatabaseFails(t *testing.T) {
	env := newDaemonEnv(t)
	// At the clip's own pace: the first customer is decided about two
	// seconds in, long after the database is frozen.
	env.cfg.Cameras = []Camera{{ID: "door-1", Source: env.clip}}
	d := NewDaemon(env.cfg, testLogger(t))
	d.health.probeEvery = 200 * time.Millisecond
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	db := env.cfg.DB
	thaw := testenv.Freeze(t, db, db+"-wal", filepath.Dir(db))
	arrivals, stop := collect(t, d.alertConn("test"), "concierge.t1.arrival")
	defer stop()

	testenv.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		st := d.checkin.Stats.Snapshot()
		if st.Arrivals < 3 || st.Pending != 3 {
			return fmt.Errorf("%d arrivals decided, %d held", st.Arrivals, st.Pending)
		}
		return nil
	})
	code, h, raw := getHealth(t, d.HTTPAddr())
	if code != http.StatusServiceUnavailable || h.problem("arrivals", "") == "" || h.problem("database", "") == "" {
		t.Fatalf("while frozen: %d %s", code, raw)
	}
	if got := arrivals(); len(got) != 0 {
		t.Fatalf("%d alerts sent from an unwritable database", len(got))
	}

	thaw()
	// The probe notices within 200 ms and wakes the retries, whatever
	// their backoff (30 s by now).
	testenv.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if n := len(arrivals()); n < 3 {
			return fmt.Errorf("%d alerts after thaw", n)
		}
		if code, _, raw := getHealth(t, d.HTTPAddr()); code != 200 {
			return fmt.Errorf("healthz %d %s", code, raw)
		}
		return nil
	})
	// Writable stays writable: connections opened on the frozen file,
	// which SQLite keeps read-only, are gone (sqlite.ResetConnections).
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if e := d.health.dbError(); e != "" {
			t.Fatalf("the write probe fails again after the thaw: %s", e)
		}
	}
	var alerted []string
	for _, a := range arrivals() {
		alerted = append(alerted, a.ID)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if st := d.checkin.Stats.Snapshot(); st.Arrivals != 3 || st.Redelivered != 3 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	sdb, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	visits, err := sdb.Visits(context.Background(), "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var recorded []string
	for _, v := range visits {
		recorded = append(recorded, v.ID)
	}
	if strings.Join(recorded, ",") != strings.Join(alerted, ",") {
		t.Fatalf("visits %v, alerts %v: want the same arrivals once each", recorded, alerted)
	}
}

// With its NATS server gone, the daemon's alerts stay in the outbox:
// /healthz answers 503 naming the outbox once the oldest has waited
// alerts.outbox_stale_after, and 200 again once a server takes them.
func TestHealthzOutboxDoesNotDrain(t *testing.T) {
	cfg := bareConfig(t)
	ns := testenv.RunNATS(t)
	ns.Stop()
	cfg.NATS.URL = ns.URL()
	cfg.Alerts.OutboxStaleAfter = time.Second
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a := checkin.Arrival{ID: ulid.Make().String(), Branch: "t1", Camera: "door-1", CustomerID: "C1", At: time.Now()}
	if err := d.notifier.Notify(context.Background(), a, nil); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		code, h, raw := getHealth(t, d.HTTPAddr())
		if code != http.StatusServiceUnavailable || !strings.Contains(h.problem("outbox", ""), "does not drain") {
			return fmt.Errorf("%d %s", code, raw)
		}
		return nil
	})
	ns.Start()
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if code, _, raw := getHealth(t, d.HTTPAddr()); code != 200 {
			return fmt.Errorf("%d %s", code, raw)
		}
		return nil
	})
}
