// Package eval measures how well a face engine and the open-set decision
// rule separate enrolled customers from one another and from strangers, and
// recommends the rule's threshold, margin and vote count for a target rate
// of false alerts.
//
// It works on labelled embeddings: a descriptor file, a folder of labelled
// photos or LFW's View 2 pairs. Photos reach an engine only through
// enroll.Detector, so any engine can be measured and the package stays free
// of cgo. All sampling is seeded: the same input gives the same report.
//
// Distances are the Euclidean distances the gallery uses; a pair is
// accepted when its distance is at or below the threshold, as in
// enroll.Rule.
package eval

import (
	"math"
	"slices"
	"sort"
)

// Summary describes a distribution of distances. Percentiles interpolate
// linearly between order statistics (the common "type 7" definition), so
// they are exact functions of the data that tests can pin.
type Summary struct {
	N      int     `json:"n"`
	Mean   float64 `json:"mean"`
	Min    float64 `json:"min"`
	P01    float64 `json:"p01"`
	P05    float64 `json:"p05"`
	P25    float64 `json:"p25"`
	Median float64 `json:"median"`
	P75    float64 `json:"p75"`
	P95    float64 `json:"p95"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
}

// Summarize describes xs, which must be sorted ascending.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return Summary{
		N: len(xs), Mean: sum / float64(len(xs)), Min: xs[0], Max: xs[len(xs)-1],
		P01: Percentile(xs, 0.01), P05: Percentile(xs, 0.05), P25: Percentile(xs, 0.25),
		Median: Percentile(xs, 0.5), P75: Percentile(xs, 0.75), P95: Percentile(xs, 0.95),
		P99: Percentile(xs, 0.99),
	}
}

// Percentile returns the q-quantile (0 ≤ q ≤ 1) of the sorted xs.
func Percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	h := q * float64(len(xs)-1)
	lo := int(math.Floor(h))
	if lo >= len(xs)-1 {
		return xs[len(xs)-1]
	}
	return xs[lo] + (h-float64(lo))*(xs[lo+1]-xs[lo])
}

// countAtMost is the number of values ≤ t in the sorted xs.
func countAtMost(xs []float64, t float64) int {
	return sort.Search(len(xs), func(i int) bool { return xs[i] > t })
}

// RateRow is the error rates of one threshold.
type RateRow struct {
	Threshold float64 `json:"threshold"`
	// FAR is the fraction of impostor pairs accepted (distance ≤ threshold),
	// FRR the fraction of genuine pairs rejected.
	FAR float64 `json:"far"`
	FRR float64 `json:"frr"`
	// ImpostorsAccepted and GenuineRejected are the counts behind the rates,
	// so that a reader sees how many events a small rate rests on.
	ImpostorsAccepted int `json:"impostors_accepted"`
	GenuineRejected   int `json:"genuine_rejected"`
}

// Rates returns FAR and FRR at threshold t; both lists must be sorted.
func Rates(genuine, impostor []float64, t float64) RateRow {
	ia := countAtMost(impostor, t)
	gr := len(genuine) - countAtMost(genuine, t)
	return RateRow{Threshold: t, FAR: ratio(ia, len(impostor)), FRR: ratio(gr, len(genuine)),
		ImpostorsAccepted: ia, GenuineRejected: gr}
}

// ratio is n/d, and 0 for no trials: reports show the counts beside it,
// and JSON has no NaN.
func ratio(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// EER returns the equal error rate and the threshold where it occurs. FAR
// rises and FRR falls in steps as the threshold passes each observed
// distance; the EER is where the straight lines joining consecutive steps
// cross, which is exact when a step lands on equality. Both lists must be
// sorted and non-empty.
func EER(genuine, impostor []float64) (eer, threshold float64) {
	if len(genuine) == 0 || len(impostor) == 0 {
		return math.NaN(), math.NaN()
	}
	prevT, prevFAR, prevFRR := math.Inf(-1), 0.0, 1.0
	i, j := 0, 0
	for i < len(genuine) || j < len(impostor) {
		t := math.Inf(1)
		if i < len(genuine) {
			t = genuine[i]
		}
		if j < len(impostor) && impostor[j] < t {
			t = impostor[j]
		}
		for i < len(genuine) && genuine[i] <= t {
			i++
		}
		for j < len(impostor) && impostor[j] <= t {
			j++
		}
		far := float64(j) / float64(len(impostor))
		frr := float64(len(genuine)-i) / float64(len(genuine))
		if far >= frr {
			a, b := prevFRR-prevFAR, far-frr
			if b == 0 {
				return far, t
			}
			s := a / (a + b)
			thr := t
			if !math.IsInf(prevT, -1) {
				thr = prevT + s*(t-prevT)
			}
			return prevFAR + s*(far-prevFAR), thr
		}
		prevT, prevFAR, prevFRR = t, far, frr
	}
	return prevFAR, prevT // unreachable: at the largest value FAR is 1 and FRR 0
}

// TARAt is the best genuine acceptance at a bounded false-accept rate.
type TARAt struct {
	FAR float64 `json:"far"`
	TAR float64 `json:"tar"`
	// Threshold is the largest one whose FAR does not exceed FAR.
	Threshold float64 `json:"threshold"`
	// ImpostorsAllowed is how many impostor pairs FAR allows among those
	// measured; 0 means the figure is TAR at FAR 0 and says little about
	// the requested rate.
	ImpostorsAllowed int `json:"impostors_allowed"`
}

// TARAtFAR returns the genuine acceptance at the largest threshold whose
// false-accept rate is at most far. Both lists must be sorted.
func TARAtFAR(genuine, impostor []float64, far float64) TARAt {
	k := int(math.Floor(far*float64(len(impostor)) + 1e-9))
	if k >= len(impostor) {
		// Every impostor may be accepted: any threshold above all distances.
		t := impostor[len(impostor)-1]
		if len(genuine) > 0 {
			t = math.Max(t, genuine[len(genuine)-1])
		}
		return TARAt{FAR: far, TAR: ratio(len(genuine), len(genuine)), Threshold: t, ImpostorsAllowed: k}
	}
	// Accept strictly below the (k+1)-th smallest impostor distance.
	t := math.Nextafter(impostor[k], math.Inf(-1))
	return TARAt{FAR: far, TAR: ratio(countAtMost(genuine, t), len(genuine)), Threshold: t, ImpostorsAllowed: k}
}

// Verification is the pairwise (1:1) view of a set of distances.
type Verification struct {
	Genuine      Summary   `json:"genuine"`
	Impostor     Summary   `json:"impostor"`
	Table        []RateRow `json:"table"`
	EER          float64   `json:"eer"`
	EERThreshold float64   `json:"eer_threshold"`
	TARAt        []TARAt   `json:"tar_at_far"`
}

// DefaultFARs are the false-accept rates at which TAR is reported.
var DefaultFARs = []float64{0.01, 0.001, 0.0001}

// Verify sorts copies of the distances and measures them at thresholds
// (nil: a readable grid chosen from the data) and at DefaultFARs.
func Verify(genuine, impostor []float64, thresholds []float64) Verification {
	g, im := slices.Clone(genuine), slices.Clone(impostor)
	slices.Sort(g)
	slices.Sort(im)
	v := Verification{Genuine: Summarize(g), Impostor: Summarize(im)}
	if len(g) == 0 || len(im) == 0 {
		return v
	}
	if thresholds == nil {
		thresholds = ThresholdGrid(g, im)
	}
	for _, t := range thresholds {
		v.Table = append(v.Table, Rates(g, im, t))
	}
	v.EER, v.EERThreshold = EER(g, im)
	for _, f := range DefaultFARs {
		v.TARAt = append(v.TARAt, TARAtFAR(g, im, f))
	}
	return v
}

// ThresholdGrid returns round thresholds spanning the interesting range of
// the sorted distances: from where almost no impostor is accepted to the
// impostor median. Engines differ in scale, so the grid follows the data.
func ThresholdGrid(genuine, impostor []float64) []float64 {
	lo := math.Min(Percentile(impostor, 0.0001), Percentile(genuine, 0.05))
	hi := Percentile(impostor, 0.5)
	step := 0.02
	if hi-lo > 0.6 {
		step = 0.05
	}
	start := math.Floor(lo/step) * step
	var out []float64
	for t := start; t <= hi+step/2 && len(out) < 40; t += step {
		out = append(out, math.Round(t*1000)/1000)
	}
	return out
}
