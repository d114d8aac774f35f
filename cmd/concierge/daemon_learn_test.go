package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concierge/enroll"
	"concierge/face"
	"concierge/internal/testenv"
	"concierge/kiosk"
)

// learnConfig enrolls two people of the real clips (../shared/data/video)
// from three frames late in their clip, and points one camera at each
// clip: the frames the daemon decides on, early in the clip, show them as
// the enrollment did not, which is what a confirmed visit teaches. C11
// signs the built-in consent text at the kiosk (which covers learning),
// C12 the text version c12Consent.
func learnConfig(t *testing.T, c12Consent string) Config {
	t.Helper()
	dir, cfg, app := clipApp(t)
	for _, p := range []struct {
		id, clip, consent string
		frames            []int64
	}{{"C11", "d11.mp4", kiosk.BuiltinConsentVersion + "@sha256:0123456789abcdef", []int64{150, 165, 180}},
		{"C12", "d12.mp4", c12Consent, []int64{120, 135, 150}}} {
		res, err := app.svc.Enroll(context.Background(), enroll.Request{CustomerID: p.id, DisplayName: "客户 " + p.id,
			Photos: framesOf(t, filepath.Join(dir, p.clip), p.frames...), Consent: enroll.Consent{Reference: "F-" + p.id, TextVersion: p.consent}})
		if err != nil || res.Templates < 2 {
			t.Fatalf("enroll %s: %+v, %v", p.id, res, err)
		}
	}
	app.Close()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:-1"
	cfg.NATS.StoreDir = filepath.Join(t.TempDir(), "js")
	cfg.Cameras = []Camera{{ID: "door-1", Source: filepath.Join(dir, "d11.mp4"), Fast: true},
		{ID: "door-2", Source: filepath.Join(dir, "d12.mp4"), Fast: true}}
	return cfg
}

// Learning from confirmed visits end to end, on real clips, real SQLite
// and the embedded JetStream: the daemon holds each arrival's faces; a
// claim turns them into door templates of that customer, stored and in the
// live gallery; a later "not this person" mark on the visit removes what
// it taught; with match.door_templates 0 the daemon drops what was
// learned.
func TestDaemonLearnsFromClaims(t *testing.T) {
	cfg := learnConfig(t, kiosk.BuiltinConsentVersion)
	cfg.Match.DoorTemplates = 10
	d := NewDaemon(cfg, testLogger(t))
	ctx := context.Background()
	if err := d.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.learn == nil || d.checkin.Held == nil {
		t.Fatal("learning not wired")
	}
	// The engine's calibration holds the door factor and offset the
	// simulation measured together (foamliu: 1.27 for 0.05).
	if f, o := d.app.svc.OpenSet.DoorFactor, d.cfg.doorOffset(); f != d.cfg.calibration().DoorFactor || f <= 1 || o <= 0 {
		t.Fatalf("door factor %v, offset %v in force while learning; calibration %+v", f, o, d.cfg.calibration())
	}
	arrivals, stop := collect(t, d.alertConn("test"), "concierge.t1.arrival")
	defer stop()
	testenv.CheckFor(t, 90*time.Second, 100*time.Millisecond, func() error {
		if got := arrivals(); len(got) < 2 {
			return fmt.Errorf("%d alerts so far", len(got))
		}
		return nil
	})
	got := arrivals()
	first, second := got[0], got[1]
	if first.Customer.ID == second.Customer.ID {
		t.Fatalf("alerts %+v, want one for each person", got)
	}
	if n := d.learn.held.Len(); n < 2 || n > len(got) {
		t.Fatalf("%d visits held for %d arrivals", n, len(got))
	}
	before := d.app.svc.Gallery.Templates(first.Customer.ID)

	for _, a := range []arrivalMsg{first, second} {
		if err := d.desk.Claim(ctx, a.ID, "Li"); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		for _, a := range []arrivalMsg{first, second} {
			if n, err := d.app.db.VisitTemplates(ctx, a.ID); err != nil || n == 0 {
				return fmt.Errorf("visit %s taught %d door templates (%v)", a.ID, n, err)
			}
		}
		if n := d.app.svc.Gallery.Templates(first.Customer.ID); n <= before {
			return fmt.Errorf("the live gallery holds %d templates of the customer, %d before", n, before)
		}
		return nil
	})
	if n := metric(t, d, "concierge_door_visits_learned_total"); n != 2 {
		t.Fatalf("door_visits_learned_total %v, want 2", n)
	}
	// The live gallery scores the door centroid the calibration's offset
	// farther than the enrollment's, as the door factor was measured.
	ts, err := d.app.db.CustomerTemplates(ctx, second.Customer.ID, d.app.svc.Gallery.Model())
	if err != nil {
		t.Fatal(err)
	}
	var kiosk, door []face.Embedding
	for _, tm := range ts {
		if tm.Group == enroll.DoorGroup {
			door = append(door, tm.Embedding)
		} else {
			kiosk = append(kiosk, tm.Embedding)
		}
	}
	if len(door) == 0 || len(kiosk) == 0 {
		t.Fatalf("%d door and %d enrollment templates", len(door), len(kiosk))
	}
	kc, dc := face.Mean(kiosk, nil), face.Mean(door, nil)
	probe := door[0]
	want := min(math.Sqrt(float64(face.SquaredDistance(&kc, &probe))),
		math.Sqrt(float64(face.SquaredDistance(&dc, &probe)))+d.cfg.doorOffset())
	if got, _ := d.app.svc.Gallery.Distance(&probe, second.Customer.ID); math.Abs(got-want) > 1e-6 {
		t.Fatalf("a door face is %v from the customer in the gallery, want %v (door centroid plus %v)", got, want, d.cfg.doorOffset())
	}

	// "Not this person" on the first visit: what it taught goes, the
	// second visit's stays.
	if err := d.desk.Reject(ctx, first.ID, "Li", "not her"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if n, _ := d.app.db.VisitTemplates(ctx, first.ID); n != 0 {
			return fmt.Errorf("%d door templates of a rejected visit", n)
		}
		if n := d.app.svc.Gallery.Templates(first.Customer.ID); n != before {
			return fmt.Errorf("the live gallery holds %d templates of the customer, want %d", n, before)
		}
		return nil
	})
	if n, _ := d.app.db.VisitTemplates(ctx, second.ID); n == 0 {
		t.Fatal("the second visit's door templates went with the first's mark")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Learning off: the door templates go.
	cfg.Match.DoorTemplates = 0
	cfg.Cameras = nil
	off := NewDaemon(cfg, testLogger(t))
	if err := off.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	if off.learn != nil || off.checkin.Held != nil || off.app.svc.OpenSet.DoorFactor != 0 {
		t.Fatal("learning wired with match.door_templates 0")
	}
	if n, _ := off.app.db.VisitTemplates(ctx, second.ID); n != 0 {
		t.Fatalf("%d door templates kept with learning off", n)
	}
}

// A confirmed verify card is a confirmed visit: with the alert threshold
// calibrated out of reach (a budget of 1e-9) and a wide band, the real
// clip's visit becomes a card; staff confirming it stores its faces as
// door templates.
func TestDaemonLearnsFromConfirmedCards(t *testing.T) {
	cfg := learnConfig(t, kiosk.BuiltinConsentVersion)
	cfg.Match.DoorTemplates = 10
	cfg.Match.FalseAlertTarget, cfg.Match.VerifyTarget = 1e-12, 0.5
	cfg.Cameras = cfg.Cameras[:1]
	d := NewDaemon(cfg, testLogger(t))
	ctx := context.Background()
	if err := d.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cards, stop := collect(t, d.alertConn("test"), "concierge.t1.verify")
	defer stop()
	var card arrivalMsg
	testenv.CheckFor(t, 90*time.Second, 100*time.Millisecond, func() error {
		for _, c := range cards() {
			if c.ID != "" {
				card = c
				return nil
			}
		}
		return fmt.Errorf("no card yet")
	})
	if card.Customer.ID != "C11" {
		t.Fatalf("card %+v, want one for C11", card)
	}
	if err := d.desk.Confirm(ctx, card.ID, "Li"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if n, err := d.app.db.VisitTemplates(ctx, card.ID); err != nil || n == 0 {
			return fmt.Errorf("confirmed card taught %d door templates (%v)", n, err)
		}
		return nil
	})
}

// A customer who signed a consent text that does not cover learning (the
// built-in 2026-12-v2, as the kiosk recorded it) learns nothing from a
// claimed visit, and the refusal is counted; the other customer, under
// the built-in text in force, learns as usual in the same daemon.
func TestDaemonLearnsOnlyUnderCoveringConsent(t *testing.T) {
	cfg := learnConfig(t, "2026-12-v2@sha256:0123456789abcdef")
	cfg.Match.DoorTemplates = 10
	d := NewDaemon(cfg, testLogger(t))
	ctx := context.Background()
	if err := d.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.learn == nil {
		t.Fatal("learning not wired")
	}
	arrivals, stop := collect(t, d.alertConn("test"), "concierge.t1.arrival")
	defer stop()
	visit := map[string]string{}
	testenv.CheckFor(t, 90*time.Second, 100*time.Millisecond, func() error {
		for _, a := range arrivals() {
			if visit[a.Customer.ID] == "" {
				visit[a.Customer.ID] = a.ID
			}
		}
		if visit["C11"] == "" || visit["C12"] == "" {
			return fmt.Errorf("arrivals so far: %v", visit)
		}
		return nil
	})
	before := d.app.svc.Gallery.Templates("C12")
	for _, id := range []string{"C12", "C11"} {
		if err := d.desk.Claim(ctx, visit[id], "Li"); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if n, err := d.app.db.VisitTemplates(ctx, visit["C11"]); err != nil || n == 0 {
			return fmt.Errorf("C11's claimed visit taught %d door templates (%v)", n, err)
		}
		if n := metric(t, d, "concierge_door_visits_not_covered_total"); n != 1 {
			return fmt.Errorf("door_visits_not_covered_total %v, want 1", n)
		}
		return nil
	})
	if n, err := d.app.db.VisitTemplates(ctx, visit["C12"]); err != nil || n != 0 {
		t.Fatalf("C12 (consent 2026-12-v2) learned %d door templates from a claimed visit (%v)", n, err)
	}
	if n := d.app.svc.Gallery.Templates("C12"); n != before {
		t.Fatalf("the live gallery holds %d templates of C12, %d before", n, before)
	}
	if n := metric(t, d, "concierge_door_visits_learned_total"); n != 1 {
		t.Fatalf("door_visits_learned_total %v, want 1 (C11's)", n)
	}
}

// A bank's own kiosk texts that match.door_consent_versions does not list
// mean nobody enrolling at its kiosks will ever be learned from: the
// daemon says so at start, and is quiet once the version is listed.
func TestDaemonWarnsKioskTextNotCovered(t *testing.T) {
	_, cfg, app := clipApp(t)
	app.Close()
	texts := t.TempDir()
	if err := os.WriteFile(filepath.Join(texts, "en.txt"), []byte("The bank's own consent text.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:-1"
	cfg.Kiosk.Devices = []KioskDevice{{ID: "k1", Token: kioskTestToken}}
	cfg.Kiosk.ConsentDir, cfg.Kiosk.ConsentVersion = texts, "bank-2027-01"
	for _, tc := range []struct {
		versions []string
		warns    bool
	}{{[]string{kiosk.BuiltinConsentVersion}, true}, {[]string{kiosk.BuiltinConsentVersion, "bank-2027-01"}, false}} {
		cfg.Match.DoorConsentVersions = tc.versions
		cfg.NATS.StoreDir = filepath.Join(t.TempDir(), "js")
		var logs syncBuffer
		d := NewDaemon(cfg, newLogger(&logs, LogConfig{Level: "warn"}))
		if err := d.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		d.Close()
		if got := strings.Contains(logs.String(), "consent texts do not cover learning"); got != tc.warns {
			t.Errorf("door_consent_versions %q: warned %v, want %v:\n%s", tc.versions, got, tc.warns, logs.String())
		}
	}
}
