package eval

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"concierge/enroll"
)

// minTailEvents is the number of impostor comparisons below a threshold
// under which the measured rate is replaced by the fitted tail: fewer
// events say little about the rate.
const minTailEvents = 10

// Tail is the per-comparison impostor acceptance p(t): the probability that
// a person who is not customer C comes within distance t of C. It is
// measured where at least minTailEvents comparisons fall below t and
// extrapolated further down by a straight line on the normal-deviate
// (probit) scale fitted to the lower tail, up to where 5 % of the
// comparisons fall. A false-alert target of 1 in 10,000 visits at 10,000
// customers needs p near 1e-8, far below what any calibration set can
// measure, so the extrapolation is unavoidable; reports flag it.
type Tail struct {
	Comparisons int `json:"comparisons"`
	// Alpha and Beta define the fit Φ⁻¹(p(t)) ≈ Alpha + Beta·t, fitted
	// between FitFrom and FitTo.
	Alpha   float64 `json:"alpha"`
	Beta    float64 `json:"beta"`
	FitFrom float64 `json:"fit_from"`
	FitTo   float64 `json:"fit_to"`
	// MeasuredFrom is the smallest threshold whose rate is measured, not
	// extrapolated.
	MeasuredFrom float64 `json:"measured_from"`
	scores       []float64
}

// ErrTooFew says a set is too small to calibrate on: the tail fit needs
// at least 800 impostor comparisons.
var ErrTooFew = errors.New("too few impostor comparisons to fit the tail")

// ErrUnreachable says that even the smallest threshold misses the target:
// impostor comparisons at distance ~0, which are the same photo under two
// labels (see Set.Dedupe).
var ErrUnreachable = errors.New("no threshold meets the target: impostor comparisons start at distance 0 (duplicate photos under two labels?)")

// FitTail fits the tail of the sorted impostor distances.
func FitTail(sorted []float64) (Tail, error) {
	m := len(sorted)
	t := Tail{Comparisons: m, scores: sorted}
	hi := int(0.05 * float64(m))
	if hi < 4*minTailEvents {
		return t, fmt.Errorf("tail fit: %w (%d, want at least %d)", ErrTooFew, m, 80*minTailEvents)
	}
	// Ranks spaced evenly on a log scale weight every decade of the tail
	// alike, instead of letting the dense upper part dominate.
	var xs, zs []float64
	const points = 40
	prev := 0
	for i := range points {
		j := int(math.Round(float64(minTailEvents) * math.Pow(float64(hi)/minTailEvents, float64(i)/(points-1))))
		if j == prev {
			continue
		}
		prev = j
		xs = append(xs, sorted[j-1])
		zs = append(zs, probit(float64(j)/float64(m)))
	}
	var mx, mz float64
	for i := range xs {
		mx += xs[i]
		mz += zs[i]
	}
	mx /= float64(len(xs))
	mz /= float64(len(xs))
	var sxx, sxz float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxz += (xs[i] - mx) * (zs[i] - mz)
	}
	if sxx == 0 || sxz <= 0 {
		return t, errors.New("tail fit: the impostor tail has no slope to extrapolate")
	}
	t.Beta = sxz / sxx
	t.Alpha = mz - t.Beta*mx
	t.FitFrom, t.FitTo = xs[0], xs[len(xs)-1]
	t.MeasuredFrom = sorted[minTailEvents-1]
	return t, nil
}

// P returns p(th) and whether it is extrapolated.
func (t Tail) P(th float64) (p float64, extrapolated bool) {
	n := countAtMost(t.scores, th)
	if n >= minTailEvents {
		return float64(n) / float64(len(t.scores)), false
	}
	return enroll.Tail{Alpha: t.Alpha, Beta: t.Beta}.P(th), true
}

// Measured returns the measured rate at th, however few events it rests on.
func (t Tail) Measured(th float64) float64 {
	return ratio(countAtMost(t.scores, th), len(t.scores))
}

func probit(p float64) float64 { return -math.Sqrt2 * math.Erfcinv(2*p) }

// Target is the false-alert budget a rule is calibrated for.
type Target struct {
	// Rate is the acceptable false alerts per visit of a stranger.
	Rate float64 `json:"rate"`
	// Gallery is the number of enrolled customers the rate must hold at.
	Gallery int `json:"gallery"`
	// CreditFusion calibrates on simulated tracks of independent photos.
	// Off by default: the frames of one visit are nearly the same picture,
	// so a stranger who resembles a customer in one frame resembles them in
	// all, and fusion must not be counted on to reject them. The threshold
	// is then set on the larger of the single-probe and fused rates.
	CreditFusion bool `json:"credit_fusion"`
	// Margins are the runner-up margins tried. MarginCost is the loss of
	// fused genuine acceptance a margin may cost: the extrapolation cannot
	// credit a margin (it treats every customer on their own), so the
	// margin is insurance bought at a bounded price.
	Margins    []float64 `json:"margins"`
	MarginCost float64   `json:"margin_cost"`
}

// DefaultTarget is one false alert per 10,000 stranger visits at a
// 10,000-customer gallery.
var DefaultTarget = Target{
	Rate: 1e-4, Gallery: 10_000,
	Margins: []float64{0, 0.02, 0.04, 0.06, 0.08, 0.10}, MarginCost: 0.01,
}

// ReportGalleries are the gallery sizes expected rates are reported for.
var ReportGalleries = []int{100, 1_000, 10_000}

// Expected is the extrapolated false-alert rate per stranger visit.
type Expected struct {
	Customers int `json:"customers"`
	// Single is for a decision on one probe, Fused for the fused track
	// simulated with independent photos.
	Single float64 `json:"single"`
	Fused  float64 `json:"fused"`
}

// OperatingPoint is the best rule for one gallery size or vote count.
type OperatingPoint struct {
	Customers int         `json:"customers"`
	Rule      enroll.Rule `json:"rule"`
	Votes     int         `json:"votes"`
	// Accept is the fused genuine acceptance measured at the rule.
	Accept float64 `json:"accept"`
	// Extrapolated is true when the threshold lies below the measured
	// range of the impostor tail.
	Extrapolated bool `json:"extrapolated"`
}

// Recommendation is the calibrated rule and the evidence for it.
type Recommendation struct {
	Target       Target      `json:"target"`
	Rule         enroll.Rule `json:"rule"`
	Votes        int         `json:"votes"`
	Track        int         `json:"track"`
	Extrapolated bool        `json:"extrapolated"`
	// PerComparison is p(t) for one probe and PerComparisonFused the fused
	// equivalent, both against one customer.
	PerComparison      float64          `json:"per_comparison"`
	PerComparisonFused float64          `json:"per_comparison_fused"`
	Expected           []Expected       `json:"expected"`
	Measured           OpenSetResult    `json:"measured"`
	ByVotes            []OperatingPoint `json:"by_votes"`
	ByGallery          []OperatingPoint `json:"by_gallery"`
	Tail               Tail             `json:"tail"`
	FusedTail          Tail             `json:"fused_tail"`
	// TrackTail is the tail of tracks decided on their fused embeddings
	// alone: no vote count or face slack accepts a stranger's track more
	// often, so the daemon's calibration holds whatever checkin.votes and
	// match.face_slack say (the engines' calibration files, enroll.Calibration).
	TrackTail Tail       `json:"track_tail"`
	Sweep     []SweepRow `json:"sweep"`
	// Warning is set when the rule that meets the target recognises fewer
	// than half of the enrolled customers' visits: the engine cannot serve
	// the target, and the rule only keeps it from alerting.
	Warning string `json:"warning,omitempty"`
}

// SweepRow measures one threshold at a fixed margin and vote count.
type SweepRow struct {
	Threshold     float64 `json:"threshold"`
	PerComparison float64 `json:"per_comparison"`
	Extrapolated  bool    `json:"extrapolated"`
	// VisitSingle and VisitFused are the extrapolated per-visit rates at
	// the target gallery size.
	VisitSingle float64       `json:"visit_single"`
	VisitFused  float64       `json:"visit_fused"`
	Measured    OpenSetResult `json:"measured"`
}

// Calibrator turns Trials into a recommendation.
type Calibrator struct {
	trials *Trials
	slack  float64 // the rules' FaceSlack
	tail   Tail
	fused  []Tail // by votes−1, at slack
	track  Tail   // tracks decided on their fused embeddings alone
}

// NewCalibrator fits the single-probe tail, one fused tail per vote count
// for rules with the face slack given, and the tail of tracks decided on
// their fused embeddings alone.
func NewCalibrator(tr *Trials, slack float64) (*Calibrator, error) {
	c := &Calibrator{trials: tr, slack: slack}
	var err error
	if c.tail, err = FitTail(tr.ImpostorScores()); err != nil {
		return nil, err
	}
	for v := 1; v <= tr.Config.Track; v++ {
		ft, err := FitTail(tr.FusedImpostorScores(v, slack))
		if err != nil {
			return nil, fmt.Errorf("fused, %d votes: %w", v, err)
		}
		c.fused = append(c.fused, ft)
	}
	if c.track, err = FitTail(tr.FusedImpostorScores(1, math.Inf(1))); err != nil {
		return nil, fmt.Errorf("fused alone: %w", err)
	}
	return c, nil
}

// perComparison is the rate the threshold is set on.
func (c *Calibrator) perComparison(t float64, votes int, credit bool) (float64, bool) {
	q, qx := c.fused[votes-1].P(t)
	if credit {
		return q, qx
	}
	p, px := c.tail.P(t)
	if p >= q {
		return p, px
	}
	return q, qx
}

// thresholdStep is the resolution of recommended thresholds: finer than
// any engine's noise, coarse enough to read.
const thresholdStep = 0.001

// threshold returns the largest threshold on the grid whose expected rate
// per stranger visit at n customers stays within rate.
func (c *Calibrator) threshold(rate float64, n, votes int, credit bool) (float64, bool) {
	limit := c.tail.scores[len(c.tail.scores)-1]
	best, ext := math.NaN(), false
	for i := 1; ; i++ {
		t := float64(i) * thresholdStep
		if t > limit {
			break
		}
		p, x := c.perComparison(t, votes, credit)
		if enroll.PerVisit(p, n) > rate {
			break
		}
		best, ext = t, x
	}
	return best, ext
}

// operatingPoint picks the margin for a threshold and vote count: the
// largest margin whose cost in fused genuine acceptance stays within the
// target's MarginCost.
func (c *Calibrator) operatingPoint(tg Target, t float64, votes int) (enroll.Rule, OpenSetResult) {
	base := c.trials.Evaluate(enroll.Rule{Threshold: t, FaceSlack: c.slack}, votes)
	rule, res := base.Rule, base
	for _, m := range tg.Margins {
		r := c.trials.Evaluate(enroll.Rule{Threshold: t, Margin: m, FaceSlack: c.slack}, votes)
		if base.Fused.Accept.Rate-r.Fused.Accept.Rate <= tg.MarginCost+1e-12 && m >= rule.Margin {
			rule, res = r.Rule, r
		}
	}
	return rule, res
}

// Recommend calibrates the rule for the target: for each vote count the
// largest threshold that meets the target, the margin by its cost, and
// then the vote count with the best fused genuine acceptance (the larger
// one on a tie, as more agreeing frames are the safer alert).
//
// The sweep rows measure each of the sweep thresholds at sweepRule's
// margin and sweepVotes (the configured rule's, so that a reader sees what
// changing only the threshold does); sweepVotes 0 means the recommended
// margin and votes.
func (c *Calibrator) Recommend(tg Target, sweep []float64, sweepMargin float64, sweepVotes int) (Recommendation, error) {
	if tg.Rate <= 0 || tg.Rate >= 1 || tg.Gallery < 1 {
		return Recommendation{}, fmt.Errorf("calibrate: target %v per visit at %d customers is not a rate and a gallery size", tg.Rate, tg.Gallery)
	}
	if len(tg.Margins) == 0 {
		tg.Margins = []float64{0}
	}
	track := c.trials.Config.Track
	rec := Recommendation{Target: tg, Track: track, Tail: c.tail}
	bestAcc := -1.0
	for v := 1; v <= track; v++ {
		t, ext := c.threshold(tg.Rate, tg.Gallery, v, tg.CreditFusion)
		if math.IsNaN(t) {
			continue
		}
		rule, res := c.operatingPoint(tg, t, v)
		op := OperatingPoint{Customers: tg.Gallery, Rule: rule, Votes: v, Accept: res.Fused.Accept.Rate, Extrapolated: ext}
		rec.ByVotes = append(rec.ByVotes, op)
		if op.Accept >= bestAcc {
			bestAcc = op.Accept
			rec.Rule, rec.Votes, rec.Extrapolated, rec.Measured = rule, v, ext, res
		}
	}
	if rec.Votes == 0 {
		return rec, ErrUnreachable
	}
	rec.FusedTail, rec.TrackTail = c.fused[rec.Votes-1], c.track
	if rec.Measured.Fused.Accept.Rate < 0.5 {
		rec.Warning = fmt.Sprintf("at the rule that meets the target only %.1f%% of enrolled customers' visits are recognised: "+
			"this engine cannot serve %.2g false alerts per visit at %d customers", 100*rec.Measured.Fused.Accept.Rate, tg.Rate, tg.Gallery)
	}
	rec.PerComparison, _ = c.tail.P(rec.Rule.Threshold)
	rec.PerComparisonFused, _ = c.fused[rec.Votes-1].P(rec.Rule.Threshold)
	galleries := slices.Clone(ReportGalleries)
	if !slices.Contains(galleries, tg.Gallery) {
		galleries = append(galleries, tg.Gallery)
		slices.Sort(galleries)
	}
	for _, n := range galleries {
		rec.Expected = append(rec.Expected, Expected{Customers: n,
			Single: enroll.PerVisit(rec.PerComparison, n), Fused: enroll.PerVisit(rec.PerComparisonFused, n)})
		t, ext := c.threshold(tg.Rate, n, rec.Votes, tg.CreditFusion)
		if math.IsNaN(t) {
			continue
		}
		rule, res := c.operatingPoint(tg, t, rec.Votes)
		rec.ByGallery = append(rec.ByGallery, OperatingPoint{Customers: n, Rule: rule, Votes: rec.Votes,
			Accept: res.Fused.Accept.Rate, Extrapolated: ext})
	}
	if sweepVotes < 1 || sweepVotes > track {
		sweepMargin, sweepVotes = rec.Rule.Margin, rec.Votes
	}
	for _, t := range sweep {
		rec.Sweep = append(rec.Sweep, c.SweepRow(enroll.Rule{Threshold: t, Margin: sweepMargin, FaceSlack: c.slack}, sweepVotes, tg.Gallery))
	}
	return rec, nil
}

// SweepRow measures one rule and extrapolates it to n customers.
func (c *Calibrator) SweepRow(rule enroll.Rule, votes, n int) SweepRow {
	p, ext := c.tail.P(rule.Threshold)
	q, _ := c.fused[votes-1].P(rule.Threshold)
	return SweepRow{Threshold: rule.Threshold, PerComparison: p, Extrapolated: ext,
		VisitSingle: enroll.PerVisit(p, n), VisitFused: enroll.PerVisit(q, n),
		Measured: c.trials.Evaluate(rule, votes)}
}

// CeilingRate is the share of stranger faces a calibration's ceiling may
// accept on the simulated (small) galleries: 0.1 %, as the shipped
// engines' ceilings were chosen (docs/engines.md).
const CeilingRate = 1e-3

// DefaultMargin and DefaultFaceSlack complete the rule a calibration
// writes for a model that has none yet: the values measured for the
// MobileFaceNets (docs/accuracy.md). match.margin and match.face_slack
// override them.
const (
	DefaultMargin    = 0.08
	DefaultFaceSlack = 0.20
)

// ceilingStep is the grid the ceiling is searched on.
const ceilingStep = 0.01

// Calibrate turns the report of a labelled folder into the calibration
// file the daemon loads for the model whose id and file digest are given:
// the fitted impostor tails of single faces and of fused tracks, and the
// ceiling, the largest threshold at which at most CeilingRate of the
// simulated stranger faces are taken for a customer, margin not credited.
func Calibrate(rep *Report, model, sha256 string, margin, faceSlack float64) (enroll.Calibration, error) {
	c := enroll.Calibration{Model: model, SHA256: sha256, Margin: margin, FaceSlack: faceSlack}
	switch {
	case rep == nil || rep.OpenSet == nil:
		return c, errors.New("calibrate: the report has no open-set simulation (calibrate on --folder)")
	case rep.Model != model:
		return c, fmt.Errorf("calibrate: the report measured %s, not %s", rep.Model, model)
	case rep.Recommendation == nil:
		return c, fmt.Errorf("calibrate: %s", rep.CalibrationError)
	}
	rec := rep.Recommendation
	c.Tail = enroll.Tail{Alpha: rec.Tail.Alpha, Beta: rec.Tail.Beta}
	c.TrackTail = enroll.Tail{Alpha: rec.TrackTail.Alpha, Beta: rec.TrackTail.Beta}
	c.Comparisons, c.TrackComparisons = rec.Tail.Comparisons, rec.TrackTail.Comparisons
	strangers := 0
	for i := 1; float64(i)*ceilingStep <= 2; i++ {
		t := float64(i) * ceilingStep
		// The margin is not credited: in a gallery of many customers a
		// runner-up is always near, and crediting it would put the
		// ceiling (which also guards enrollment's duplicate check) out
		// of reach.
		res := rep.OpenSet.Evaluate(enroll.Rule{Threshold: t, FaceSlack: faceSlack}, 1)
		strangers = res.Single.StrangerAccept.Trials
		if res.Single.StrangerAccept.Rate > CeilingRate {
			break
		}
		c.Threshold = t
	}
	if c.Threshold == 0 {
		return c, fmt.Errorf("calibrate: even at %.2f more than %.1f%% of %d stranger faces are taken for customers", ceilingStep, 100*CeilingRate, strangers)
	}
	c.Threshold = math.Round(c.Threshold*100) / 100
	c.Source = fmt.Sprintf("%s: %d faces of %d people, %d splits, %d stranger faces, %s scoring",
		rep.Path, rep.Faces, rep.Identities, rep.OpenSet.Config.Seeds, strangers, rep.OpenSet.Config.Scoring)
	return c, c.Validate()
}

// WriteCalibration writes c to path whole or not at all: a daemon starting
// meanwhile never reads half a file.
func WriteCalibration(path string, c enroll.Calibration) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	head := fmt.Sprintf("# Calibration of %s for Concierge (enroll.Calibration, docs/engines.md),\n"+
		"# written by `concierge eval --folder DIR --calibrate OUT`. Name it in\n# vision.embedder.calibration.\n", c.Model)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".calibration-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(head + string(b)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
