package checkin_test

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/enroll"
)

var cst = time.FixedZone("CST", 8*3600)

func newFeedback(t *testing.T, edit func(*checkin.FeedbackConfig)) *checkin.Feedback {
	t.Helper()
	cfg := checkin.DefaultFeedbackConfig(0.30)
	cfg.Location = cst
	if edit != nil {
		edit(&cfg)
	}
	f, err := checkin.NewFeedback(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mark(id, customer string, at time.Time) checkin.FalseMatch {
	return checkin.FalseMatch{AlertID: id, CustomerID: customer, At: at}
}

func wantStrict(t *testing.T, f *checkin.Feedback, customer string, at time.Time, votes int, delta float64) {
	t.Helper()
	v, d := f.Strictness(customer, at)
	if v != votes || math.Abs(d-delta) > 1e-9 {
		t.Errorf("%s at %v: +%d votes, threshold %+.3f; want +%d, %+.3f", customer, at, v, d, votes, delta)
	}
}

// One false match tightens that customer's rule until local midnight,
// and no one else's.
func TestFeedbackRestOfDay(t *testing.T) {
	f := newFeedback(t, nil)
	at := time.Date(2026, 11, 25, 15, 0, 0, 0, cst)
	wantStrict(t, f, "C1", at, 0, 0)
	f.Add(mark("A1", "C1", at))
	f.Add(mark("A1", "C1", at)) // a replay changes nothing
	wantStrict(t, f, "C1", at.Add(time.Minute), 1, -0.03)
	wantStrict(t, f, "C1", time.Date(2026, 11, 25, 23, 59, 59, 0, cst), 1, -0.03)
	// Midnight in the branch's zone, whatever zone the frame time is in.
	wantStrict(t, f, "C1", time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC), 0, 0)
	wantStrict(t, f, "C2", at, 0, 0)
	if r := f.Report(at); len(r) != 1 || r[0].Total != 1 || r[0].Recent != 1 || r[0].StrictUntil == nil ||
		!r[0].StrictUntil.Equal(time.Date(2026, 11, 26, 0, 0, 0, 0, cst)) || r[0].ReenrollSuggested {
		t.Errorf("report %+v", r)
	}
	if strict, reenroll := f.Counts(at); strict != 1 || reenroll != 0 {
		t.Errorf("counts %d %d", strict, reenroll)
	}
	if strict, _ := f.Counts(at.Add(24 * time.Hour)); strict != 0 {
		t.Errorf("strict the next day: %d", strict)
	}
}

// Three false matches within 30 days keep the rule tight, one step more
// on a day with a false match, until the customer enrolls again.
func TestFeedbackRepeated(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 11, d, 10, 0, 0, 0, cst) }
	f := newFeedback(t, nil)
	f.Reset([]checkin.FalseMatch{mark("A1", "C1", day(1)), mark("A3", "C1", day(20)), mark("A2", "C1", day(10))})
	wantStrict(t, f, "C1", day(20), 2, -0.06)
	wantStrict(t, f, "C1", day(29), 1, -0.03)
	wantStrict(t, f, "C1", day(29).AddDate(1, 0, 0), 1, -0.03)
	r := f.Report(day(29))
	if len(r) != 1 || !r[0].ReenrollSuggested || r[0].Total != 3 || r[0].Recent != 3 || !r[0].Last.Equal(day(20)) ||
		r[0].StrictUntil != nil || r[0].ExtraVotes != 1 {
		t.Errorf("report %+v", r)
	}
	if _, reenroll := f.Counts(day(29)); reenroll != 1 {
		t.Errorf("re-enrollment suggested for %d customers", reenroll)
	}

	// Spread over more than 30 days: never lasting.
	f.Reset([]checkin.FalseMatch{mark("A1", "C1", day(1)), mark("A2", "C1", day(20)), mark("A3", "C1", day(20).AddDate(0, 0, 12))})
	wantStrict(t, f, "C1", day(20).AddDate(0, 0, 13), 0, 0)
	// Re-enrolled since the first two: only one counts.
	ms := []checkin.FalseMatch{mark("A1", "C1", day(1)), mark("A2", "C1", day(2)), mark("A3", "C1", day(3))}
	ms[0].Reenrolled, ms[1].Reenrolled = true, true
	f.Reset(ms)
	wantStrict(t, f, "C1", day(4), 0, 0)
	f.Add(mark("A4", "C1", day(4)))
	f.Add(mark("A5", "C1", day(5)))
	wantStrict(t, f, "C1", day(6), 1, -0.03)

	off := newFeedback(t, func(c *checkin.FeedbackConfig) { c.RepeatCount = 0 })
	off.Reset([]checkin.FalseMatch{mark("A1", "C1", day(1)), mark("A2", "C1", day(1)), mark("A3", "C1", day(1))})
	wantStrict(t, off, "C1", day(2), 0, 0)
}

func TestFeedbackConfig(t *testing.T) {
	for _, c := range []checkin.FeedbackConfig{
		{ExtraVotes: -1, Tighten: 0.03},
		{ExtraVotes: 1, Tighten: -0.03},
		{},
		{ExtraVotes: 1, RepeatCount: -1},
		{ExtraVotes: 1, RepeatCount: 3},
	} {
		if _, err := checkin.NewFeedback(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if c := checkin.DefaultFeedbackConfig(0.80); c.Tighten != 0.08 || c.ExtraVotes != 1 || c.RepeatCount != 3 {
		t.Errorf("default %+v", c)
	}
}

// The Strictness hook is read on every camera's path while feedback
// arrives: the race detector checks it.
func TestFeedbackConcurrent(t *testing.T) {
	f := newFeedback(t, nil)
	at := time.Date(2026, 11, 25, 15, 0, 0, 0, cst)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if g == 0 {
					f.Add(mark(fmt.Sprint("A", i), fmt.Sprint("C", i%7), at))
				} else {
					f.Strictness(fmt.Sprint("C", i%7), at)
				}
			}
		}()
	}
	wg.Wait()
	wantStrict(t, f, "C3", at, 2, -0.06) // 28 or 29 marks on one day: repeated
}

// The real hook on the real decision: after "not this person", the same
// customer's next visit that day needs a third vote within the tighter
// threshold, a quick pass that gave two votes is no longer announced, and
// the next day the usual rule is back.
func TestFeedbackTightensMatching(t *testing.T) {
	p := newPopulation(t, 24)
	cfg := testConfig()
	// The quick pass below counts on embeddings MinEmbedInterval apart,
	// also once the first one names the customer.
	cfg.ConfirmInterval = cfg.MinEmbedInterval
	fcfg := checkin.DefaultFeedbackConfig(cfg.Threshold)
	fcfg.Location = time.UTC
	strict := enroll.Rule{Threshold: cfg.Threshold - fcfg.Tighten, Margin: cfg.Margin}
	var id string
	for _, c := range p.recognisableCustomers(defaultRule(), 3) {
		if len(p.recognisable(c, strict)) >= 3 {
			id = c
			break
		}
	}
	if id == "" {
		t.Fatal("no customer with three descriptors inside the tightened rule")
	}
	probes := p.recognisable(id, strict)[:3]
	fb, err := checkin.NewFeedback(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	svc, rec := newService(t, cfg, p.gallery)
	svc.Strictness = fb.Strictness

	// visit plays one walker at start and returns the arrival it made and
	// the embeddings it cost.
	visit := func(start time.Time, w *walker, frames int) (*checkin.Arrival, int64) {
		t.Helper()
		before, embeds := len(rec.got()), svc.Stats.Embeddings.Load()
		sc := &scene{camera: "door-1", start: start, walkers: []*walker{w}}
		sc.play(t, svc, frames)
		svc.EndCamera("door-1", sc.at(frames))
		got := rec.got()
		n := svc.Stats.Embeddings.Load() - embeds
		switch len(got) - before {
		case 0:
			return nil, n
		case 1:
			return &got[before], n
		}
		t.Fatalf("visit at %v: %d arrivals", start, len(got)-before)
		return nil, 0
	}
	quick := func() *walker { // in view for 0.4 s: two embeddings
		return &walker{from: 0, to: 6, x: 300, y: 200, size: 120, dx: 3, dy: 1, grow: 2, probes: probes}
	}

	morning := t0.Truncate(24 * time.Hour).Add(9 * time.Hour)
	a, _ := visit(morning, approach(0, 300, probes), 45)
	if a == nil || a.Votes != 2 {
		t.Fatalf("first visit: %+v", a)
	}
	usual := a.At.Sub(morning)
	a, n := visit(morning.Add(time.Hour), quick(), 6)
	if a == nil || n != 2 {
		t.Fatalf("quick pass before any feedback: arrival %+v after %d embeddings; want one after 2", a, n)
	}

	fb.Add(checkin.FalseMatch{AlertID: a.ID, CustomerID: id, At: a.At.Add(time.Minute)})
	if v, d := svc.Strictness(id, a.At); v != 1 || d != -fcfg.Tighten {
		t.Fatalf("hook %d %v", v, d)
	}
	if a, n := visit(morning.Add(2*time.Hour), quick(), 6); a != nil || n != 2 {
		t.Fatalf("quick pass after the mark: arrival %+v after %d embeddings; want none", a, n)
	}
	a, _ = visit(morning.Add(3*time.Hour), approach(0, 300, probes), 45)
	if a == nil || a.Votes != 3 || a.At.Sub(morning.Add(3*time.Hour)) <= usual {
		t.Fatalf("visit after the mark: %+v; want 3 votes, later than %v into the track", a, usual)
	}
	if a, _ := visit(morning.Add(24*time.Hour), quick(), 6); a == nil || a.Votes != 2 {
		t.Fatalf("quick pass the next day: %+v", a)
	}
}
