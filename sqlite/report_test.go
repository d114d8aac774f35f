package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/sqlite"
)

func TestServiceReport(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	// 2026-12-01 09:00 in Shanghai; the last arrival is after midnight
	// there, on the next day, though still the 1st in UTC.
	day := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	at := day.Add(-24 * time.Hour)
	for _, c := range []string{"C1", "C2"} {
		if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: c, DisplayName: "n", Created: at},
			enroll.Consent{Reference: "F-" + c, TextVersion: "v1", Channel: "cli", GrantedAt: at},
			[]enroll.Template{{Embedding: emb(0.3), Model: "m", Created: at}}); err != nil {
			t.Fatal(err)
		}
	}
	star5 := &checkin.Tier{Scheme: "icbc-stars", Level: "star5"}
	visits := []struct {
		id, customer string
		at           time.Time
		tier         *checkin.Tier
		claimAfter   time.Duration // 0: not claimed
	}{
		{"01A", "C1", day, star5, 10 * time.Second},
		{"01B", "C1", day.Add(time.Hour), star5, 20 * time.Second},
		{"01C", "C2", day.Add(2 * time.Hour), star5, 30 * time.Second},
		{"01D", "C2", day.Add(3 * time.Hour), star5, 100 * time.Second},
		{"01E", "C2", day.Add(4 * time.Hour), nil, 0},
		{"01F", "C1", day.Add(17 * time.Hour), star5, 5 * time.Second}, // 02:00 on the 2nd in Shanghai
	}
	for _, v := range visits {
		a := checkin.Arrival{ID: v.id, Branch: "b", Camera: "door", CustomerID: v.customer, At: v.at, Tier: v.tier, Distance: 0.3, Votes: 2}
		for range 2 { // a retried delivery is one arrival
			if err := db.RecordVisit(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		if v.claimAfter > 0 {
			if err := db.RecordService(ctx, alert.ServiceEvent{Kind: alert.ServiceClaim, AlertID: v.id, At: v.at.Add(v.claimAfter)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, e := range []alert.ServiceEvent{
		{Kind: alert.ServiceEscalation, AlertID: "01E", At: day.Add(4*time.Hour + time.Minute)},
		{Kind: alert.ServiceReject, AlertID: "01B", At: day.Add(time.Hour + time.Minute)},
		{Kind: alert.ServiceCardConfirmed, AlertID: "01X", Tier: &alert.Tier{Scheme: "icbc-stars", Level: "star5"}, At: day.Add(5 * time.Hour)},
		{Kind: alert.ServiceCardDismissed, AlertID: "01Y", Tier: &alert.Tier{Scheme: "icbc-stars", Level: "star5"}, At: day.Add(5 * time.Hour)},
		{Kind: alert.ServiceClaim, AlertID: "01GONE", At: day.Add(6 * time.Hour)}, // no visit: counted, no tier, no wait
	} {
		if err := db.RecordService(ctx, e); err != nil {
			t.Fatal(err)
		}
	}

	rep, err := db.ServiceReport(ctx, day.Add(-time.Hour), shanghai)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, r := range append(rep.Days, rep.Totals...) {
		got += fmt.Sprintf("%s %s/%s a%d c%d %v/%v e%d r%d +%d -%d\n", r.Day, r.Scheme, r.Level, r.Arrivals, r.Claims,
			time.Duration(r.ClaimMedian), time.Duration(r.ClaimP90), r.Escalations, r.NotThisPerson, r.CardsConfirmed, r.CardsDismissed)
	}
	want := `2026-12-01 / a1 c1 0s/0s e1 r0 +0 -0
2026-12-01 icbc-stars/star5 a4 c4 20s/1m40s e0 r1 +1 -1
2026-12-02 icbc-stars/star5 a1 c1 5s/5s e0 r0 +0 -0
 / a1 c1 0s/0s e1 r0 +0 -0
 icbc-stars/star5 a5 c5 20s/1m40s e0 r1 +1 -1
`
	if got != want {
		t.Fatalf("report:\n%s\nwant:\n%s", got, want)
	}

	// since cuts the earlier days off.
	rep, err = db.ServiceReport(ctx, day.Add(10*time.Hour), shanghai)
	if err != nil || len(rep.Days) != 1 || rep.Days[0].Day != "2026-12-02" || rep.TimeZone != "Asia/Shanghai" {
		t.Fatalf("since: %+v, %v", rep, err)
	}

	// The rows name nobody: a withdrawal leaves them, and neither the
	// customer's id nor an alert id is anywhere in the database after it.
	if _, err := db.Erase(ctx, "C2", day.Add(20*time.Hour), enroll.WithdrawnByCustomer); err != nil {
		t.Fatal(err)
	}
	pending, err := db.PendingErasures(ctx)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending erasures: %v, %v", pending, err)
	}
	if err := db.FinishErasure(ctx, pending[0].ID); err != nil {
		t.Fatal(err)
	}
	for _, needle := range []string{"01C", "01D", "01E", "01X", "01GONE"} {
		if cells := cellsHolding(t, db, needle); len(cells) != 0 {
			t.Errorf("%s still in %v", needle, cells)
		}
	}
	for _, c := range cellsHolding(t, db, "C2") {
		if c != "consents.customer_id" && c != "consents.reference" && c != "customers.id" {
			t.Errorf("C2 still in %s after the withdrawal", c)
		}
	}
	rep, err = db.ServiceReport(ctx, day.Add(-time.Hour), shanghai)
	if err != nil || len(rep.Totals) != 2 || rep.Totals[1].Arrivals != 5 {
		t.Fatalf("counts after the withdrawal: %+v, %v", rep.Totals, err)
	}
}
