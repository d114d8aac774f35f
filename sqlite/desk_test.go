package sqlite_test

import (
	"context"
	"testing"
	"time"

	"concierge"
	"concierge/checkin"
	"concierge/internal/testenv/testdb"
)

// The desk's record of an alert is the daemon's visit: unknown alerts are
// not found, a mark shows, and a withdrawal (which deletes the visits)
// closes the customer's alerts.
func TestAlertRecord(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	a := checkin.Arrival{ID: "01JP98PWCR5S2K33TS5K32AFDS", Branch: "b001", Camera: "door-1", At: at, CustomerID: "C1",
		Distance: 0.3, Margin: 0.1, Votes: 1}
	if _, err := db.AlertRecord(ctx, a.ID); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("unknown alert: %v", err)
	}
	if err := db.RecordVisit(ctx, a); err != nil {
		t.Fatal(err)
	}
	rec, err := db.AlertRecord(ctx, a.ID)
	if err != nil || rec.CustomerID != "C1" || !rec.At.Equal(at) || rec.Rejected {
		t.Fatalf("record %+v, %v", rec, err)
	}
	if _, err := db.SQL().Exec(`INSERT INTO false_matches (alert_id, customer_id, camera, distance, margin, marked_by, reason, at)
		VALUES (?, 'C1', 'door-1', 0.3, 0.1, 'Li', '', ?)`, a.ID, at.Format(time.RFC3339Nano)); err != nil {
		t.Fatal(err)
	}
	if rec, err := db.AlertRecord(ctx, a.ID); err != nil || !rec.Rejected {
		t.Fatalf("marked alert: %+v, %v", rec, err)
	}
}
