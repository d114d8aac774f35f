package eval

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadLFWPairs(t *testing.T) {
	const text = "2\t2\n" +
		"Abel_Pacheco\t1\t4\nAnn\t2\t3\nAbel_Pacheco\t1\tBob\t12\nAnn\t1\tCy\t2\n" +
		"Dee\t1\t2\n\nEve\t3\t4\nDee\t1\tEve\t1\nFay\t10\tGus\t100\n"
	pairs, folds, err := ReadLFWPairs(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if folds != 2 || len(pairs) != 8 {
		t.Fatalf("%d folds, %d pairs", folds, len(pairs))
	}
	want := []LFWPair{
		{0, true, filepath.Join("Abel_Pacheco", "Abel_Pacheco_0001.jpg"), filepath.Join("Abel_Pacheco", "Abel_Pacheco_0004.jpg")},
		{0, true, filepath.Join("Ann", "Ann_0002.jpg"), filepath.Join("Ann", "Ann_0003.jpg")},
		{0, false, filepath.Join("Abel_Pacheco", "Abel_Pacheco_0001.jpg"), filepath.Join("Bob", "Bob_0012.jpg")},
		{0, false, filepath.Join("Ann", "Ann_0001.jpg"), filepath.Join("Cy", "Cy_0002.jpg")},
		{1, true, filepath.Join("Dee", "Dee_0001.jpg"), filepath.Join("Dee", "Dee_0002.jpg")},
		{1, true, filepath.Join("Eve", "Eve_0003.jpg"), filepath.Join("Eve", "Eve_0004.jpg")},
		{1, false, filepath.Join("Dee", "Dee_0001.jpg"), filepath.Join("Eve", "Eve_0001.jpg")},
		{1, false, filepath.Join("Fay", "Fay_0010.jpg"), filepath.Join("Gus", "Gus_0100.jpg")},
	}
	for i := range want {
		if pairs[i] != want[i] {
			t.Errorf("pair %d = %+v, want %+v", i, pairs[i], want[i])
		}
	}
	for name, bad := range map[string]string{
		"empty":       "",
		"one fold":    "1\t1\nA\t1\t2\nA\t1\tB\t1\n",
		"short":       "2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\t2\n",
		"wrong shape": "2\t1\nA\t1\tB\t2\nA\t1\tB\t1\nC\t1\t2\nC\t1\tD\t1\n",
		"bad number":  "2\t1\nA\t1\tx\nA\t1\tB\t1\nC\t1\t2\nC\t1\tD\t1\n",
	} {
		if _, _, err := ReadLFWPairs(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestBestThreshold(t *testing.T) {
	// Same-person pairs at 0.1 and 0.3, different-person at 0.2 and 0.5:
	// thresholds 0.15 and 0.4 both get three of four right; the smaller wins.
	got := BestThreshold([]ScoredPair{
		{Same: true, Distance: 0.1}, {Same: true, Distance: 0.3},
		{Distance: 0.2}, {Distance: 0.5}, {Same: true, Missed: true, Distance: math.NaN()},
	})
	if !near(got, 0.15) {
		t.Fatalf("threshold %v, want 0.15", got)
	}
}

// TestLFWProtocol checks the fold protocol on three folds worked by hand:
// each fold's threshold comes from the other two, and a pair with a
// detector miss is left out (or counted as "different").
func TestLFWProtocol(t *testing.T) {
	pairs := []ScoredPair{
		{Fold: 0, Same: true, Distance: 0.2}, {Fold: 0, Distance: 0.6},
		{Fold: 1, Same: true, Distance: 0.3}, {Fold: 1, Distance: 0.7},
		{Fold: 2, Same: true, Distance: 0.5}, {Fold: 2, Distance: 0.4},
		{Fold: 2, Same: true, Missed: true, Distance: math.NaN()},
		{Fold: 2, Missed: true, Distance: math.NaN()},
	}
	r, err := LFWProtocol(pairs, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Fold 0 trains on 0.3S 0.4D 0.5S 0.7D: best 0.35 (3 of 4, first).
	// Fold 1 trains on 0.2S 0.4D 0.5S 0.6D: best 0.3.
	// Fold 2 trains on 0.2S 0.3S 0.6D 0.7D: best 0.45, which gets both of
	// fold 2's scored pairs wrong.
	wantT := []float64{0.35, 0.3, 0.45}
	wantAcc := []float64{1, 1, 0}
	for k := range 3 {
		if !near(r.Thresholds[k], wantT[k]) || !near(r.Accuracy[k], wantAcc[k]) {
			t.Fatalf("fold %d: threshold %v accuracy %v, want %v %v", k, r.Thresholds[k], r.Accuracy[k], wantT[k], wantAcc[k])
		}
	}
	if !near(r.Mean, 2.0/3) || !near(r.Std, math.Sqrt(1.0/3)) || !near(r.StdErr, math.Sqrt(1.0/3)/math.Sqrt(3)) {
		t.Fatalf("mean %v std %v se %v", r.Mean, r.Std, r.StdErr)
	}
	// Counting misses as "different": fold 2 gets the missed
	// different-person pair right, 1 of 4.
	if !near(r.MeanMissAsDifferent, (1+1+0.25)/3) || r.MissedPairs != 2 || r.Pairs != 8 {
		t.Fatalf("miss-as-different %v, missed %d of %d", r.MeanMissAsDifferent, r.MissedPairs, r.Pairs)
	}
	if _, err := LFWProtocol(pairs, 2); err == nil {
		t.Fatal("a pair outside the folds was accepted")
	}
}
