package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"concierge"
	"concierge/enroll"
	"concierge/face"
	"concierge/internal/testenv/testdb"
	"concierge/sqlite"
)

func count(tb testing.TB, db *sqlite.DB, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := db.SQL().QueryRow(query, args...).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	ctx := context.Background()
	var counts []int
	for i := 0; i < 3; i++ {
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		counts = append(counts, count(t, db, `SELECT COUNT(*) FROM schema_migrations`))
		var mode string
		db.SQL().QueryRow(`PRAGMA journal_mode`).Scan(&mode)
		var fk int
		db.SQL().QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
		if mode != "wal" || fk != 1 {
			t.Fatalf("journal_mode %q foreign_keys %d", mode, fk)
		}
		db.Close()
	}
	if counts[0] == 0 || counts[0] != counts[1] || counts[1] != counts[2] {
		t.Fatalf("migration rows per open: %v", counts)
	}
}

func emb(v float32) face.Embedding {
	var e face.Embedding
	for i := range e {
		e[i] = v + float32(i)/1000
	}
	return e
}

func TestEnrollmentRoundTripAndForget(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	cust := enroll.Customer{ID: "C1", DisplayName: "王女士", Created: now}
	consent := enroll.Consent{Reference: "F-1", TextVersion: "v1", Channel: "cli", GrantedAt: now}
	ts := []enroll.Template{
		{Embedding: emb(0.1), Model: "m", Quality: face.Quality{SizePx: 120, Sharpness: 80, Frontal: 0.9, Brightness: 120}, Created: now},
		{Embedding: emb(0.2), Model: "m", Created: now},
	}
	saved, err := db.SaveEnrollment(ctx, cust, consent, ts)
	if err != nil {
		t.Fatal(err)
	}
	if saved[0].ID == 0 || saved[0].ConsentID == 0 || saved[1].CustomerID != "C1" {
		t.Fatalf("saved = %+v", saved)
	}
	got, err := db.Templates(ctx, "m")
	if err != nil || len(got) != 2 || got[0].Embedding != ts[0].Embedding || got[0].Quality != ts[0].Quality {
		t.Fatalf("templates = %+v, %v", got, err)
	}
	if other, _ := db.Templates(ctx, "other-model"); len(other) != 0 {
		t.Fatalf("other model returned %d templates", len(other))
	}
	c, err := db.Customer(ctx, "C1")
	if err != nil || c.DisplayName != "王女士" {
		t.Fatalf("customer = %+v, %v", c, err)
	}

	n, err := db.Forget(ctx, "C1", now.Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("forget = %d, %v", n, err)
	}
	if k := count(t, db, `SELECT COUNT(*) FROM templates WHERE customer_id = 'C1'`); k != 0 {
		t.Fatalf("%d template rows left after forget", k)
	}
	if k := count(t, db, `SELECT COUNT(*) FROM consents WHERE customer_id = 'C1' AND withdrawn_at IS NULL`); k != 0 {
		t.Fatalf("%d active consents left after forget", k)
	}
	cs, _ := db.Consents(ctx, "C1")
	if len(cs) != 1 || cs[0].Active() || !cs[0].WithdrawnAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("consents = %+v", cs)
	}
	if _, err := db.Forget(ctx, "nobody", now); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("forget unknown: %v", err)
	}
}

// A failed enrollment (here: a template that violates the schema) must
// leave no customer, consent or template behind.
func TestSaveEnrollmentAtomic(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	now := time.Now()
	_, err := db.SaveEnrollment(ctx, enroll.Customer{ID: "C2", DisplayName: "x", Created: now},
		enroll.Consent{Reference: "", GrantedAt: now}, // empty reference violates a CHECK
		[]enroll.Template{{Embedding: emb(1), Model: "m", Created: now}})
	if err == nil {
		t.Fatal("want an error for an empty consent reference")
	}
	for _, table := range []string{"customers", "consents", "templates"} {
		if k := count(t, db, `SELECT COUNT(*) FROM `+table); k != 0 {
			t.Errorf("%s has %d rows after a failed enrollment", table, k)
		}
	}
}
