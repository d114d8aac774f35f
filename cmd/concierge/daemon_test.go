package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"concierge/internal/testenv"
	"concierge/sqlite"
)

// checkFor polls fn until it returns nil or total elapses.
func checkFor(t *testing.T, total, every time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(every)
	}
}

type daemonEnv struct {
	cfg     Config
	seconds float64
}

// newDaemonEnv enrolls the demo customers from real photos into a fresh
// database and composes the demo's entrance clip.
func newDaemonEnv(t *testing.T) daemonEnv {
	t.Helper()
	dir := t.TempDir()
	testenv.Shared(t, "models/face_detection_yunet_2023mar.onnx")
	testenv.Photo(t, "sample1.jpg")
	cfg := DefaultConfig()
	cfg.Branch = "t1"
	cfg.DB = filepath.Join(dir, "c.db")
	cfg.Models.Dir = testenv.ModelsDir(t)
	cfg.Vision.Pool = 1
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
	clip := filepath.Join(dir, "door.avi")
	seconds, err := world.doorClip(clip)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:-1"
	cfg.NATS.StoreDir = filepath.Join(dir, "js")
	cfg.Cameras = []Camera{{ID: "door-1", Source: clip, Fast: true}}
	return daemonEnv{cfg: cfg, seconds: seconds}
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
	Schema   string `json:"schema"`
	ID       string `json:"id"`
	Camera   string `json:"camera"`
	Customer struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
	} `json:"customer"`
}

// collect subscribes to the branch's arrival subject on the daemon's NATS.
func collect(t *testing.T, url, subject string) (func() []arrivalMsg, func()) {
	t.Helper()
	nc, err := nats.Connect(url)
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
// customer, on NATS; the health endpoint answers; SIGTERM-like shutdown
// leaves a consistent database with the visit recorded.
func TestDaemonAlertsOncePerVisit(t *testing.T) {
	env := newDaemonEnv(t)
	d := NewDaemon(env.cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	arrivals, stop := collect(t, d.NATSURL(), "concierge.t1.arrival")
	defer stop()

	frames := int64(env.seconds * 15)
	checkFor(t, 90*time.Second, 100*time.Millisecond, func() error {
		if n := d.cameras[0].Stats.Frames.Load(); n < frames {
			return fmt.Errorf("camera processed %d of %d frames", n, frames)
		}
		return nil
	})
	// Every enrolled visitor once; Ms Wang's second visit falls in her
	// cooldown; the two strangers never.
	checkFor(t, 5*time.Second, 50*time.Millisecond, func() error {
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
	}
	if strings.Join(ids, ",") != "C1001,C1002,C1003" {
		t.Fatalf("alerts for %v, want C1001,C1002,C1003 once each", ids)
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
