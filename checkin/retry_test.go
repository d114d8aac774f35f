package checkin_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/sqlite"
)

// Arrivals decided while the real database cannot be written (its files
// immutable: root cannot write them either) are held, in order, and
// delivered once it can: each recorded as a visit and queued in the real
// outbox exactly once, under the id it was decided with. The customer
// seen again meanwhile is in cooldown: held or not, one visit is one
// arrival.
func TestArrivalsHeldWhileDatabaseFails(t *testing.T) {
	p := newPopulation(t, 24)
	a, b := p.customer(t, 0, 2), p.customer(t, 1, 2)
	cfg := testConfig()
	cfg.Branch = "b001"
	cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 100*time.Millisecond
	cfg.DeliverTimeout = time.Second
	svc, err := checkin.NewService(cfg, p.gallery)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	svc.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dir := t.TempDir()
	path := filepath.Join(dir, "c.db")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pub, err := alert.NewPublisher(alert.PublisherConfig{Branch: "b001", Conn: alert.ConnConfig{URL: "nats://127.0.0.1:1"}}, db)
	if err != nil {
		t.Fatal(err)
	}
	svc.VisitLog, svc.Notifier = db, pub // the publisher's Notify writes the outbox, nothing more

	loopCtx, stop := context.WithCancel(ctx)
	loopDone := make(chan error, 1)
	go func() { loopDone <- svc.RetryLoop(loopCtx) }()
	defer func() { stop(); <-loopDone }()

	thaw := testenv.Freeze(t, path, path+"-wal", dir)
	rule := defaultRule()
	sc := &scene{camera: "door-1", start: t0, walkers: []*walker{
		approach(0, 300, p.recognisable(a, rule)[:2]),
		approach(70, 300, p.recognisable(b, rule)[:2]),
		approach(140, 300, p.recognisable(a, rule)[:2]), // a again, within the cooldown
	}}
	sc.play(t, svc, 200)
	st := svc.Stats.Snapshot()
	if st.Arrivals != 2 || st.Suppressed != 1 || st.Pending != 2 || st.RecordErrors == 0 || st.NotifyErrors == 0 {
		t.Fatalf("while frozen: stats %+v", st)
	}
	n, lastErr := svc.Pending()
	if n != 2 || lastErr == "" {
		t.Fatalf("pending %d, last error %q", n, lastErr)
	}
	// Retries keep failing while the files stay frozen.
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if e := svc.Stats.RecordErrors.Load(); e < st.RecordErrors+2 {
			return fmt.Errorf("%d record errors, no retry yet", e)
		}
		return nil
	})

	thaw()
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n, _ := svc.Pending(); n != 0 {
			return fmt.Errorf("%d arrivals still held", n)
		}
		return nil
	})
	visits, err := db.Visits(ctx, "", t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var ids, who []string
	for _, v := range visits {
		ids, who = append(ids, v.ID), append(who, v.CustomerID)
	}
	if !slices.Equal(who, []string{a, b}) {
		t.Fatalf("visits of %v, want %v", who, []string{a, b})
	}
	rows, err := db.SQL().Query(`SELECT msg_id FROM alert_outbox WHERE subject = ? ORDER BY seq`, alert.Subject("b001", alert.FeedVisit))
	if err != nil {
		t.Fatal(err)
	}
	var queued []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		queued = append(queued, strings.TrimSuffix(id, "/visit"))
	}
	rows.Close()
	if !slices.Equal(queued, ids) {
		t.Fatalf("outbox holds %v, visits %v: want the same ids once each, in order", queued, ids)
	}
	if st := svc.Stats.Snapshot(); st.Redelivered != 2 || st.Dropped != 0 || st.Pending != 0 || st.Arrivals != 2 {
		t.Fatalf("after thaw: stats %+v", st)
	}
	if n, lastErr := svc.Pending(); n != 0 || lastErr != "" {
		t.Fatalf("pending %d %q after delivery", n, lastErr)
	}
	// Info and above never name a customer.
	for _, id := range []string{a, b} {
		if strings.Contains(logs.String(), id) {
			t.Fatalf("customer id %s logged at info:\n%s", id, logs.String())
		}
	}
}

// failing is a notifier whose store refuses every arrival with err.
type failing struct{ err error }

func (f failing) Notify(context.Context, checkin.Arrival, []checkin.RiskFlag) error { return f.err }

// The queue is bounded: one arrival more than it holds is dropped and
// counted, as is one that can never be delivered (EINVALID), which must
// not block the arrivals behind it.
func TestRetryQueueBounds(t *testing.T) {
	p := newPopulation(t, 24)
	a, b := p.customer(t, 0, 2), p.customer(t, 1, 2)
	rule := defaultRule()
	play := func(svc *checkin.Service) {
		sc := &scene{camera: "door-1", start: t0, walkers: []*walker{
			approach(0, 300, p.recognisable(a, rule)[:2]),
			approach(70, 300, p.recognisable(b, rule)[:2]),
		}}
		sc.play(t, svc, 130)
	}

	cfg := testConfig()
	cfg.RetryQueue = 1
	svc, _ := newService(t, cfg, p.gallery)
	svc.Notifier = failing{errors.New("database is locked")}
	play(svc)
	if st := svc.Stats.Snapshot(); st.Arrivals != 2 || st.Pending != 1 || st.Dropped != 1 {
		t.Fatalf("full queue: stats %+v", st)
	}

	svc, _ = newService(t, testConfig(), p.gallery)
	svc.Notifier = failing{concierge.Errorf(concierge.EINVALID, "arrival is for another branch")}
	play(svc)
	if st := svc.Stats.Snapshot(); st.Arrivals != 2 || st.Pending != 0 || st.Dropped != 2 {
		t.Fatalf("invalid arrivals: stats %+v", st)
	}
}
