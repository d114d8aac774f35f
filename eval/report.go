package eval

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"concierge/enroll"
)

// Options choose what Analyze measures.
type Options struct {
	OpenSet OpenSetConfig
	Target  Target
	// Thresholds are the rows of the FAR/FRR table and of the sweep; nil
	// chooses them from the data.
	Thresholds []float64
	// Rule and Votes, when Rule.Threshold > 0, are the configured decision
	// rule, reported as measured next to the recommendation.
	Rule  enroll.Rule
	Votes int
	// Calibrated, when its Ceiling is set, is the daemon's gallery-size
	// policy: the configured rule is measured at its threshold for the
	// simulated gallery's size (capped by Rule.Threshold), as the daemon
	// would apply it.
	Calibrated enroll.OpenSet
	// VerifyTarget, with Calibrated, also measures the verify band
	// (enroll.OpenSet.Band) at BandSizes customers; 0 skips it.
	VerifyTarget float64
	BandSizes    []int
	// CompareScorings also measures BestOf and MeanOf2 against Centroid.
	CompareScorings bool
	// Duplicate is the distance within which Dedupe takes two faces for
	// one photo; negative keeps every face.
	Duplicate float64
}

// DefaultOptions measure at the defaults of the product.
func DefaultOptions() Options {
	return Options{OpenSet: DefaultOpenSet, Target: DefaultTarget, Duplicate: DefaultDuplicate}
}

// Report is everything `concierge eval` prints; its JSON form is stable
// for scripts.
type Report struct {
	Source     string `json:"source"` // descriptors, folder or lfw
	Path       string `json:"path"`
	Model      string `json:"model"`
	Images     int    `json:"images,omitempty"`
	Faces      int    `json:"faces"`
	Identities int    `json:"identities,omitempty"`
	Misses     []Miss `json:"misses,omitempty"`
	Dropped    []Miss `json:"dropped,omitempty"`
	// Verification is pairwise: every pair of faces, or LFW's pairs.
	Verification Verification `json:"verification"`
	LFW          *LFWResult   `json:"lfw,omitempty"`
	// OpenSet describes the simulated populations; Configured is the
	// configured rule measured on them.
	OpenSet        *Trials         `json:"open_set,omitempty"`
	Configured     *OpenSetResult  `json:"configured,omitempty"`
	Recommendation *Recommendation `json:"recommendation,omitempty"`
	// CalibrationError says why there is no recommendation (a set too
	// small to fit the impostor tail).
	CalibrationError string `json:"calibration_error,omitempty"`
	// Band is the verify band at each of Options.BandSizes.
	Band         []BandResult    `json:"verify_band,omitempty"`
	VerifyTarget float64         `json:"verify_target,omitempty"`
	Scorings     []ScoringResult `json:"scorings,omitempty"`
}

// ScoringResult compares one way of scoring a customer's templates: the
// probe-to-customer verification figures and the rule calibrated for the
// same target.
type ScoringResult struct {
	Scoring        Scoring        `json:"scoring"`
	EER            float64        `json:"eer"`
	TARAt          []TARAt        `json:"tar_at_far"`
	Recommendation Recommendation `json:"recommendation"`
}

// Analyze measures a labelled set: pairwise verification, the open-set
// simulation and the calibration.
func Analyze(set *Set, opt Options) (*Report, error) {
	if opt.Duplicate >= 0 {
		clean := *set
		clean.Samples = slices.Clone(set.Samples)
		if err := clean.Dedupe(opt.Duplicate); err != nil {
			return nil, err
		}
		set = &clean
	}
	r := &Report{Model: set.Model, Images: set.Images, Faces: len(set.Samples),
		Identities: len(set.Labels()), Misses: set.Misses, Dropped: set.Dropped}
	g, im, err := set.Pairs()
	if err != nil {
		return nil, err
	}
	if len(g) == 0 || len(im) == 0 {
		return nil, fmt.Errorf("evaluate: %d faces of %d identities give no genuine or no impostor pair", r.Faces, r.Identities)
	}
	r.Verification = Verify(g, im, opt.Thresholds)
	sweep := opt.Thresholds
	if sweep == nil {
		for _, row := range r.Verification.Table {
			sweep = append(sweep, row.Threshold)
		}
	}
	modes := []Scoring{opt.OpenSet.Scoring}
	if opt.CompareScorings {
		modes = Scorings
	}
	for _, mode := range modes {
		cfg := opt.OpenSet
		cfg.Scoring = mode
		tr, err := Simulate(set, cfg)
		if err != nil {
			return nil, err
		}
		votes := 0
		if opt.Rule.Threshold > 0 {
			votes = max(1, min(opt.Votes, cfg.Track))
		}
		if mode == opt.OpenSet.Scoring {
			r.OpenSet = tr
			if votes > 0 {
				rule := opt.Rule
				if opt.Calibrated.Ceiling > 0 {
					rule.Threshold = min(rule.Threshold, opt.Calibrated.Threshold(int(math.Round(tr.Customers))))
				}
				res := tr.Evaluate(rule, votes)
				r.Configured = &res
				if opt.VerifyTarget > 0 && opt.Calibrated.Ceiling > 0 {
					r.Band = tr.BandReport(opt.Rule, votes, opt.Calibrated, opt.VerifyTarget, opt.BandSizes)
					r.VerifyTarget = opt.VerifyTarget
				}
			}
		}
		cal, err := NewCalibrator(tr, opt.Rule.FaceSlack)
		var rec Recommendation
		if err == nil {
			rec, err = cal.Recommend(opt.Target, sweep, opt.Rule.Margin, votes)
		}
		if (errors.Is(err, ErrTooFew) || errors.Is(err, ErrUnreachable)) && mode == opt.OpenSet.Scoring {
			// The measurements stand without a recommendation.
			r.CalibrationError = err.Error()
			break
		}
		if err != nil {
			return nil, fmt.Errorf("calibrate (%s): %w", mode, err)
		}
		if mode == opt.OpenSet.Scoring {
			r.Recommendation = &rec
		}
		if opt.CompareScorings {
			v := Verify(tr.GenuineScores(), tr.ImpostorScores(), []float64{})
			brief := rec
			brief.Sweep = nil // the primary recommendation carries the sweep
			r.Scorings = append(r.Scorings, ScoringResult{Scoring: mode, EER: v.EER, TARAt: v.TARAt, Recommendation: brief})
		}
	}
	return r, nil
}

// AnalyzeLFW reports the View 2 protocol and the pooled distances of the
// pairs; LFW has too few images per person for the open-set simulation.
func AnalyzeLFW(pairs []ScoredPair, folds, images int, misses []Miss, thresholds []float64) (*Report, error) {
	res, err := LFWProtocol(pairs, folds)
	if err != nil {
		return nil, err
	}
	var g, im []float64
	for _, p := range pairs {
		switch {
		case p.Missed:
		case p.Same:
			g = append(g, p.Distance)
		default:
			im = append(im, p.Distance)
		}
	}
	r := &Report{Source: "lfw", Images: images, Faces: images - len(misses), Misses: misses, LFW: &res}
	r.Verification = Verify(g, im, thresholds)
	return r, nil
}

// WriteText prints the report as readable tables.
func (r *Report) WriteText(w io.Writer) error {
	p := &printer{w: w}
	p.f("Source: %s %s (model %s)\n", r.Source, r.Path, r.Model)
	switch {
	case r.LFW != nil:
		p.f("Pairs: %d over %d images; detector misses: %d images, which take %d pairs out\n",
			r.LFW.Pairs, r.Images, len(r.Misses), r.LFW.MissedPairs)
	case r.Images > 0:
		p.f("Photos: %d, detector misses: %d, faces used: %d of %d identities\n",
			r.Images, len(r.Misses), r.Faces, r.Identities)
	default:
		p.f("Faces used: %d of %d identities\n", r.Faces, r.Identities)
	}
	if len(r.Dropped) > 0 {
		p.f("Dropped before that: %d faces repeating a photo (one face under two labels, or twice under one; listed in --json)\n", len(r.Dropped))
	}
	if r.LFW != nil {
		l := r.LFW
		p.f("\nLFW View 2, %d folds, threshold chosen on the other folds:\n", l.Folds)
		p.f("  accuracy %.2f%% ± %.2f%% (std over folds; standard error %.2f%%), pairs with a miss left out\n",
			100*l.Mean, 100*l.Std, 100*l.StdErr)
		p.f("  accuracy %.2f%% ± %.2f%% when a missed pair counts as \"different\"\n",
			100*l.MeanMissAsDifferent, 100*l.StdMissAsDifferent)
		ts := make([]string, len(l.Thresholds))
		for i, t := range l.Thresholds {
			ts[i] = fmt.Sprintf("%.3f", t)
		}
		p.f("  fold thresholds: %s\n", strings.Join(ts, " "))
	}
	v := r.Verification
	p.f("\nPairwise distances (genuine: same person; impostor: different people)\n")
	tw := p.tab()
	fmt.Fprintf(tw, "\tn\tmin\tp1\tp5\tp25\tmedian\tp75\tp95\tp99\tmax\n")
	for _, s := range []struct {
		name string
		s    Summary
	}{{"genuine", v.Genuine}, {"impostor", v.Impostor}} {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\n", s.name, s.s.N,
			s.s.Min, s.s.P01, s.s.P05, s.s.P25, s.s.Median, s.s.P75, s.s.P95, s.s.P99, s.s.Max)
	}
	p.flush(tw)
	p.f("\nEER %s at threshold %.3f\n", pct(v.EER), v.EERThreshold)
	for _, ta := range v.TARAt {
		p.f("TAR at FAR %s: %s (threshold %.3f, %d impostor pairs allowed)\n", pct(ta.FAR), pct(ta.TAR), ta.Threshold, ta.ImpostorsAllowed)
	}
	p.f("\n")
	tw = p.tab()
	fmt.Fprintf(tw, "threshold\tFAR\tFRR\timpostors accepted\tgenuine rejected\n")
	for _, row := range v.Table {
		fmt.Fprintf(tw, "%.3f\t%s\t%s\t%d\t%d\n", row.Threshold, pct(row.FAR), pct(row.FRR), row.ImpostorsAccepted, row.GenuineRejected)
	}
	p.flush(tw)

	if r.OpenSet != nil {
		o := r.OpenSet
		c := o.Config
		p.f("\nOpen set (%s scoring): %d seeds; per seed %.0f customers enrolled with %d photos, %.0f strangers held back;\n",
			c.Scoring, c.Seeds, o.Customers, c.Enroll, o.StrangerIDs)
		p.f("  %.0f genuine and %.0f stranger probes, %.0f tracks of %d probes.\n", o.GenuineProbes, o.StrangerProbes, o.Tracks, c.Track)
		p.f("  Rates below: events/trials pooled over the seeds, ± the standard deviation between seeds.\n")
		if r.Configured != nil {
			p.f("\nConfigured rule:\n")
			p.decisions(*r.Configured)
		}
		if len(r.Band) > 0 && p.err == nil {
			p.err = printBand(p.w, r.VerifyTarget, r.Band)
		}
	}
	if rec := r.Recommendation; rec != nil {
		p.recommendation(rec)
	}
	if r.CalibrationError != "" {
		p.f("\nNo recommendation: %s\n", r.CalibrationError)
	}
	if len(r.Scorings) > 0 {
		p.f("\nPer-customer scoring compared (probe vs enrolled customer; rule calibrated for the same target):\n")
		tw = p.tab()
		fmt.Fprintf(tw, "scoring\tEER\tTAR@1%%\tTAR@0.1%%\tTAR@0.01%%\tthreshold\tmargin\tvotes\tfused accept\tsingle accept\n")
		for _, s := range r.Scorings {
			m := s.Recommendation.Measured
			tars := make([]string, 3)
			for i := range tars {
				tars[i] = "-"
				if i < len(s.TARAt) {
					tars[i] = pct(s.TARAt[i].TAR)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.3f\t%.2f\t%d\t%s\t%s\n", s.Scoring, pct(s.EER), tars[0], tars[1], tars[2],
				m.Rule.Threshold, m.Rule.Margin, m.Votes, pct(m.Fused.Accept.Rate), pct(m.Single.Accept.Rate))
		}
		p.flush(tw)
	}
	return p.err
}

func (p *printer) recommendation(rec *Recommendation) {
	tg := rec.Target
	mode := "on the larger of the single-probe and fused rates (fusion not credited)"
	if tg.CreditFusion {
		mode = "on simulated fused tracks of independent photos (fusion credited)"
	}
	p.f("\nRecommendation for at most %s false alerts per stranger visit at %d customers, calibrated %s:\n",
		sci(tg.Rate), tg.Gallery, mode)
	p.f("  threshold %.3f, margin %.2f, face slack %.2f, votes %d of %d\n", rec.Rule.Threshold, rec.Rule.Margin, rec.Rule.FaceSlack, rec.Votes, rec.Track)
	ext := "measured"
	if rec.Extrapolated {
		tail, what := rec.Tail, "probe"
		if tg.CreditFusion {
			tail, what = rec.FusedTail, "fused track"
		}
		ext = fmt.Sprintf("EXTRAPOLATED: fewer than %d of %d %s-to-customer impostor comparisons fall below the threshold; probit fit of the tail between %.3f and %.3f",
			minTailEvents, tail.Comparisons, what, tail.FitFrom, tail.FitTo)
	}
	p.f("  per-comparison impostor rate p(t) = %s single, %s fused (%s)\n", sci(rec.PerComparison), sci(rec.PerComparisonFused), ext)
	tw := p.tab()
	fmt.Fprintf(tw, "  customers\tper-visit false alerts, single probe\tfused (independent photos)\n")
	for _, e := range rec.Expected {
		fmt.Fprintf(tw, "  %d\t%s\t%s\n", e.Customers, sci(e.Single), sci(e.Fused))
	}
	p.flush(tw)
	p.f("  impostor tails, probit(p(t)) = alpha + beta*t: single probes %.3f + %.3f*t; tracks decided on their fused embeddings alone %.3f + %.3f*t\n",
		rec.Tail.Alpha, rec.Tail.Beta, rec.TrackTail.Alpha, rec.TrackTail.Beta)
	p.f("  measured at the rule on the simulated galleries:\n")
	p.decisions(rec.Measured)
	if rec.Warning != "" {
		p.f("  WARNING: %s\n", rec.Warning)
	}
	p.f("\n  Rule meeting the target by gallery size (votes %d):\n", rec.Votes)
	tw = p.tab()
	fmt.Fprintf(tw, "  customers\tthreshold\tmargin\tfused accept\t\n")
	for _, op := range rec.ByGallery {
		fmt.Fprintf(tw, "  %d\t%.3f\t%.2f\t%s\t%s\n", op.Customers, op.Rule.Threshold, op.Rule.Margin, pct(op.Accept), extrapolated(op.Extrapolated))
	}
	p.flush(tw)
	p.f("\n  Rule meeting the target at %d customers by votes:\n", tg.Gallery)
	tw = p.tab()
	fmt.Fprintf(tw, "  votes\tthreshold\tmargin\tfused accept\t\n")
	for _, op := range rec.ByVotes {
		fmt.Fprintf(tw, "  %d\t%.3f\t%.2f\t%s\t%s\n", op.Votes, op.Rule.Threshold, op.Rule.Margin, pct(op.Accept), extrapolated(op.Extrapolated))
	}
	p.flush(tw)
	if len(rec.Sweep) > 0 {
		m := rec.Sweep[0].Measured
		p.f("\n  Threshold sweep at margin %.2f, votes %d (measured on the simulated galleries; per visit extrapolated to %d customers):\n",
			m.Rule.Margin, m.Votes, tg.Gallery)
		tw = p.tab()
		fmt.Fprintf(tw, "  threshold\tp(t)\tvisit single\tvisit fused\tsingle: accept\twrong\tstranger\tfused: accept\twrong\tstranger\n")
		for _, s := range rec.Sweep {
			m := s.Measured
			pt := sci(s.PerComparison)
			if s.Extrapolated {
				pt += "*"
			}
			fmt.Fprintf(tw, "  %.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Threshold, pt, sci(s.VisitSingle), sci(s.VisitFused),
				pct(m.Single.Accept.Rate), pct(m.Single.WrongAccept.Rate), pct(m.Single.StrangerAccept.Rate),
				pct(m.Fused.Accept.Rate), pct(m.Fused.WrongAccept.Rate), pct(m.Fused.StrangerAccept.Rate))
		}
		p.flush(tw)
		if slices.ContainsFunc(rec.Sweep, func(s SweepRow) bool { return s.Extrapolated }) {
			p.f("  (* extrapolated)\n")
		}
	}
}

func extrapolated(b bool) string {
	if b {
		return "extrapolated"
	}
	return ""
}

func (p *printer) decisions(m OpenSetResult) {
	p.f("  rule: threshold %.3f, margin %.2f, face slack %.2f; fused: %d of %d votes\n", m.Rule.Threshold, m.Rule.Margin, m.Rule.FaceSlack, m.Votes, m.Track)
	tw := p.tab()
	fmt.Fprintf(tw, "  \tenrolled accepted as self\tenrolled accepted as another\tstrangers accepted\n")
	for _, d := range []struct {
		name string
		d    Decisions
	}{{"single probe", m.Single}, {"fused track", m.Fused}} {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.name, rate(d.d.Accept), rate(d.d.WrongAccept), rate(d.d.StrangerAccept))
	}
	p.flush(tw)
}

// rate prints a pooled rate with its counts and spread over seeds.
func rate(r Rate) string {
	return fmt.Sprintf("%s (%d/%d, ±%s)", pct(r.Rate), r.Events, r.Trials, pct(r.Std))
}

// pct prints a proportion as a percentage with enough digits for small
// rates.
func pct(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case x == 0:
		return "0%"
	case x >= 0.1:
		return fmt.Sprintf("%.1f%%", 100*x)
	case x >= 0.001:
		return fmt.Sprintf("%.2f%%", 100*x)
	}
	return fmt.Sprintf("%.4f%%", 100*x)
}

// sci prints a probability that may be far below a percent.
func sci(x float64) string {
	if x == 0 {
		return "0"
	}
	return fmt.Sprintf("%.2g", x)
}

// printer remembers the first write error so the report code stays flat.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) tab() *tabwriter.Writer {
	return tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
}

func (p *printer) flush(tw *tabwriter.Writer) {
	if err := tw.Flush(); err != nil && p.err == nil {
		p.err = err
	}
}
