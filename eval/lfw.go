package eval

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"concierge/face"
)

// LFWPair is one line of LFW's pairs.txt: two images and whether they show
// the same person.
type LFWPair struct {
	Fold int  `json:"fold"`
	Same bool `json:"same"`
	// A and B are paths relative to images_deepfunneled/.
	A, B string
}

func lfwImage(name, num string) (string, error) {
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return "", fmt.Errorf("image number %q", num)
	}
	return filepath.Join(name, fmt.Sprintf("%s_%04d.jpg", name, n)), nil
}

// ReadLFWPairs parses pairs.txt (View 2): a header "FOLDS N", then for
// each fold N same-person lines "NAME N1 N2" followed by N different-person
// lines "NAME1 N1 NAME2 N2".
func ReadLFWPairs(r io.Reader) (pairs []LFWPair, folds int, err error) {
	sc := bufio.NewScanner(r)
	line := 0
	next := func() ([]string, bool) {
		for sc.Scan() {
			line++
			if f := strings.Fields(sc.Text()); len(f) > 0 {
				return f, true
			}
		}
		return nil, false
	}
	head, ok := next()
	if !ok {
		return nil, 0, fmt.Errorf("pairs: empty file")
	}
	if len(head) != 2 {
		return nil, 0, fmt.Errorf("pairs: line %d: want \"FOLDS PAIRS\"", line)
	}
	folds, err1 := strconv.Atoi(head[0])
	n, err2 := strconv.Atoi(head[1])
	if err1 != nil || err2 != nil || folds < 2 || n < 1 {
		return nil, 0, fmt.Errorf("pairs: line %d: want \"FOLDS PAIRS\" with at least 2 folds", line)
	}
	for fold := range folds {
		for k := range 2 * n {
			f, ok := next()
			if !ok {
				return nil, 0, fmt.Errorf("pairs: ends in fold %d after %d of %d pairs", fold+1, k, 2*n)
			}
			p := LFWPair{Fold: fold, Same: k < n}
			switch {
			case p.Same && len(f) == 3:
				p.A, err1 = lfwImage(f[0], f[1])
				p.B, err2 = lfwImage(f[0], f[2])
			case !p.Same && len(f) == 4:
				p.A, err1 = lfwImage(f[0], f[1])
				p.B, err2 = lfwImage(f[2], f[3])
			default:
				return nil, 0, fmt.Errorf("pairs: line %d: %d fields for a %s pair", line, len(f), map[bool]string{true: "same-person", false: "different-person"}[p.Same])
			}
			if err1 != nil || err2 != nil {
				return nil, 0, fmt.Errorf("pairs: line %d: %w", line, cmpErr(err1, err2))
			}
			pairs = append(pairs, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("pairs: %w", err)
	}
	return pairs, folds, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// ScoredPair is an LFW pair with its distance; Missed is true when the
// detector found no face in either image, and Distance is then meaningless.
type ScoredPair struct {
	Fold     int     `json:"fold"`
	Same     bool    `json:"same"`
	Distance float64 `json:"distance"`
	Missed   bool    `json:"missed"`
}

// EmbedLFW embeds each image of pairs once, from dir/images_deepfunneled,
// and scores the pairs. It returns how many distinct images there were and
// those without a usable face.
func (e *Embedder) EmbedLFW(ctx context.Context, dir string, pairs []LFWPair) (scored []ScoredPair, images int, misses []Miss, err error) {
	var uniq []string
	index := map[string]int{}
	for _, p := range pairs {
		for _, im := range []string{p.A, p.B} {
			if _, ok := index[im]; !ok {
				index[im] = len(uniq)
				uniq = append(uniq, im)
			}
		}
	}
	paths := make([]string, len(uniq))
	for i, u := range uniq {
		paths[i] = filepath.Join(dir, "images_deepfunneled", u)
	}
	res, err := e.embedFiles(ctx, paths)
	if err != nil {
		return nil, 0, nil, err
	}
	for i, r := range res {
		if r.miss != "" {
			misses = append(misses, Miss{Image: uniq[i], Reason: r.miss})
		}
	}
	scored = make([]ScoredPair, len(pairs))
	for i, p := range pairs {
		a, b := res[index[p.A]], res[index[p.B]]
		scored[i] = ScoredPair{Fold: p.Fold, Same: p.Same}
		if a.miss != "" || b.miss != "" {
			scored[i].Missed = true
			continue
		}
		scored[i].Distance = math.Sqrt(float64(face.SquaredDistance(&a.emb, &b.emb)))
	}
	return scored, len(uniq), misses, nil
}

// LFWResult is the outcome of the View 2 protocol.
type LFWResult struct {
	Folds int `json:"folds"`
	// Fold-by-fold threshold (chosen on the other folds) and test accuracy.
	Thresholds []float64 `json:"thresholds"`
	Accuracy   []float64 `json:"accuracy"`
	// Mean and Std (sample standard deviation over folds) of Accuracy, and
	// the standard error Std/√folds that LFW results are quoted with.
	Mean   float64 `json:"mean"`
	Std    float64 `json:"std"`
	StdErr float64 `json:"std_err"`
	// MeanMissAsDifferent is the mean accuracy when each pair with a
	// detector miss is counted as a "different" decision instead of being
	// left out: what a deployed system that cannot see a face would do.
	MeanMissAsDifferent float64 `json:"mean_miss_as_different"`
	StdMissAsDifferent  float64 `json:"std_miss_as_different"`
	Pairs               int     `json:"pairs"`
	MissedPairs         int     `json:"missed_pairs"`
}

// LFWProtocol runs the standard 10-fold protocol (any number of folds ≥ 2):
// for each fold the threshold is the one that maximises accuracy on the
// other folds, and the fold's accuracy is measured with it. Pairs with a
// detector miss take no part in choosing thresholds.
func LFWProtocol(pairs []ScoredPair, folds int) (LFWResult, error) {
	r := LFWResult{Folds: folds, Pairs: len(pairs)}
	for _, p := range pairs {
		if p.Fold < 0 || p.Fold >= folds {
			return r, fmt.Errorf("lfw: pair in fold %d of %d", p.Fold, folds)
		}
		if p.Missed {
			r.MissedPairs++
		}
	}
	var missAcc []float64
	for k := range folds {
		var train, test []ScoredPair
		for _, p := range pairs {
			if p.Fold == k {
				test = append(test, p)
			} else if !p.Missed {
				train = append(train, p)
			}
		}
		if len(train) == 0 || len(test) == 0 {
			return r, fmt.Errorf("lfw: fold %d has no test pairs or no scored training pairs", k+1)
		}
		t := BestThreshold(train)
		var right, scored, rightMiss int
		for _, p := range test {
			if p.Missed {
				if !p.Same {
					rightMiss++
				}
				continue
			}
			scored++
			if (p.Distance <= t) == p.Same {
				right++
			}
		}
		r.Thresholds = append(r.Thresholds, t)
		if scored == 0 {
			return r, fmt.Errorf("lfw: every pair of fold %d has a detector miss", k+1)
		}
		r.Accuracy = append(r.Accuracy, float64(right)/float64(scored))
		missAcc = append(missAcc, float64(right+rightMiss)/float64(len(test)))
	}
	r.Mean, r.Std = meanStd(r.Accuracy)
	r.StdErr = r.Std / math.Sqrt(float64(folds))
	r.MeanMissAsDifferent, r.StdMissAsDifferent = meanStd(missAcc)
	return r, nil
}

// BestThreshold returns the threshold that classifies the most pairs
// correctly (same person when distance ≤ threshold). Candidates are the
// midpoints between consecutive distinct distances and points just outside
// the range; among equally good ones the smallest wins, because a false
// accept costs more than a false reject in this product.
func BestThreshold(pairs []ScoredPair) float64 {
	ds := make([]float64, 0, len(pairs))
	for _, p := range pairs {
		if !p.Missed {
			ds = append(ds, p.Distance)
		}
	}
	slices.Sort(ds)
	ds = slices.Compact(ds)
	if len(ds) == 0 {
		return math.NaN()
	}
	cands := []float64{ds[0] - 1e-6}
	for i := 1; i < len(ds); i++ {
		cands = append(cands, (ds[i-1]+ds[i])/2)
	}
	cands = append(cands, ds[len(ds)-1]+1e-6)
	// Sweep: sorted pairs, count correct decisions as the threshold rises.
	sorted := slices.Clone(pairs)
	sorted = slices.DeleteFunc(sorted, func(p ScoredPair) bool { return p.Missed })
	slices.SortFunc(sorted, func(a, b ScoredPair) int { return cmpFloat(a.Distance, b.Distance) })
	correct := 0
	for _, p := range sorted {
		if !p.Same {
			correct++ // below every distance, everything is "different"
		}
	}
	best, bestT, j := -1, 0.0, 0
	for _, t := range cands {
		for j < len(sorted) && sorted[j].Distance <= t {
			if sorted[j].Same {
				correct++
			} else {
				correct--
			}
			j++
		}
		if correct > best {
			best, bestT = correct, t
		}
	}
	return bestT
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// meanStd returns the mean and the sample standard deviation (n−1).
func meanStd(xs []float64) (mean, std float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1))
}
