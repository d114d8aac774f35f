package alert_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"concierge"
	"concierge/alert"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// With no NATS server the outbox fills and CheckDrain fails once the
// oldest alert has waited longer than allowed; when the server comes the
// outbox drains and CheckDrain passes again.
func TestCheckDrain(t *testing.T) {
	ctx := context.Background()
	db := testdb.Open(t)
	var mu sync.Mutex
	clock := epoch
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	r := testenv.RunNATS(t)
	r.Stop() // down when the client starts
	p := openPublisher(t, r.URL(), db, func(c *alert.PublisherConfig) { c.Now = now })
	if err := p.CheckDrain(ctx, epoch, time.Minute); err != nil {
		t.Fatalf("empty outbox: %v", err)
	}
	if err := p.Notify(ctx, vipArrival(1), nil); err != nil {
		t.Fatal(err)
	}
	created, ok, err := p.OldestPending(ctx)
	if err != nil || !ok || !created.Equal(epoch) {
		t.Fatalf("oldest pending %v %v %v, want %v", created, ok, err, epoch)
	}
	if err := p.CheckDrain(ctx, epoch.Add(time.Minute), 2*time.Minute); err != nil {
		t.Fatalf("a minute's wait: %v", err)
	}
	err = p.CheckDrain(ctx, epoch.Add(3*time.Minute), 2*time.Minute)
	if concierge.ErrorCode(err) != concierge.EUNAVAILABLE || !strings.Contains(err.Error(), "does not drain") {
		t.Fatalf("three minutes' wait: %v", err)
	}

	r.Start()
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		return p.CheckDrain(ctx, epoch.Add(3*time.Minute), 2*time.Minute)
	})
	if _, ok, err := p.OldestPending(ctx); ok || err != nil {
		t.Fatalf("after drain: pending %v, %v", ok, err)
	}
}
