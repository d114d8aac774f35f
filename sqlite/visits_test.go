package sqlite_test

import (
	"context"
	"math"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/internal/testenv/testdb"
)

func TestVisits(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	day := time.Date(2026, 11, 25, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))
	gold := &checkin.Tier{Scheme: "boc-wealth", Level: "wealth", LevelName: "中银财富管理", VIP: true}
	arrivals := []checkin.Arrival{
		{ID: "01A", Branch: "b001", Camera: "door-1", CustomerID: "C1", At: day.Add(-100 * 24 * time.Hour), Distance: 0.31, Margin: 0.12, Votes: 2},
		{ID: "01B", Branch: "b001", Camera: "door-1", CustomerID: "C1", At: day, FirstSeen: day.Add(-700 * time.Millisecond),
			DisplayName: "王**", Distance: 0.3, Margin: 0.1, Votes: 3, Tier: gold},
		{ID: "01C", Branch: "b001", Camera: "door-2", CustomerID: "C2", At: day.Add(time.Hour + time.Nanosecond), Distance: 0.25, Margin: 1, Votes: 2},
		{ID: "01D", Branch: "b001", Camera: "door-1", CustomerID: "C1", At: day.Add(2 * time.Hour), Distance: 0.35, Margin: 0.07, Votes: 2},
	}
	for _, a := range arrivals {
		if err := db.RecordVisit(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// A retried delivery of the same arrival records nothing new, even if
	// its content differs.
	again := arrivals[1]
	again.Votes = 9
	if err := db.RecordVisit(ctx, again); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM visits`); n != len(arrivals) {
		t.Fatalf("%d rows, want %d", n, len(arrivals))
	}

	for _, tc := range []struct {
		name     string
		customer string
		since    time.Time
		want     []string
	}{
		{"one customer since the day", "C1", day, []string{"01B", "01D"}},
		{"since is inclusive", "C1", day.Add(2 * time.Hour), []string{"01D"}},
		{"all customers", "", day.Add(-time.Hour), []string{"01B", "01C", "01D"}},
		{"everything", "", time.Time{}, []string{"01A", "01B", "01C", "01D"}},
		{"unknown customer", "C9", time.Time{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := db.Visits(ctx, tc.customer, tc.since)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, v := range vs {
				ids = append(ids, v.ID)
			}
			if len(ids) != len(tc.want) {
				t.Fatalf("visits %v, want %v", ids, tc.want)
			}
			for i := range ids {
				if ids[i] != tc.want[i] {
					t.Fatalf("visits %v, want %v", ids, tc.want)
				}
			}
		})
	}

	vs, err := db.Visits(ctx, "C1", day)
	if err != nil {
		t.Fatal(err)
	}
	v := vs[0]
	if !v.At.Equal(day) || !v.FirstSeen.Equal(day.Add(-700*time.Millisecond)) || v.Camera != "door-1" || v.Branch != "b001" ||
		v.Votes != 3 || math.Abs(v.Distance-0.3) > 1e-9 || math.Abs(v.Margin-0.1) > 1e-9 {
		t.Fatalf("visit %+v", v)
	}
	// Only the tier's identity is kept; names never reach the table.
	if v.Tier == nil || v.Tier.Scheme != "boc-wealth" || v.Tier.Level != "wealth" || v.Tier.LevelName != "" || v.DisplayName != "" {
		t.Fatalf("visit tier %+v name %q", v.Tier, v.DisplayName)
	}
	if vs[1].Tier != nil || !vs[1].FirstSeen.IsZero() {
		t.Fatalf("visit without tier or first seen: %+v", vs[1])
	}

	n, err := db.PurgeVisits(ctx, day.Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("purged %d, %v; want 2", n, err)
	}
	n, err = db.PurgeVisits(ctx, day.Add(time.Hour))
	if err != nil || n != 0 {
		t.Fatalf("purged again %d, %v; want 0", n, err)
	}
	if vs, _ := db.Visits(ctx, "", time.Time{}); len(vs) != 2 || vs[0].ID != "01C" {
		t.Fatalf("left after purge: %+v", vs)
	}
}
