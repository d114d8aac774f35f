package enroll_test

import (
	"math"
	"testing"

	"concierge/enroll"
)

func TestPerVisit(t *testing.T) {
	for _, tc := range []struct {
		p    float64
		n    int
		want float64
	}{
		{0, 100, 0},
		{1, 5, 1},
		{0.5, 2, 0.75},
		{0.1, 3, 0.271},
		// Tiny rates keep their precision: n·p to first order.
		{1e-12, 10_000, 1e-8 - 5e-17},
	} {
		if got := enroll.PerVisit(tc.p, tc.n); math.Abs(got-tc.want) > 1e-12*math.Max(tc.want, 1e-12) {
			t.Errorf("PerVisit(%v, %d) = %v, want %v", tc.p, tc.n, got, tc.want)
		}
	}
}

// The MobileFaceNet tails measured on the Korean photos (docs/accuracy.md):
// single faces, and 5-face tracks decided on their fused embeddings alone.
var (
	mfnTail      = enroll.Tail{Alpha: -12.608, Beta: 11.285}
	mfnTrackTail = enroll.Tail{Alpha: -11.415, Beta: 10.935}
)

func TestTailThreshold(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want float64 // from Φ⁻¹(1e-4/n) by hand
	}{
		{1, 0.7877},
		{10, 0.7393},
		{100, 0.6960},
		{10_000, 0.6201},
	} {
		th := mfnTail.Threshold(1e-4, tc.n)
		if math.Abs(th-tc.want) > 5e-4 {
			t.Errorf("%d customers: threshold %.4f, want %.4f", tc.n, th, tc.want)
		}
		// The inverse holds: at that threshold the budget is met exactly.
		if got := enroll.PerVisit(mfnTail.P(th), tc.n); math.Abs(got-1e-4) > 1e-9 {
			t.Errorf("%d customers: %.3g false alerts per visit at %.4f, want 1e-4", tc.n, got, th)
		}
	}
}

func TestOpenSetThreshold(t *testing.T) {
	o := enroll.OpenSet{Tail: mfnTail, Target: 1e-4, Ceiling: 0.78}
	o1 := o
	o1.Track = mfnTrackTail
	for _, tc := range []struct {
		name string
		o    enroll.OpenSet
		n    int
		want float64
	}{
		{"an empty gallery is capped", o, 0, 0.78},
		{"one customer is capped", o, 1, 0.78},
		{"ten customers", o, 10, 0.7393},
		{"ten thousand customers", o, 10_000, 0.6201},
		{"no tail: the ceiling", enroll.OpenSet{Target: 1e-4, Ceiling: 0.5}, 10_000, 0.5},
		{"no target: the ceiling", enroll.OpenSet{Tail: mfnTail, Ceiling: 0.5}, 10_000, 0.5},
		// The track's rate is the larger one: the mean of a stranger's
		// faces lies nearer the average face, so nearer someone's centroid.
		{"ten customers, track tail", o1, 10, 0.6539},
		{"a hundred customers, track tail", o1, 100, 0.6092},
		{"a thousand customers, track tail", o1, 1000, 0.5684},
		{"ten thousand customers, track tail", o1, 10_000, 0.5307},
		{"the track tail alone binds", enroll.OpenSet{Tail: mfnTail, Track: mfnTrackTail, Target: 1e-4, Ceiling: 0.60}, 10, 0.60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.o.Threshold(tc.n); math.Abs(got-tc.want) > 5e-4 {
				t.Fatalf("threshold %.4f, want %.4f", got, tc.want)
			}
		})
	}
	// Smaller galleries allow larger thresholds, never the other way round.
	prev := o.Threshold(1)
	for n := 2; n <= 100_000; n *= 3 {
		if th := o.Threshold(n); th > prev {
			t.Fatalf("threshold grows from %v to %v at %d customers", prev, th, n)
		} else {
			prev = th
		}
	}
	if e := o.Expected(0.78, 1000); math.Abs(e-0.0682) > 0.002 {
		t.Errorf("expected false alerts at 0.78 with 1,000 customers: %.4f, want 0.068", e)
	}
	// Each threshold meets the target exactly for the larger rate.
	for _, n := range []int{10, 100, 1000, 10_000} {
		if e := o1.Expected(o1.Threshold(n), n); math.Abs(e-1e-4) > 1e-9 {
			t.Errorf("%d customers: %.4g false alerts per visit at the threshold, want 1e-4", n, e)
		}
	}
}

func TestOpenSetBand(t *testing.T) {
	o := enroll.OpenSet{Tail: mfnTail, Track: mfnTrackTail, Target: 1e-4, Ceiling: 0.78}
	for _, n := range []int{1, 10, 100, 1000, 10_000} {
		th, b := o.Threshold(n), o.Band(1e-2, n)
		if b <= th {
			t.Errorf("%d customers: band %.4f not beyond threshold %.4f", n, b, th)
		}
		// At the band's edge the larger of the two tails spends the card
		// budget exactly, as Threshold spends the alert budget.
		p := max(mfnTail.P(b), mfnTrackTail.P(b))
		if got := enroll.PerVisit(p, n); math.Abs(got-1e-2) > 1e-9 {
			t.Errorf("%d customers: %.4g cards per stranger visit at %.4f, want 1e-2", n, got, b)
		}
		if n > 1 && b >= o.Band(1e-2, n/10) {
			t.Errorf("%d customers: band %.4f does not shrink with the gallery", n, b)
		}
	}
	// No band without a budget or without measured tails.
	if b, th := o.Band(0, 100), o.Threshold(100); b != th {
		t.Errorf("target 0: band %v, want the threshold %v", b, th)
	}
	fixed := enroll.OpenSet{Ceiling: 0.6}
	if b := fixed.Band(1e-2, 100); b != 0.6 {
		t.Errorf("unmeasured tails: band %v, want 0.6", b)
	}
	// A budget tighter than the alerts' can never narrow the threshold.
	if b, th := o.Band(1e-6, 100), o.Threshold(100); b != th {
		t.Errorf("target 1e-6: band %v, want the threshold %v", b, th)
	}
}
