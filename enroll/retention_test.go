package enroll_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
	"concierge/sqlite"
)

func flat(v float32) face.Embedding {
	var e face.Embedding
	for i := range e {
		e[i] = v + float32(i)/1000
	}
	return e
}

// Retention deletes the templates of customers not seen for the period,
// counting from their last recognised visit (which outlives the visit
// purge) or else their enrollment, and records why.
func TestRetentionExpiresCustomersNotSeen(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2027, 6, 1, 9, 0, 0, 0, time.UTC)
	longAgo := now.AddDate(-3, 0, 0)
	for _, c := range []struct {
		id       string
		enrolled time.Time
	}{{"C-gone", longAgo}, {"C-regular", longAgo}, {"C-new", now.AddDate(0, -1, 0)}} {
		if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: c.id, DisplayName: "x", Created: c.enrolled},
			enroll.Consent{Reference: "F", TextVersion: "v1", Channel: "cli", GrantedAt: c.enrolled},
			[]enroll.Template{{Embedding: flat(0.1), Model: "m", Created: c.enrolled}}); err != nil {
			t.Fatal(err)
		}
	}
	// C-regular came in a year ago; the visit itself is purged since.
	if err := db.RecordVisit(ctx, checkin.Arrival{ID: "01V", Branch: "b", Camera: "door", CustomerID: "C-regular",
		At: now.AddDate(-1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PurgeVisits(ctx, now); err != nil {
		t.Fatal(err)
	}
	gallery := enroll.NewGallery("m")
	ts, _ := db.Templates(ctx, "m")
	gallery.Load(ts)

	var logs bytes.Buffer
	r := &enroll.Retention{Store: db, Gallery: gallery, MaxAge: 2 * 365 * 24 * time.Hour, WarnAt: 2,
		Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	rep, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Expired != 1 || rep.Templates != 1 || rep.Subjects != 2 || !rep.OverWarn {
		t.Fatalf("report = %+v", rep)
	}
	if gallery.Templates("C-gone") != 0 || gallery.Templates("C-regular") != 1 || gallery.Customers() != 2 {
		t.Fatal("the gallery still holds the expired customer, or lost another")
	}
	cs, _ := db.Consents(ctx, "C-gone")
	if len(cs) != 1 || cs[0].WithdrawnAt == nil || !cs[0].WithdrawnAt.Equal(now) || cs[0].WithdrawnReason != enroll.WithdrawnRetention {
		t.Fatalf("consent of the expired customer = %+v", cs)
	}
	if es, _ := db.PendingErasures(ctx); len(es) != 1 || es[0].CustomerID != "C-gone" {
		t.Fatalf("erasures = %+v", es)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "people=2") {
		t.Fatalf("no filing warning in the log:\n%s", out)
	}
	if strings.Contains(out, "C-gone") {
		t.Fatalf("a customer id was logged at Info:\n%s", out)
	}

	// A year on, C-regular is due too; with the period 0 nobody ever is.
	r.MaxAge = 0
	r.Now = func() time.Time { return now.AddDate(1, 1, 0) }
	if rep, err := r.Run(ctx); err != nil || rep.Expired != 0 || rep.Subjects != 2 {
		t.Fatalf("retention 0: %+v, %v", rep, err)
	}
	r.MaxAge = 2 * 365 * 24 * time.Hour
	if rep, err := r.Run(ctx); err != nil || rep.Expired != 1 || rep.Subjects != 1 || rep.OverWarn {
		t.Fatalf("a year later: %+v, %v", rep, err)
	}
}
