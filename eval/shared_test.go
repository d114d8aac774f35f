package eval

import (
	"math"
	"os"
	"sync"
	"testing"

	"concierge/enroll"
	"concierge/internal/testenv"
)

// The figures below are those docs/accuracy.md reports for dlib's ResNet
// on idols-descriptors.json (`concierge eval --descriptors …` with the
// default flags). The tests keep the decision code, the simulation and the
// calibration from drifting away from them unnoticed.

// recommendedDlib is the rule recommended for dlib: it meets one false
// alert per 10,000 stranger visits at 10,000 customers (extrapolated).
var recommendedDlib = enroll.Rule{Threshold: 0.185, Margin: 0.10}

const recommendedDlibVotes = 1

// earlierDefault is the rule shipped before these measurements.
var earlierDefault = enroll.Rule{Threshold: 0.40, Margin: 0.06}

// dlibCeiling is the largest dlib threshold the configuration allows
// (match.threshold 0 never goes above it), with its margin.
var dlibCeiling = enroll.Rule{Threshold: 0.30, Margin: 0.10}

// shippedDlib89 is the rule the configuration ships for dlib in a gallery of
// 89 customers, decided on one vote with dlib's face slack: match.threshold
// 0 calibrates it from dlib's tails (single faces and tracks decided on
// their fused embeddings) for 1e-4 false alerts per stranger visit.
var shippedDlib89 = enroll.Rule{Threshold: 0.177, Margin: 0.10, FaceSlack: 0.15}

var (
	idolsOnce sync.Once
	idols     *Set
	idolsErr  error
)

// idolSet loads and dedupes the shared descriptor file once per test binary.
func idolSet(t *testing.T) *Set {
	t.Helper()
	path := testenv.Shared(t, "data/idols-descriptors.json")
	idolsOnce.Do(func() {
		f, err := os.Open(path)
		if err != nil {
			idolsErr = err
			return
		}
		defer f.Close()
		idols, idolsErr = ReadDescriptors(f)
		if idolsErr == nil {
			idolsErr = idols.Dedupe(DefaultDuplicate)
		}
	})
	if idolsErr != nil {
		t.Fatal(idolsErr)
	}
	return idols
}

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.4f, want %.4f ± %.4f", what, got, want, tol)
	}
}

func TestIdolsVerification(t *testing.T) {
	set := idolSet(t)
	if len(set.Samples) != 1241 || len(set.Dropped) != 45 || len(set.Labels()) != 134 {
		t.Fatalf("%d faces, %d dropped, %d identities; want 1241, 45, 134", len(set.Samples), len(set.Dropped), len(set.Labels()))
	}
	g, im, err := set.Pairs()
	if err != nil {
		t.Fatal(err)
	}
	v := Verify(g, im, []float64{0.30, 0.40})
	within(t, "EER", v.EER, 0.207, 0.003)
	within(t, "genuine median", v.Genuine.Median, 0.389, 0.002)
	within(t, "impostor median", v.Impostor.Median, 0.497, 0.002)
	within(t, "TAR at FAR 1%", v.TARAt[0].TAR, 0.330, 0.005)
	within(t, "TAR at FAR 0.1%", v.TARAt[1].TAR, 0.137, 0.005)
	within(t, "FAR at 0.30", v.Table[0].FAR, 0.000192, 0.00003)
	within(t, "FAR at 0.40", v.Table[1].FAR, 0.0543, 0.001)
	within(t, "FRR at 0.40", v.Table[1].FRR, 0.427, 0.005)
}

func TestIdolsOpenSet(t *testing.T) {
	set := idolSet(t)
	tr, err := Simulate(set, DefaultOpenSet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		rule  enroll.Rule
		votes int
		// single: accept, wrong accept, stranger accept; fused: accept, stranger accept
		want [5]float64
		tol  [5]float64
	}{
		{"recommended", recommendedDlib, recommendedDlibVotes,
			[5]float64{0.0009, 0, 0, 0.0019, 0}, [5]float64{0.001, 0.0005, 0.0005, 0.002, 0.0005}},
		// What the daemon ships with dlib at this gallery's 89 customers:
		// the threshold calibrated from dlib's tail (cmd/concierge).
		{"shipped, calibrated for 89 customers", shippedDlib89, 1,
			[5]float64{0.0005, 0, 0, 0.0582, 0}, [5]float64{0.0005, 0.0005, 0.0005, 0.006, 0.0005}},
		{"dlib ceiling", dlibCeiling, 2,
			[5]float64{0.0425, 0, 0, 0.0229, 0}, [5]float64{0.006, 0.0005, 0.0005, 0.006, 0.0005}},
		{"earlier default", earlierDefault, 3,
			[5]float64{0.220, 0.0016, 0.0055, 0.133, 0}, [5]float64{0.01, 0.001, 0.003, 0.015, 0.003}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tr.Evaluate(tc.rule, tc.votes)
			for i, got := range []float64{res.Single.Accept.Rate, res.Single.WrongAccept.Rate, res.Single.StrangerAccept.Rate,
				res.Fused.Accept.Rate, res.Fused.StrangerAccept.Rate} {
				what := [5]string{"single accept", "single wrong accept", "single stranger accept", "fused accept", "fused stranger accept"}[i]
				within(t, what, got, tc.want[i], tc.tol[i])
			}
		})
	}
	t.Run("calibration", func(t *testing.T) {
		cal, err := NewCalibrator(tr, 0)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := cal.Recommend(DefaultTarget, nil, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		within(t, "threshold", rec.Rule.Threshold, recommendedDlib.Threshold, 0.005)
		if rec.Rule.Margin != recommendedDlib.Margin || rec.Votes != recommendedDlibVotes || !rec.Extrapolated || rec.Warning == "" {
			t.Fatalf("recommended %+v, %d votes, extrapolated %v, warning %q", rec.Rule, rec.Votes, rec.Extrapolated, rec.Warning)
		}
		// The measured part of the tail: p(0.30) per probe-customer comparison.
		p, ext := cal.tail.P(0.30)
		within(t, "p(0.30)", p, 2.8e-3, 0.2e-3)
		if ext {
			t.Error("p(0.30) should be measured, not extrapolated")
		}
		// The tails cmd/concierge ships for dlib: single faces, and
		// tracks decided on their fused embeddings alone.
		within(t, "single tail alpha", cal.tail.Alpha, -10.154, 0.002)
		within(t, "single tail beta", cal.tail.Beta, 24.429, 0.002)
		within(t, "track tail alpha", cal.track.Alpha, -10.021, 0.002)
		within(t, "track tail beta", cal.track.Beta, 29.839, 0.002)
	})
}

// TestIdolsCentroidIsTheGallery checks on real descriptors that the
// simulation's centroid decisions are enroll.Gallery.Search's.
func TestIdolsCentroidIsTheGallery(t *testing.T) {
	centroidIsTheGallery(t, idolSet(t))
}

// TestIdolsScorings pins the comparison of per-customer scores that chose
// the gallery's: the centroid of the templates separates customers better
// than the nearest template, and the mean of the two nearest lies between.
func TestIdolsScorings(t *testing.T) {
	set := idolSet(t)
	tar := map[Scoring]float64{}
	for _, mode := range Scorings {
		cfg := DefaultOpenSet
		cfg.Scoring = mode
		tr, err := Simulate(set, cfg)
		if err != nil {
			t.Fatal(err)
		}
		v := Verify(tr.GenuineScores(), tr.ImpostorScores(), []float64{})
		tar[mode] = v.TARAt[1].TAR // at FAR 0.1 %
	}
	within(t, "min TAR at FAR 0.1%", tar[BestOf], 0.221, 0.01)
	within(t, "centroid TAR at FAR 0.1%", tar[Centroid], 0.285, 0.01)
	if !(tar[Centroid] > tar[MeanOf2] && tar[MeanOf2] > tar[BestOf]) {
		t.Fatalf("TAR at FAR 0.1%%: %v", tar)
	}
}
