package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"concierge"
	"concierge/enroll"
	"concierge/eval"
	"concierge/vision"
)

// runEval measures recognition accuracy on labelled data and recommends
// the decision rule. It never touches the database: calibration photos
// are not customers.
func runEval(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("eval")
	descriptors := fs.String("descriptors", "", "descriptor `file` (JSON: base64 128 little-endian float32 per face, labelled by idol_id; dlib embeddings)")
	folder := fs.String("folder", "", "labelled photos: `dir`/…/LABEL/*.jpg, labelled by the folder holding each photo")
	lfwDir := fs.String("lfw", "", "LFW `dir` holding pairs.txt and images_deepfunneled/ (View 2 protocol)")
	clips := fs.String("clips", "", "labelled door-camera clips: `dir`/LABEL/ holding clips (.mp4 .avi .mkv .mov .webm) and optionally enrollment photos, or dir/NAME.mp4, one person per clip; played through the daemon's pipeline")
	clipScale := fs.Float64("clip-scale", 0, "with --clips: draw every frame scaled by this `factor` (0-1) in the middle of a 1280x720 frame, as an entrance camera sees a person a few metres away (0: as filmed)")
	enrollFrames := fs.String("enroll-frames", "1,12,24", "with --clips: `frames` of a person's first clip to enroll from when their folder holds no photos")
	engine := fs.String("engine", "", "face `engine` for photos (default: the config's vision.engine): mobilefacenet-foamliu, mobilefacenet, dlib or embedder (vision.embedder)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	calibrate := fs.String("calibrate", "", "with --folder: write the engine's calibration (impostor tails, ceiling) measured on the photos to `file`, for vision.embedder.calibration")
	pad := fs.Float64("pad", -1, "border added on every side of a photo before detection, as a `fraction` of its size (default 0.5 with --folder, 0 with --lfw)")
	padMode := fs.String("pad-mode", string(eval.PadReplicate), "what fills the border: replicate or black")
	shrink := fs.Int("shrink", 0, "scale every photo down to at most `px` on its longer side and re-encode it as JPEG (quality 70) before padding: a door camera's view of a face (0: as they are)")
	labels := fs.String("labels", "", "comma-separated `labels` to keep (--folder)")
	duplicate := fs.Float64("duplicate", eval.DefaultDuplicate, "faces this close are one photo twice: dropped under two labels, kept once under one; negative keeps all")
	def := eval.DefaultOpenSet
	enrollN := fs.Int("enroll", def.Enroll, "photos enrolled per simulated customer; their other photos are probes")
	strangers := fs.Float64("strangers", def.Strangers, "`fraction` of identities held back as strangers")
	seeds := fs.Int("seeds", def.Seeds, "random splits averaged")
	seed := fs.Uint64("seed", def.Seed, "first seed of the splits")
	track := fs.Int("track", def.Track, "probes fused per visit")
	scoring := fs.String("scoring", string(def.Scoring), "per-customer score: centroid (the gallery's), min (nearest template), mean2 (two nearest), or all to compare them")
	tg := eval.DefaultTarget
	target := fs.Float64("target", tg.Rate, "false alerts per stranger visit to calibrate for")
	gallery := fs.Int("gallery", tg.Gallery, "number of enrolled `customers` the target must hold at")
	creditFusion := fs.Bool("credit-fusion", false, "calibrate on fused tracks of independent photos (optimistic: real frames of a visit are alike)")
	marginCost := fs.Float64("margin-cost", tg.MarginCost, "fused genuine acceptance a margin may cost")
	thresholds := fs.String("thresholds", "", "comma-separated thresholds for the tables (default: chosen from the data)")
	threshold := fs.Float64("threshold", 0, "configured rule to measure (default: the config's match.threshold, calibrated to the simulated gallery's size when 0)")
	margin := fs.Float64("margin", -1, "margin of the configured rule (default: the config's match.margin)")
	votes := fs.Int("votes", 0, "votes of the configured rule (default: the config's checkin.votes)")
	faceSlack := fs.Float64("face-slack", -1, "how much farther than the threshold one face of a track may vote (default: the config's match.face_slack)")
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, "usage: concierge eval (--descriptors FILE | --folder DIR | --lfw DIR | --clips DIR) [--json] [flags]")
		fs.PrintDefaults()
	}
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		fs.Usage()
		return usagef("eval takes no arguments, got %q", rest[0])
	}
	sources := 0
	for _, s := range []string{*descriptors, *folder, *lfwDir, *clips} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		fs.Usage()
		return usagef("eval needs exactly one of --descriptors, --folder, --lfw and --clips")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *clips != "" {
		for _, f := range []string{"pad", "pad-mode", "shrink", "labels", "duplicate", "enroll", "strangers", "seeds", "seed", "track",
			"scoring", "target", "gallery", "credit-fusion", "margin-cost", "thresholds"} {
			if set[f] {
				return usagef("--%s applies to photos and descriptors, not to --clips", f)
			}
		}
	} else if set["enroll-frames"] || set["clip-scale"] {
		return usagef("--enroll-frames and --clip-scale apply to --clips")
	}
	var place *vision.Placement
	if *clipScale != 0 {
		if !(*clipScale > 0 && *clipScale <= 1) {
			return usagef("--clip-scale %v: want a factor in (0, 1]", *clipScale)
		}
		place = &vision.Placement{Width: 1280, Height: 720, Scale: *clipScale}
	}
	enrollAt, err := parseFrames(*enrollFrames)
	if err != nil {
		return usagef("--enroll-frames: %v", err)
	}
	if *descriptors != "" && (set["engine"] || set["pad"] || set["pad-mode"] || set["shrink"]) {
		return usagef("--engine, --pad, --pad-mode and --shrink apply to photos, not to --descriptors")
	}
	if *shrink < 0 || *shrink > 0 && *shrink < 16 {
		return usagef("--shrink %d: want 0 or at least 16 pixels", *shrink)
	}
	if *lfwDir != "" && set["labels"] {
		return usagef("--labels applies to --folder")
	}
	if pm := eval.PadMode(*padMode); pm != eval.PadReplicate && pm != eval.PadBlack {
		return usagef("--pad-mode %q: want %s or %s", *padMode, eval.PadReplicate, eval.PadBlack)
	}
	if sc := eval.Scoring(*scoring); *scoring != "all" && !slices.Contains(eval.Scorings, sc) {
		return usagef("--scoring %q: want centroid, min, mean2 or all", *scoring)
	}
	opt := eval.DefaultOptions()
	opt.OpenSet = eval.OpenSetConfig{Enroll: *enrollN, Strangers: *strangers, Seeds: *seeds, Seed: *seed,
		Track: *track, Scoring: eval.Scoring(*scoring)}
	if *scoring == "all" {
		opt.OpenSet.Scoring, opt.CompareScorings = def.Scoring, true
	}
	opt.Duplicate = *duplicate
	opt.Target.Rate, opt.Target.Gallery = *target, *gallery
	opt.Target.CreditFusion, opt.Target.MarginCost = *creditFusion, *marginCost
	if opt.Thresholds, err = parseFloats(*thresholds); err != nil {
		return usagef("--thresholds: %v", err)
	}
	if *calibrate != "" && *folder == "" {
		return usagef("--calibrate applies to --folder")
	}
	m.calibrating = *calibrate != ""
	cfg, err := m.config()
	if err != nil {
		return err
	}
	// The configured rule is the one of the engine being measured:
	// descriptors are dlib's, photos go through --engine.
	switch {
	case *descriptors != "":
		cfg.Vision.Engine = engineDlib
	case *engine != "":
		cfg.Vision.Engine = *engine
	}
	opt.Votes = *votes
	if opt.Votes <= 0 {
		opt.Votes = min(cfg.Checkin.Votes, *track)
	}
	cfg.Checkin.Votes = opt.Votes
	if *faceSlack > 1 {
		return usagef("--face-slack %v: must be in [0, 1]", *faceSlack)
	}
	if *faceSlack >= 0 {
		cfg.Match.FaceSlack = faceSlack
	}
	opt.Rule = cfg.rule()
	if *threshold > 0 {
		opt.Rule.Threshold = *threshold
	} else {
		opt.Calibrated = cfg.openSet()
		opt.VerifyTarget, opt.BandSizes = cfg.Match.VerifyTarget, []int{10, 100, 1000}
	}
	if *margin >= 0 {
		opt.Rule.Margin = *margin
	}

	if *clips != "" {
		if *engine != "" {
			cfg.Vision.Engine = *engine
		} else {
			cfg.resolveEngine()
		}
		if cfg.Vision.Engine != engineDlib && !isDNNEngine(cfg.Vision.Engine) {
			return usagef("--engine %q: not one of: %s, %s, %s", cfg.Vision.Engine, engineFoamliu, engineMobileFaceNet, engineDlib)
		}
		if *threshold > 0 {
			cfg.Match.Threshold = *threshold
		}
		if *margin >= 0 {
			cfg.Match.Margin = *margin
		}
		rep, err := m.evalClips(ctx, cfg, *clips, enrollAt, place)
		return m.printReport(ctx, rep, err, *asJSON)
	}

	var rep *eval.Report
	switch {
	case *descriptors != "":
		rep, err = evalDescriptors(*descriptors, opt)
	default:
		name := *engine
		if name == "" {
			name = cfg.Vision.Engine
		}
		det, closeDet, derr := m.evalDetector(cfg, name)
		if derr != nil {
			return derr
		}
		defer closeDet()
		emb := &eval.Embedder{Detector: det, PadMode: eval.PadMode(*padMode), Shrink: *shrink, Workers: cfg.Vision.Pool}
		if *folder != "" {
			emb.Pad = 0.5
			if *pad >= 0 {
				emb.Pad = *pad
			}
			rep, err = m.evalFolder(ctx, emb, *folder, splitList(*labels), opt)
			if err == nil && *calibrate != "" {
				rep.Model = det.Model()
				err = m.writeCalibration(cfg, name, rep, *calibrate)
			}
		} else {
			emb.Pad = max(*pad, 0)
			rep, err = m.evalLFW(ctx, emb, *lfwDir, opt)
		}
		if rep != nil {
			rep.Model = det.Model()
		}
	}
	return m.printReport(ctx, rep, err, *asJSON)
}

// printReport prints an evaluation's report as JSON or text, or returns
// the error that stopped it (the context's when it was cancelled).
func (m *Main) printReport(ctx context.Context, rep interface{ WriteText(io.Writer) error }, err error, asJSON bool) error {
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if asJSON {
		return writeJSON(m, rep)
	}
	return rep.WriteText(m.Stdout)
}

// evalDetector opens the engine that embeds photos. Every engine is an
// enroll.Detector, which is all eval needs.
func (m *Main) evalDetector(cfg Config, name string) (enroll.Detector, func(), error) {
	switch name {
	case "dlib":
		e, err := vision.NewEngine(vision.Config{
			ModelDir:  cfg.Models.Dir,
			Pool:      cfg.Vision.Pool,
			MaxPixels: cfg.Vision.MaxPixels,
			MinFacePx: cfg.Vision.MinFacePx,
			Logger:    m.Logger,
		})
		if err != nil {
			return nil, nil, concierge.Errorf(concierge.EUNAVAILABLE, "%v (run `concierge models fetch` first)", err)
		}
		return e, func() { e.Close() }, nil
	case engineMobileFaceNet, engineFoamliu, engineEmbedder:
		cfg.Vision.Engine = name
		desc, _, err := cfg.embedderDescription()
		var e *vision.DNNEngine
		if err == nil {
			e, err = vision.NewDNNEngineFor(cfg.Models.Dir, desc, cfg.Vision.MaxPixels, cfg.Vision.MinFacePx)
		}
		if err != nil {
			return nil, nil, concierge.Errorf(concierge.EUNAVAILABLE, "%v (run `concierge models fetch`)", err)
		}
		return e, func() { e.Close() }, nil
	}
	return nil, nil, usagef("--engine %q: not one of: %s, %s, %s", name, engineFoamliu, engineMobileFaceNet, engineDlib)
}

// invalid marks err as a problem with the caller's data or flags, not a
// failure of Concierge.
func invalid(err error) error { return concierge.Errorf(concierge.EINVALID, "eval: %v", err) }

func evalDescriptors(path string, opt eval.Options) (*eval.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, invalid(err)
	}
	defer f.Close()
	set, err := eval.ReadDescriptors(f)
	if err != nil {
		return nil, invalid(err)
	}
	// The descriptor files this command reads come from dlib's ResNet.
	set.Model = vision.ModelDlib
	rep, err := eval.Analyze(set, opt)
	if err != nil {
		return nil, invalid(err)
	}
	rep.Source, rep.Path = "descriptors", path
	return rep, nil
}

func (m *Main) evalFolder(ctx context.Context, emb *eval.Embedder, dir string, labels []string, opt eval.Options) (*eval.Report, error) {
	start := time.Now()
	set, err := emb.EmbedFolder(ctx, dir, labels)
	if err != nil {
		return nil, inputOrInternal(err)
	}
	m.Logger.Info("photos embedded", "photos", set.Images, "faces", len(set.Samples), "misses", len(set.Misses), "took", time.Since(start).Round(time.Millisecond))
	rep, err := eval.Analyze(set, opt)
	if err != nil {
		return nil, invalid(err)
	}
	rep.Source, rep.Path = "folder", dir
	return rep, nil
}

func (m *Main) evalLFW(ctx context.Context, emb *eval.Embedder, dir string, opt eval.Options) (*eval.Report, error) {
	f, err := os.Open(filepath.Join(dir, "pairs.txt"))
	if err != nil {
		return nil, invalid(err)
	}
	pairs, folds, err := eval.ReadLFWPairs(f)
	f.Close()
	if err != nil {
		return nil, invalid(err)
	}
	start := time.Now()
	scored, images, misses, err := emb.EmbedLFW(ctx, dir, pairs)
	if err != nil {
		return nil, inputOrInternal(err)
	}
	m.Logger.Info("LFW pairs embedded", "pairs", len(pairs), "images", images, "misses", len(misses), "took", time.Since(start).Round(time.Millisecond))
	rep, err := eval.AnalyzeLFW(scored, folds, images, misses, opt.Thresholds)
	if err != nil {
		return nil, invalid(err)
	}
	rep.Path = dir
	return rep, nil
}

// inputOrInternal tells a failing engine from the caller's mistake (a
// missing folder, a folder without labelled photos).
func inputOrInternal(err error) error {
	var de *eval.DetectError
	if errors.As(err, &de) {
		return fmt.Errorf("eval: %w", err)
	}
	return invalid(err)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseFrames(s string) ([]int64, error) {
	var out []int64
	for _, f := range splitList(s) {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a frame number (the first frame is 1)", f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("no frame numbers")
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range splitList(s) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, v)
	}
	return out, nil
}
