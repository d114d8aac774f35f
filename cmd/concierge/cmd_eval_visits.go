package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"concierge"
	"concierge/eval"
	"concierge/vision"
)

// evalVisitsCmd simulates customers coming back (`concierge eval visits
// DIR|FILE`): staff confirm their visits, door templates are learned under
// a door policy, and the thresholds are calibrated with them in the
// gallery (docs/accuracy.md, "Learning from confirmed visits"). The
// argument is a folder of labelled photos, embedded with --engine, or a
// dlib descriptor file (.json). Like eval it never touches the database.
func evalVisitsCmd(m *Main, fs *flag.FlagSet) func(context.Context, string) error {
	engine := fs.String("engine", "", "face `engine` for photos (default: the config's vision.engine)")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	duplicate := fs.Float64("duplicate", eval.DefaultDuplicate, "faces this close are one photo twice (negative keeps all)")
	def := eval.DefaultVisits
	enrollN := fs.Int("enroll", def.Enroll, "photos each simulated customer is enrolled with")
	strangers := fs.Float64("strangers", def.Strangers, "`fraction` of identities never enrolled")
	seeds := fs.Int("seeds", def.Seeds, "random splits")
	seed := fs.Uint64("seed", def.Seed, "first seed of the splits")
	track := fs.Int("track", def.Track, "distinct photos per visit")
	visits := fs.Int("visits", def.Visits, "visits reported per person")
	door := fs.String("door", string(def.Door.Mode), "door `policy`: none, merge, mean, faces, visit, or all to compare them")
	doorCap := fs.Int("door-cap", def.Door.Cap, "door templates a customer keeps, oldest replaced (0: no limit)")
	perVisit := fs.Int("per-visit", def.Door.PerVisit, "faces one visit adds (0: all)")
	dedupe := fs.Float64("dedupe", def.Door.Dedupe, "a face this near one of the customer's templates is not added")
	penalty := fs.Float64("door-penalty", def.Door.Penalty, "added to a door centroid's distance: a stricter rule for door rows")
	sizes := fs.String("sizes", "100,1000,10000", "gallery `sizes` to calibrate for")
	verifyTargets := fs.String("verify-target", "", "card `budgets` per stranger visit to simulate, e.g. 0.01,0.02 (default: the config's match.verify_target)")
	othersPath := fs.String("others", "", "labelled photos (a folder; a descriptor file for descriptors) of other `people`: they fill the gallery towards each size and the rest come as strangers")
	calibrate := fs.String("calibrate", "", "set door_factor and door_offset of the policy (one door centroid) in the existing calibration `file` of the engine")
	return func(ctx context.Context, path string) error {
		modes := []eval.DoorMode{eval.DoorMode(*door)}
		if *door == "all" {
			modes = eval.DoorModes
		} else if !slices.Contains(eval.DoorModes, modes[0]) {
			return usagef("--door %q: want none, merge, mean, faces, visit or all", *door)
		}
		if *doorCap < 0 || *perVisit < 0 || *dedupe < 0 || *penalty < 0 {
			return usagef("--door-cap, --per-visit, --dedupe and --door-penalty must not be negative")
		}
		if *calibrate != "" && (modes[0] != eval.DoorMean || *perVisit != 0 || *doorCap < 1 || *doorCap > maxDoorTemplates) {
			return usagef("--calibrate: the daemon scores one door centroid: --door mean, --door-cap 1 to %d, --per-visit 0", maxDoorTemplates)
		}
		st, err := os.Stat(path)
		if err != nil {
			return invalid(err)
		}
		descriptors := !st.IsDir()
		if descriptors && *engine != "" {
			return usagef("--engine applies to photos, not to a descriptor file")
		}
		cfg, err := m.config()
		if err != nil {
			return err
		}
		switch {
		case descriptors:
			cfg.Vision.Engine = engineDlib
		case *engine != "":
			cfg.Vision.Engine = *engine
		default:
			cfg.resolveEngine()
		}
		vc := eval.VisitsConfig{Enroll: *enrollN, Strangers: *strangers, Seeds: *seeds, Seed: *seed, Track: *track, Visits: *visits,
			Door:  eval.DoorPolicy{Cap: *doorCap, PerVisit: *perVisit, Dedupe: *dedupe, Penalty: *penalty},
			Rule:  cfg.rule(),
			Votes: cfg.Checkin.Votes, Target: cfg.Match.FalseAlertTarget, VerifyTarget: cfg.Match.VerifyTarget}
		// The rule's threshold is the engine's ceiling: the simulation
		// calibrates below it from the tails it measures.
		vc.Rule.Threshold = cfg.openSet().Ceiling
		targets := []float64{vc.VerifyTarget}
		if *verifyTargets != "" {
			var err error
			if targets, err = parseFloats(*verifyTargets); err != nil || len(targets) == 0 {
				return usagef("--verify-target %q: want card budgets, e.g. 0.01,0.02", *verifyTargets)
			}
			for _, t := range targets {
				if t < 0 || t >= 1 || (t > 0 && t <= vc.Target) {
					return usagef("--verify-target: %v must be 0 or a rate above match.false_alert_target %v and below 1", t, vc.Target)
				}
			}
		}
		if *calibrate != "" && len(targets) > 1 {
			return usagef("--calibrate: give one --verify-target")
		}
		fl, err := parseFloats(*sizes)
		if err != nil || len(fl) == 0 {
			return usagef("--sizes %q: want gallery sizes, e.g. 100,1000", *sizes)
		}
		for _, f := range fl {
			if f < 1 || f != float64(int(f)) {
				return usagef("--sizes: %v is not a number of customers", f)
			}
			vc.Sizes = append(vc.Sizes, int(f))
		}

		if *othersPath != "" {
			st, err := os.Stat(*othersPath)
			if err != nil {
				return invalid(err)
			}
			if st.IsDir() == descriptors {
				return usagef("--others must be of the same kind as the set: a folder of photos with photos, a descriptor file with descriptors")
			}
		}
		var emb *eval.Embedder
		if !descriptors {
			det, closeDet, derr := m.evalDetector(cfg, cfg.Vision.Engine)
			if derr != nil {
				return derr
			}
			defer closeDet()
			emb = &eval.Embedder{Detector: det, Pad: 0.5, PadMode: eval.PadReplicate, Workers: cfg.Vision.Pool}
		}
		load := func(path string) (*eval.Set, error) {
			var set *eval.Set
			var err error
			if descriptors {
				if set, err = readDescriptorSet(path); err != nil {
					return nil, err
				}
			} else {
				start := time.Now()
				if set, err = emb.EmbedFolder(ctx, path, nil); err != nil {
					return nil, m.printReport(ctx, nil, inputOrInternal(err), false)
				}
				m.Logger.Info("photos embedded", "photos", set.Images, "faces", len(set.Samples), "took", time.Since(start).Round(time.Millisecond))
			}
			if err := set.Dedupe(*duplicate); err != nil {
				return nil, invalid(err)
			}
			return set, nil
		}
		set, err := load(path)
		if err != nil {
			return err
		}
		if *othersPath != "" {
			if vc.Others, err = load(*othersPath); err != nil {
				return err
			}
		}
		out := &visitsReport{}
		for _, mode := range modes {
			for _, t := range targets {
				vc.Door.Mode, vc.VerifyTarget = mode, t
				res, err := eval.SimulateVisits(set, vc)
				if err != nil {
					return invalid(err)
				}
				out.Results = append(out.Results, res)
			}
		}
		if *calibrate != "" {
			f, o, _ := out.Results[0].DoorCalibration()
			cal, err := eval.UpdateDoorCalibration(*calibrate, set.Model, f, o)
			if err != nil {
				return concierge.Errorf(concierge.EINVALID, "--calibrate: %v", err)
			}
			fmt.Fprintf(m.Stderr, "door_factor %g and door_offset %g of %s written to %s\n", cal.DoorFactor, cal.DoorOffset, cal.Model, *calibrate)
		}
		return m.printReport(ctx, out, nil, *asJSON)
	}
}

// visitsReport is one simulation per door policy.
type visitsReport struct {
	Results []*eval.VisitsResult `json:"results"`
}

func (r *visitsReport) WriteText(w io.Writer) error {
	for i, res := range r.Results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := res.WriteText(w); err != nil {
			return err
		}
	}
	return nil
}

func readDescriptorSet(path string) (*eval.Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, invalid(err)
	}
	defer f.Close()
	set, err := eval.ReadDescriptors(f)
	if err != nil {
		return nil, invalid(err)
	}
	set.Model = vision.ModelDlib
	return set, nil
}
