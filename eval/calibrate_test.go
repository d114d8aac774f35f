package eval

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"concierge/enroll"
)

// TestFitTail fits a normal sample, whose tail is known: the fit must
// recover the normal's line on the probit scale and extrapolate to it.
func TestFitTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	xs := make([]float64, 200_000)
	for i := range xs {
		xs[i] = 0.5 + 0.05*rng.NormFloat64()
	}
	slices.Sort(xs)
	tail, err := FitTail(xs)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(tail.Beta-20) > 1.5 || math.Abs(tail.Alpha+10) > 0.8 {
		t.Fatalf("fit z = %v + %v t, want about −10 + 20 t", tail.Alpha, tail.Beta)
	}
	p, ext := tail.P(0.25) // 5 standard deviations down: Φ(−5) = 2.87e-7
	if !ext || p < 2.87e-7/2 || p > 2.87e-7*2 {
		t.Fatalf("P(0.25) = %v (extrapolated %v), want about 2.9e-7", p, ext)
	}
	p, ext = tail.P(0.45) // Φ(−1) = 0.159, measured
	if ext || math.Abs(p-0.1587) > 0.005 {
		t.Fatalf("P(0.45) = %v (extrapolated %v)", p, ext)
	}
	if _, err := FitTail(xs[:500]); !errors.Is(err, ErrTooFew) {
		t.Fatalf("500 comparisons: %v, want ErrTooFew", err)
	}
}

// TestRecommend checks the calibration's promises on a synthetic
// population: the recommended threshold meets the target and is the
// largest on the grid that does.
func TestRecommend(t *testing.T) {
	set := syntheticSet(60, 8, 0.25, 4)
	tr, err := Simulate(set, OpenSetConfig{Enroll: 3, Strangers: 1.0 / 3, Seeds: 3, Seed: 1, Track: 5, Scoring: BestOf})
	if err != nil {
		t.Fatal(err)
	}
	cal, err := NewCalibrator(tr, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, credit := range []bool{false, true} {
		tg := DefaultTarget
		tg.CreditFusion = credit
		rec, err := cal.Recommend(tg, []float64{0.3, 0.4}, 0.06, 3)
		if err != nil {
			t.Fatal(err)
		}
		th := rec.Rule.Threshold
		p, _ := cal.perComparison(th, rec.Votes, credit)
		next, _ := cal.perComparison(th+thresholdStep, rec.Votes, credit)
		if enroll.PerVisit(p, tg.Gallery) > tg.Rate || enroll.PerVisit(next, tg.Gallery) <= tg.Rate {
			t.Fatalf("credit %v: threshold %v gives %v per visit, the next step %v; target %v",
				credit, th, enroll.PerVisit(p, tg.Gallery), enroll.PerVisit(next, tg.Gallery), tg.Rate)
		}
		if !credit && p < rec.PerComparison {
			t.Fatalf("uncredited calibration used %v below the single-probe rate %v", p, rec.PerComparison)
		}
		if len(rec.ByVotes) != 5 || len(rec.Expected) != len(ReportGalleries) || len(rec.Sweep) != 2 {
			t.Fatalf("recommendation %+v", rec)
		}
		if s := rec.Sweep[1].Measured; s.Rule.Margin != 0.06 || s.Votes != 3 {
			t.Fatalf("sweep at %+v, want the configured margin and votes", s.Rule)
		}
		// Smaller galleries allow larger thresholds.
		for i := 1; i < len(rec.ByGallery); i++ {
			if rec.ByGallery[i].Rule.Threshold > rec.ByGallery[i-1].Rule.Threshold {
				t.Fatalf("by gallery %+v", rec.ByGallery)
			}
		}
		// These identities are well separated: the target is reachable.
		if rec.Warning != "" || rec.Measured.Fused.Accept.Rate < 0.5 {
			t.Fatalf("credit %v: %s (fused accept %v)", credit, rec.Warning, rec.Measured.Fused.Accept.Rate)
		}
	}
}
