package checkin_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
)

// clock is a wall clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestHeldFaces: an arrival's and a card's faces are held, under their
// ids, for the claim window only, handed out once, dropped on "not this
// person", on erasure and at expiry; a stranger's are never held.
func TestHeldFaces(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 2)
	cardID := p.bandCustomer(t, 2)
	svc, rec, cards := newVerifyService(t, p)
	clk := &clock{now: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	svc.Held = checkin.NewHeldFaces(5*time.Minute, clk.Now)

	probes := p.recognisable(id, defaultRule())[:2]
	sc := &scene{camera: "door-1", start: t0, walkers: []*walker{
		approach(10, 300, probes),
		approach(0, 900, p.inBand(cardID)[:2]),
		{from: 0, to: 45, x: 600, y: 500, size: 120, probes: p.set.faces[p.strangers[0]]},
	}}
	sc.play(t, svc, 60)
	svc.Tick(sc.at(60).Add(time.Second))
	arrivals, cs := rec.got(), cards.got()
	if len(arrivals) != 1 || len(cs) != 1 {
		t.Fatalf("%d arrivals, %d cards; want 1 and 1", len(arrivals), len(cs))
	}
	if n := svc.Held.Len(); n != 2 {
		t.Fatalf("%d visits held, want 2 (the arrival and the card, not the stranger)", n)
	}
	cust, faces, ok := svc.Held.Take(arrivals[0].ID)
	if !ok || cust != id || len(faces) != arrivals[0].Votes {
		t.Fatalf("take arrival: %v %q, %d faces (votes %d)", ok, cust, len(faces), arrivals[0].Votes)
	}
	for _, f := range faces {
		if !slices.Contains(probes, f.Embedding) || f.Quality <= 0 {
			t.Fatalf("held a face that is not one the customer showed (quality %v)", f.Quality)
		}
	}
	if _, _, ok := svc.Held.Take(arrivals[0].ID); ok {
		t.Fatal("the same visit's faces handed out twice")
	}

	// The card's faces: dropped by an erasure of its customer.
	svc.Held.ForgetCustomer(cardID)
	if _, _, ok := svc.Held.Take(cs[0].ID); ok || svc.Held.Len() != 0 {
		t.Fatal("faces held after the customer's erasure")
	}

	// Expiry and "not this person".
	h := checkin.NewHeldFaces(time.Minute, clk.Now)
	hold(h, "A1", id)
	hold(h, "A2", id)
	h.Forget("A1")
	if _, _, ok := h.Take("A1"); ok {
		t.Fatal("faces of a rejected visit handed out")
	}
	clk.Add(61 * time.Second)
	h.Expire()
	if h.Len() != 0 {
		t.Fatal("faces held past the claim window")
	}
}

// hold puts one face under id through the exported path the service uses
// (a service holds only what it decides), here by the test hook.
func hold(h *checkin.HeldFaces, id, customer string) {
	checkin.HoldForTest(h, id, customer, []enroll.DoorFace{{Embedding: face.Embedding{1}, Quality: 1}})
}
