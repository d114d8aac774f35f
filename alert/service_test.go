package alert_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// The desk, the escalator and the verify cards each tell the service log
// (the real database) what happened, and the report counts it with the
// tier and, for a claim, the wait since the arrival.
func TestServiceEventsRecorded(t *testing.T) {
	e := newEscalateEnv(t)
	ctx := context.Background()
	db := testdb.Open(t)

	// Three arrivals the daemon's visit log holds: one is claimed 25 s
	// after, one marked "not this person", one left to escalate.
	claimed, rejected := e.arrive(t, 0), e.arrive(t, 0)
	escalated := e.arrive(t, 0)
	for _, id := range []string{claimed, rejected, escalated} {
		a := vipArrival(1)
		a.ID, a.At = id, e.start
		if err := db.RecordVisit(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	esc, err := alert.NewEscalator(alert.EscalatorConfig{Branch: branch, Conn: connConfig(e.url), Service: db,
		Tick: time.Hour, Now: e.clock.Now, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := esc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { esc.Close() })
	desk, err := alert.NewDesk(alert.DeskConfig{Branch: branch, Conn: connConfig(e.url), Book: db, Service: db,
		TTL: 100 * 365 * 24 * time.Hour, Logger: testLogger(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { desk.Close() })
	e.at(25 * time.Second)
	if err := desk.Claim(ctx, claimed, "Zhang"); err != nil {
		t.Fatal(err)
	}
	if err := desk.Reject(ctx, rejected, "Zhang", "a colleague"); err != nil {
		t.Fatal(err)
	}
	// A refused second claim is not counted again.
	if err := desk.Claim(ctx, claimed, "Li"); err == nil {
		t.Fatal("a second claim was taken")
	}
	waitPending(t, esc, 1) // the claim and the mark cancelled theirs
	e.at(2 * time.Minute)
	check(t, esc, 1)

	// Verify cards: one confirmed, one dismissed.
	cfg := checkin.DefaultConfig()
	cfg.Branch = branch
	svc, err := checkin.NewService(cfg, enroll.NewGallery("m"))
	if err != nil {
		t.Fatal(err)
	}
	svc.Notifier, svc.Logger = e.pub, testLogger()
	now := time.Now()
	cards, err := alert.NewCards(alert.CardsConfig{Branch: branch, Conn: connConfig(e.url), TTL: 2 * time.Minute,
		Confirmed: svc.ConfirmCard, Service: db, Logger: testLogger(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := cards.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cards.Close() })
	c1, c2 := testCard(1, now), testCard(2, now)
	for _, c := range []checkin.Card{c1, c2} {
		if err := cards.NotifyCard(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error { return cards.Confirm(ctx, c1.ID, "Zhang") })
	if err := cards.Dismiss(ctx, c2.ID, "Zhang"); err != nil {
		t.Fatal(err)
	}

	rep, err := db.ServiceReport(ctx, e.start.Add(-time.Hour), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Totals) != 1 {
		t.Fatalf("totals: %+v", rep.Totals)
	}
	r := rep.Totals[0]
	got := fmt.Sprintf("%s/%s a%d c%d %v e%d r%d +%d -%d", r.Scheme, r.Level, r.Arrivals, r.Claims, time.Duration(r.ClaimMedian),
		r.Escalations, r.NotThisPerson, r.CardsConfirmed, r.CardsDismissed)
	if want := "icbc-stars/5 a3 c1 25s e1 r1 +1 -1"; got != want {
		t.Fatalf("report %s, want %s", got, want)
	}
}

// The last 7 days start at midnight six days before today, in the report's
// time zone, whatever the day is in UTC.
func TestLastDays(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	now := time.Date(2026, 12, 6, 20, 30, 0, 0, time.UTC) // 04:30 on the 7th in Shanghai
	if got, want := alert.LastDays(7, now, shanghai), time.Date(2026, 12, 1, 0, 0, 0, 0, shanghai); !got.Equal(want) {
		t.Errorf("LastDays(7) = %v, want %v", got, want)
	}
	if got, want := alert.LastDays(1, now, time.UTC), time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("LastDays(1) = %v, want %v", got, want)
	}
}
