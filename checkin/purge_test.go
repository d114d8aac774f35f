package checkin_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"concierge"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

func TestPurgeLoop(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	for i, age := range []time.Duration{100 * 24 * time.Hour, 91 * 24 * time.Hour, 10 * 24 * time.Hour, time.Hour} {
		a := checkin.Arrival{ID: fmt.Sprintf("V%d", i), Branch: "b001", Camera: "door-1", CustomerID: "C1", At: now.Add(-age), Votes: 2}
		if err := db.RecordVisit(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := checkin.NewService(testConfig(), enroll.NewGallery(model))
	if err != nil {
		t.Fatal(err)
	}
	svc.VisitLog = db
	svc.Now = func() time.Time { return now }

	for _, bad := range []struct{ every, retention time.Duration }{{0, time.Hour}, {time.Hour, 0}} {
		if err := svc.PurgeLoop(ctx, bad.every, bad.retention); concierge.ErrorCode(err) != concierge.EINVALID {
			t.Errorf("every %v retention %v: %v", bad.every, bad.retention, err)
		}
	}

	loopCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.PurgeLoop(loopCtx, 10*time.Millisecond, checkin.DefaultRetention) }()
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		vs, err := db.Visits(ctx, "", time.Time{})
		if err != nil || len(vs) != 2 || vs[0].ID != "V2" {
			return fmt.Errorf("visits after purge: %+v, %v", vs, err)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("PurgeLoop returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("PurgeLoop did not return after cancel")
	}

	svc.VisitLog = nil
	if err := svc.PurgeLoop(ctx, time.Hour, time.Hour); concierge.ErrorCode(err) != concierge.EINVALID {
		t.Fatalf("no visit log: %v", err)
	}
}
