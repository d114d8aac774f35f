package eval

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestPercentileAndSummary(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 10}
	for _, tc := range []struct{ q, want float64 }{
		{0, 1}, {0.25, 2}, {0.5, 3}, {0.75, 4}, {1, 10},
		{0.1, 1.4},  // h = 0.4 between 1 and 2
		{0.95, 8.8}, // h = 3.8 between 4 and 10
	} {
		if got := Percentile(xs, tc.q); !near(got, tc.want) {
			t.Errorf("Percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	s := Summarize(xs)
	if s.N != 5 || !near(s.Mean, 4) || s.Min != 1 || s.Max != 10 || !near(s.Median, 3) {
		t.Fatalf("summary %+v", s)
	}
	if (Summarize(nil) != Summary{}) {
		t.Fatal("summary of nothing should be zero")
	}
}

func TestRates(t *testing.T) {
	g := []float64{0.1, 0.2, 0.3, 0.4}
	im := []float64{0.35, 0.5, 0.6, 0.7}
	for _, tc := range []struct {
		t        float64
		far, frr float64
		ia, gr   int
	}{
		{0.05, 0, 1, 0, 4},
		{0.2, 0, 0.5, 0, 2}, // a distance equal to the threshold is accepted
		{0.3, 0, 0.25, 0, 1},
		{0.35, 0.25, 0.25, 1, 1},
		{0.5, 0.5, 0, 2, 0},
		{1, 1, 0, 4, 0},
	} {
		r := Rates(g, im, tc.t)
		if !near(r.FAR, tc.far) || !near(r.FRR, tc.frr) || r.ImpostorsAccepted != tc.ia || r.GenuineRejected != tc.gr {
			t.Errorf("t=%v: got %+v, want FAR %v FRR %v (%d, %d)", tc.t, r, tc.far, tc.frr, tc.ia, tc.gr)
		}
	}
}

func TestEER(t *testing.T) {
	for _, tc := range []struct {
		name    string
		g, im   []float64
		eer, at float64
	}{
		// At 0.35 one genuine of four is rejected and one impostor of four
		// accepted: the rates meet exactly.
		{"exact", []float64{0.1, 0.2, 0.3, 0.4}, []float64{0.35, 0.5, 0.6, 0.7}, 0.25, 0.35},
		// At 0.2 FAR 0 < FRR 1/3; at 0.3 FAR 1/2 > FRR 1/3. The lines cross
		// two thirds of the way: EER 1/3 at 0.2 + 2/3·0.1.
		{"interpolated", []float64{0.1, 0.2, 0.5}, []float64{0.3, 0.4}, 1.0 / 3, 0.2 + 0.2/3},
		{"separated", []float64{0.1, 0.2}, []float64{0.3, 0.4}, 0, 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eer, at := EER(tc.g, tc.im)
			if !near(eer, tc.eer) || !near(at, tc.at) {
				t.Fatalf("EER = %v at %v, want %v at %v", eer, at, tc.eer, tc.at)
			}
		})
	}
}

func TestTARAtFAR(t *testing.T) {
	g := []float64{0.1, 0.2, 0.3, 0.4, 0.5}
	im := []float64{0.25, 0.35, 0.45, 0.55}
	for _, tc := range []struct {
		far     float64
		tar     float64
		below   float64 // the threshold is just below this distance
		allowed int
	}{
		{0.25, 0.6, 0.35, 1}, // one impostor of four may pass: accept below 0.35
		{0.5, 0.8, 0.45, 2},
		{0.1, 0.4, 0.25, 0}, // no impostor may pass
	} {
		r := TARAtFAR(g, im, tc.far)
		if !near(r.TAR, tc.tar) || r.ImpostorsAllowed != tc.allowed || !(r.Threshold < tc.below) || tc.below-r.Threshold > 1e-12 {
			t.Errorf("FAR %v: got %+v, want TAR %v below %v", tc.far, r, tc.tar, tc.below)
		}
		if got := Rates(g, im, r.Threshold); got.FAR > tc.far {
			t.Errorf("FAR %v: threshold %v accepts %v of impostors", tc.far, r.Threshold, got.FAR)
		}
	}
	if r := TARAtFAR(g, im, 1); r.TAR != 1 || r.Threshold != 0.55 {
		t.Errorf("FAR 1: %+v", r)
	}
}

func TestVerify(t *testing.T) {
	v := Verify([]float64{0.4, 0.1, 0.3, 0.2}, []float64{0.7, 0.35, 0.6, 0.5}, []float64{0.3, 0.5})
	if v.Genuine.N != 4 || v.Impostor.N != 4 || !near(v.EER, 0.25) || len(v.Table) != 2 || len(v.TARAt) != len(DefaultFARs) {
		t.Fatalf("%+v", v)
	}
	if !near(v.Table[1].FAR, 0.5) || !near(v.Table[0].FRR, 0.25) {
		t.Fatalf("table %+v", v.Table)
	}
}
