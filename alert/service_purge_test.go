package alert_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"concierge"
	"concierge/alert"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// Service events name nobody, but the shortest retention that serves the
// report still applies: the loop deletes those older than its retention,
// at once and then on every tick, and keeps the rest.
func TestPurgeServiceLoop(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tier := &alert.Tier{Scheme: "icbc-stars", Level: "star5"}
	for _, age := range []time.Duration{401 * 24 * time.Hour, 399 * 24 * time.Hour, time.Hour} {
		if err := db.RecordService(ctx, alert.ServiceEvent{Kind: alert.ServiceEscalation, Tier: tier, At: now.Add(-age)}); err != nil {
			t.Fatal(err)
		}
	}
	escalations := func() int {
		t.Helper()
		rep, err := db.ServiceReport(ctx, now.Add(-1000*24*time.Hour), time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range rep.Totals {
			n += r.Escalations
		}
		return n
	}
	if n := escalations(); n != 3 {
		t.Fatalf("recorded %d escalations, want 3", n)
	}

	var clock atomic.Int64 // the loop's clock, moved on by the test
	clock.Store(now.UnixNano())
	loopCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- alert.PurgeServiceLoop(loopCtx, db, 10*time.Millisecond, alert.DefaultServiceRetention,
			func() time.Time { return time.Unix(0, clock.Load()) }, testLogger())
	}()
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := escalations(); n != 2 {
			return fmt.Errorf("%d escalations left, want the 2 younger than 400 days", n)
		}
		return nil
	})
	// The next tick finds the clock a day on: the 399-day-old one goes.
	clock.Add(int64(2 * 24 * time.Hour))
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := escalations(); n != 1 {
			return fmt.Errorf("%d escalations left, want 1", n)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopped loop: %v", err)
	}

	for _, c := range []struct {
		every, retention time.Duration
	}{{0, time.Hour}, {time.Hour, 0}} {
		err := alert.PurgeServiceLoop(ctx, db, c.every, c.retention, nil, nil)
		if concierge.ErrorCode(err) != concierge.EINVALID {
			t.Errorf("every %v retention %v: %v, want EINVALID", c.every, c.retention, err)
		}
	}
}
