package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"concierge"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/sqlite"
)

// enrollAt enrolls customer id with one template created at at.
func enrollAt(t *testing.T, db *sqlite.DB, id string, at time.Time) {
	t.Helper()
	_, err := db.SaveEnrollment(context.Background(), enroll.Customer{ID: id, DisplayName: "x", Created: at},
		enroll.Consent{Reference: "F-" + id, TextVersion: "v1", Channel: "cli", GrantedAt: at},
		[]enroll.Template{{Embedding: emb(0.1), Model: "m", Created: at}})
	if err != nil {
		t.Fatal(err)
	}
}

// A "not this person" mark is recorded from our own visit record, once
// per alert; unknown alerts and forgotten customers are refused; the
// marks survive a reopen, know about re-enrollment, and go with Forget.
func TestFalseMatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	day := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	enrollAt(t, db, "C1", day.Add(-24*time.Hour))
	enrollAt(t, db, "C2", day.Add(-24*time.Hour))
	for _, a := range []checkin.Arrival{
		{ID: "01A", Branch: "b001", Camera: "door-1", CustomerID: "C1", At: day, Distance: 0.29, Margin: 0.11, Votes: 2},
		{ID: "01B", Branch: "b001", Camera: "door-2", CustomerID: "C1", At: day.Add(time.Hour), Distance: 0.27, Margin: 0.2, Votes: 2},
		{ID: "01C", Branch: "b001", Camera: "door-1", CustomerID: "C2", At: day, Distance: 0.2, Margin: 0.3, Votes: 3},
	} {
		if err := db.RecordVisit(ctx, a); err != nil {
			t.Fatal(err)
		}
	}

	m, fresh, err := db.RecordFalseMatch(ctx, "01A", "Li", "different person", day.Add(time.Minute))
	if err != nil || !fresh {
		t.Fatalf("record: %v %v", fresh, err)
	}
	want := checkin.FalseMatch{AlertID: "01A", CustomerID: "C1", Camera: "door-1", Distance: 0.29, Margin: 0.11,
		By: "Li", Reason: "different person", At: day.Add(time.Minute)}
	if m != want {
		t.Fatalf("mark\n got %+v\nwant %+v", m, want)
	}
	if _, fresh, err := db.RecordFalseMatch(ctx, "01A", "Wang", "", day.Add(2*time.Minute)); err != nil || fresh {
		t.Fatalf("replay: fresh %v, %v", fresh, err)
	}
	if _, _, err := db.RecordFalseMatch(ctx, "01Z", "Li", "", day); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("unknown alert: %v", err)
	}
	if _, _, err := db.RecordFalseMatch(ctx, "01C", "Li", "", day.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}

	// A reopened database (a restarted daemon) has them all.
	db.Close()
	if db, err = sqlite.Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	got, err := db.FalseMatches(ctx)
	if err != nil || len(got) != 2 || got[0] != want || got[1].AlertID != "01C" || got[1].CustomerID != "C2" {
		t.Fatalf("false matches %+v, %v", got, err)
	}

	// C1 enrolls again: the old mark no longer counts towards the repeat
	// rule; a newer one does.
	enrollAt(t, db, "C1", day.Add(time.Hour))
	if _, _, err := db.RecordFalseMatch(ctx, "01B", "Li", "", day.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ = db.FalseMatches(ctx)
	if len(got) != 3 || !got[0].Reenrolled || got[1].Reenrolled || got[2].AlertID != "01B" || got[2].Reenrolled {
		t.Fatalf("after re-enrollment %+v", got)
	}

	// Forget deletes the customer's marks, and a replayed mark of their old
	// alert is refused rather than recorded again.
	if _, err := db.Forget(ctx, "C1", day.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM false_matches WHERE customer_id = 'C1'`); n != 0 {
		t.Fatalf("%d marks of C1 left after forget", n)
	}
	if _, _, err := db.RecordFalseMatch(ctx, "01A", "Li", "", day.Add(4*time.Hour)); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("mark of a forgotten customer: %v", err)
	}
	if got, _ := db.FalseMatches(ctx); len(got) != 1 || got[0].CustomerID != "C2" {
		t.Fatalf("after forget %+v", got)
	}
}
