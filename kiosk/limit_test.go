package kiosk

import (
	"fmt"
	"testing"
	"time"

	"concierge/internal/testenv"
)

// A flood of addresses with empty buckets (failed tokens) keeps the
// table bounded, and a new address still gets a bucket of its own.
func TestLimiterBounded(t *testing.T) {
	clk := testenv.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	l := newLimiter(1.0/6, 1, clk.Now)
	for i := 0; i < maxBuckets+50; i++ {
		if ok, _ := l.allow(fmt.Sprintf("10.0.%d.%d", i>>8, i&255)); !ok {
			t.Fatalf("address %d refused on its first try", i)
		}
	}
	if n := len(l.buckets); n > maxBuckets {
		t.Fatalf("%d buckets, want at most %d", n, maxBuckets)
	}
	if ok, _ := l.allow("attacker"); !ok {
		t.Fatal("a new address refused on its first try")
	}
	if ok, _ := l.allow("attacker"); ok {
		t.Fatal("a new address in a full table is not limited")
	}
}
