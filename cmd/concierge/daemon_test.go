package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"concierge/alert"
	"concierge/internal/testenv"
	"concierge/sqlite"
	"concierge/vision"
)

type daemonEnv struct {
	cfg     Config
	seconds float64
	clip    string
}

// newDaemonEnv enrolls the demo customers from real photos into a fresh
// database and composes the demo's entrance clip.
func newDaemonEnv(t *testing.T) daemonEnv {
	t.Helper()
	testenv.Shared(t, "models/face_detection_yunet_2023mar.onnx")
	cfg, world := enrolledConfig(t)
	dir := filepath.Dir(cfg.DB)
	clip := filepath.Join(dir, "door.avi")
	seconds, err := world.doorClip(clip)
	if err != nil {
		t.Fatal(err)
	}
	// A second camera whose one-second stream keeps ending: it must be
	// reopened without stalling the first.
	short := filepath.Join(dir, "short.avi")
	if err := vision.WriteClip(short, vision.Scene{Width: 640, Height: 360, FPS: 15, Seconds: 1}); err != nil {
		t.Fatal(err)
	}
	cfg.Cameras = []Camera{{ID: "door-1", Source: clip, Fast: true}, {ID: "side-door", Source: short}}
	return daemonEnv{cfg: cfg, seconds: seconds, clip: clip}
}

// enrolledConfig is a daemon configuration on a fresh database in which the
// demo's customers are enrolled from real photos, with HTTP and the
// embedded NATS server on free loopback ports.
func enrolledConfig(t *testing.T) (Config, *demoWorld) {
	t.Helper()
	dir := t.TempDir()
	testenv.Photo(t, "sample1.jpg")
	cfg := DefaultConfig()
	cfg.Branch = "t1"
	cfg.DB = filepath.Join(dir, "c.db")
	cfg.Models.Dir = testenv.ModelsDir(t)
	cfg.Vision.Pool = 1
	cfg.resolveEngine()
	app, err := openFaceAppFor(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	world, err := loadDemoWorld(context.Background(), app, defaultPhotosDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := world.enroll(context.Background(), app.svc); err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:-1"
	cfg.NATS.StoreDir = filepath.Join(dir, "js")
	return cfg, world
}

func testLogger(t *testing.T) *slog.Logger {
	return newLogger(testWriter{t}, LogConfig{Level: "warn"})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type arrivalMsg struct {
	Schema    string `json:"schema"`
	Thumbnail []byte `json:"thumbnail"`
	ID        string `json:"id"`
	Camera    string `json:"camera"`
	Customer  struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
	} `json:"customer"`
}

// natsConnect is a raw client of the box's server as the identity c names
// (the daemon's, for tests that read every subject).
func natsConnect(t *testing.T, c alert.ConnConfig) (*nats.Conn, error) {
	t.Helper()
	var opts []nats.Option
	if c.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, o)
	}
	return nats.Connect(c.URL, opts...)
}

// collect subscribes to the branch's arrival subject on the daemon's NATS.
func collect(t *testing.T, c alert.ConnConfig, subject string) (func() []arrivalMsg, func()) {
	t.Helper()
	nc, err := natsConnect(t, c)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []arrivalMsg
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var a arrivalMsg
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Errorf("bad alert %q: %v", m.Data, err)
		}
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return func() []arrivalMsg {
			mu.Lock()
			defer mu.Unlock()
			return append([]arrivalMsg(nil), got...)
		}, func() {
			sub.Unsubscribe()
			nc.Close()
		}
}

// The main job, end to end: the daemon reads a clip in which an enrolled
// customer and a stranger walk in; exactly one alert arrives, for the
// customer, on NATS, with the face thumbnail this branch enabled (never on
// the visit feed); the health endpoint answers; SIGTERM-like shutdown
// leaves a consistent database with the visit recorded.
func TestDaemonAlertsOncePerVisit(t *testing.T) {
	env := newDaemonEnv(t)
	env.cfg.Alerts.ThumbnailPx = 96
	d := NewDaemon(env.cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	arrivals, stop := collect(t, d.alertConn("test"), "concierge.t1.arrival")
	defer stop()
	visitFeed, stopVisits := collect(t, d.alertConn("test"), "concierge.t1.visit")
	defer stopVisits()

	frames := int64(env.seconds * 15)
	testenv.CheckFor(t, 90*time.Second, 100*time.Millisecond, func() error {
		if n := d.cameras[0].Stats.Frames.Load(); n < frames {
			return fmt.Errorf("camera processed %d of %d frames", n, frames)
		}
		return nil
	})
	// Every enrolled visitor once; Ms Wang's second visit falls in her
	// cooldown; the two strangers never.
	testenv.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if got := arrivals(); len(got) < 3 {
			return fmt.Errorf("%d alerts so far", len(got))
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	got := arrivals()
	var ids []string
	for _, a := range got {
		ids = append(ids, a.Customer.ID)
		if a.Schema != "concierge.arrival.v1" || a.Camera != "door-1" || a.ID == "" {
			t.Errorf("alert %+v", a)
		}
		if strings.Contains(a.Customer.DisplayName, "Ms") {
			t.Errorf("display name not masked: %q", a.Customer.DisplayName)
		}
		if c, format, err := image.DecodeConfig(bytes.NewReader(a.Thumbnail)); err != nil || format != "jpeg" || max(c.Width, c.Height) > 96 || min(c.Width, c.Height) < 32 {
			t.Errorf("%s: thumbnail %s %dx%d, %v", a.Customer.ID, format, c.Width, c.Height, err)
		}
	}
	vs := visitFeed()
	for _, v := range vs {
		if len(v.Thumbnail) > 0 {
			t.Errorf("visit %s carries a face", v.ID)
		}
	}
	if len(vs) != len(got) {
		t.Errorf("%d visits on the visit feed, %d alerts", len(vs), len(got))
	}
	if strings.Join(ids, ",") != "C1001,C1002,C1003" {
		t.Fatalf("alerts for %v, want C1001,C1002,C1003 once each", ids)
	}
	if n := d.cameras[1].Source().Stats.Reconnects.Load(); n < 2 {
		t.Errorf("the ending side-door stream was reopened %d times, want >= 2", n)
	}
	resp, err := http.Get("http://" + d.HTTPAddr() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), env.cfg.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var visits int
	db.SQL().QueryRow(`SELECT COUNT(*) FROM visits`).Scan(&visits)
	var check string
	db.SQL().QueryRow(`PRAGMA integrity_check`).Scan(&check)
	if visits != 3 || check != "ok" {
		t.Fatalf("visits %d, integrity %q", visits, check)
	}
}

// The real binary under SIGTERM while it processes a looping clip: it exits
// 0 within the 5 s budget and leaves a consistent database holding the
// visits it announced.
func TestDaemonSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	env := newDaemonEnv(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "concierge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	port := testenv.FreePort(t)
	cfgFile := filepath.Join(dir, "concierge.yaml")
	yaml := fmt.Sprintf("branch: t1\ndb: %s\nmodels: {dir: %s}\nvision: {pool: 1}\nnats: {listen: \"127.0.0.1:%d\", store_dir: %s}\n"+
		"http: {addr: \"127.0.0.1:0\"}\ncameras:\n  - {id: door-1, source: %s, loop: true}\n",
		env.cfg.DB, env.cfg.Models.Dir, port, filepath.Join(dir, "js"), env.clip)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfgFile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	// The box's server is closed: the test reads as the daemon, with the
	// identity the daemon made beside its database.
	box := alert.Credentials{Dir: filepath.Join(filepath.Dir(env.cfg.DB), "nats")}.Conn(url, "test", alert.IdentityDaemon)
	var nc *nats.Conn
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() (err error) {
		if _, err := os.Stat(box.NKeySeedFile); err != nil {
			return err
		}
		nc, err = natsConnect(t, box)
		return err
	})
	nc.Close()
	if anon, err := nats.Connect(url); err == nil {
		anon.Close()
		t.Fatal("the daemon's NATS let an anonymous client in")
	}
	arrivals, stop := collect(t, box, "concierge.t1.arrival")
	defer stop()
	testenv.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		if len(arrivals()) == 0 {
			return fmt.Errorf("no alert yet; daemon log:\n%s", stderr.String())
		}
		return nil
	})
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(6 * time.Second):
		t.Fatalf("still running %v after SIGTERM", time.Since(start))
	}
	db, err := sqlite.Open(context.Background(), env.cfg.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	var visits int
	db.SQL().QueryRow(`PRAGMA integrity_check`).Scan(&check)
	db.SQL().QueryRow(`SELECT COUNT(*) FROM visits`).Scan(&visits)
	if check != "ok" || visits < len(arrivals()) {
		t.Fatalf("integrity %q, %d visits for %d alerts", check, visits, len(arrivals()))
	}
	// On a file camera too, the log is one text record per line: nothing
	// a native library printed sits between them (internal/nativelog).
	for i, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !strings.HasPrefix(line, "time=") || !strings.Contains(line, " level=") {
			t.Fatalf("log line %d is not a record: %q", i+1, line)
		}
	}
}
