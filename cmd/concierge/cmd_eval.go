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

// `concierge eval` measures recognition accuracy on labelled data and
// recommends the decision rule. It never touches the database: calibration
// photos are not customers. Each kind of labelled data is a subcommand with
// only its own flags; the older form names the data with a flag
// (`eval --folder DIR`), which evalRoute maps to its subcommand.

// evalSubcommand is one kind of labelled data.
type evalSubcommand struct {
	name, arg, summary string
	// setup declares the subcommand's flags on fs and returns what runs it
	// on its argument once they are parsed.
	setup func(m *Main, fs *flag.FlagSet) func(ctx context.Context, arg string) error
}

// evalSubcommands in the order the usage lists them. A new kind of
// evaluation (a visit simulation, say) is one more entry.
var evalSubcommands = []evalSubcommand{
	{"folder", "DIR", "open-set simulation and calibration on labelled photos: DIR/…/LABEL/*.jpg, labelled by the folder holding each photo", evalFolderCmd},
	{"lfw", "DIR", "LFW verification accuracy (View 2 protocol): DIR holds pairs.txt and images_deepfunneled/", evalLFWCmd},
	{"descriptors", "FILE", "open-set simulation and calibration on dlib descriptors (JSON: base64 128 little-endian float32 per face, labelled by idol_id)", evalDescriptorsCmd},
	{"clips", "DIR", "labelled door-camera clips played through the daemon's pipeline: DIR/LABEL/ holding clips (.mp4 .avi .mkv .mov .webm) and optionally enrollment photos, or DIR/NAME.mp4, one person per clip", evalClipsCmd},
	{"visits", "DIR|FILE", "return visits: customers come back, staff confirm, door templates are learned and the thresholds calibrated with them; labelled photos (DIR) or dlib descriptors (FILE)", evalVisitsCmd},
}

func evalSubcommandNamed(name string) (evalSubcommand, bool) {
	i := slices.IndexFunc(evalSubcommands, func(s evalSubcommand) bool { return s.name == name })
	if i < 0 {
		return evalSubcommand{}, false
	}
	return evalSubcommands[i], true
}

func runEval(ctx context.Context, m *Main, args []string) error {
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		m.evalUsage()
		return nil
	}
	name, args, err := evalRoute(args)
	if err != nil {
		m.evalUsage()
		return err
	}
	sub, _ := evalSubcommandNamed(name)
	fs := m.flags("eval " + name)
	run := sub.setup(m, fs)
	fs.Usage = func() {
		fmt.Fprintf(m.Stderr, "usage: concierge eval %s %s [flags]\n  %s\n", name, sub.arg, sub.summary)
		fs.PrintDefaults()
	}
	if err := misplacedEvalFlag(name, fs, args); err != nil {
		return err
	}
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		fs.Usage()
		if len(rest) == 0 {
			return usagef("eval %s needs its %s", name, sub.arg)
		}
		return usagef("eval %s takes one %s, got %q too", name, sub.arg, rest[1])
	}
	return run(ctx, rest[0])
}

func (m *Main) evalUsage() {
	var b strings.Builder
	b.WriteString("usage: concierge eval SUBCOMMAND ARG [--json] [flags]   (concierge eval SUBCOMMAND -h for its flags)\n\nsubcommands:\n")
	for _, s := range evalSubcommands {
		fmt.Fprintf(&b, "  %-12s %-5s %s\n", s.name, s.arg, s.summary)
	}
	b.WriteString("\nThe older form names the data with a flag: eval --descriptors FILE, --folder DIR, --lfw DIR or --clips DIR.\n")
	fmt.Fprint(m.Stderr, b.String())
}

// evalRoute returns the subcommand args call for and the args it parses:
// `eval NAME ARG ...` as it is, and the older `eval ... --NAME ARG ...`
// with ARG made the positional argument.
func evalRoute(args []string) (string, []string, error) {
	if len(args) > 0 {
		if _, ok := evalSubcommandNamed(args[0]); ok {
			return args[0], args[1:], nil
		}
	}
	name, at, n := "", -1, 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		flagName, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if _, ok := evalSubcommandNamed(flagName); ok {
			name, at = flagName, i
			n++
		}
	}
	switch {
	case n == 0:
		return "", nil, usagef("eval needs a subcommand: folder, lfw, descriptors, clips or visits")
	case n > 1:
		return "", nil, usagef("eval needs exactly one of --descriptors, --folder, --lfw and --clips")
	}
	var value string
	rest := slices.Clone(args[:at])
	if _, v, ok := strings.Cut(args[at], "="); ok {
		value = v
		rest = append(rest, args[at+1:]...)
	} else if at+1 < len(args) {
		value = args[at+1]
		rest = append(rest, args[at+2:]...)
	} else {
		return "", nil, usagef("flag needs an argument: %s", args[at])
	}
	return name, append([]string{value}, rest...), nil
}

// evalData says what each subcommand reads, for the message about a flag
// given to the wrong one.
var evalData = map[string]string{"folder": "photos", "lfw": "LFW pairs", "descriptors": "descriptors", "clips": "clips", "visits": "photos or descriptors"}

// misplacedEvalFlag explains a flag that belongs to another subcommand
// (`eval clips --seeds 3`) better than the flag package's "not defined".
func misplacedEvalFlag(name string, fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		f, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || f == "" || fs.Lookup(f) != nil {
			continue
		}
		var in []string
		for _, s := range evalSubcommands {
			other := flag.NewFlagSet(s.name, flag.ContinueOnError)
			s.setup(&Main{}, other)
			if other.Lookup(f) != nil {
				in = append(in, fmt.Sprintf("%s (eval %s)", evalData[s.name], s.name))
			}
		}
		switch {
		case len(in) == 0:
			continue // the flag package says it is not defined
		case f == "enroll-frames" || f == "clip-scale":
			return usagef("--enroll-frames and --clip-scale apply to --clips (eval clips), not to eval %s", name)
		case len(in) == 1:
			return usagef("--%s applies to %s, not to eval %s", f, in[0], name)
		}
		return usagef("--%s applies to %s and %s, not to eval %s", f, strings.Join(in[:len(in)-1], ", "), in[len(in)-1], name)
	}
	return nil
}

// ruleFlags override the configured rule that eval measures.
type ruleFlags struct {
	threshold, margin, faceSlack *float64
	votes                        *int
}

func declareRuleFlags(fs *flag.FlagSet) ruleFlags {
	return ruleFlags{
		threshold: fs.Float64("threshold", 0, "configured rule to measure (default: the config's match.threshold, calibrated to the gallery's size when 0)"),
		margin:    fs.Float64("margin", -1, "margin of the configured rule (default: the config's match.margin)"),
		votes:     fs.Int("votes", 0, "votes of the configured rule (default: the config's checkin.votes)"),
		faceSlack: fs.Float64("face-slack", -1, "how much farther than the threshold one face of a track may vote (default: the config's match.face_slack)"),
	}
}

// apply writes the flags into the configuration, so that the rule eval
// measures comes from it the way the daemon's does (checkinConfig); a
// track holds at most track faces, so it needs no more votes.
func (f ruleFlags) apply(cfg *Config, track int) error {
	if *f.faceSlack > 1 {
		return usagef("--face-slack %v: must be in [0, 1]", *f.faceSlack)
	}
	if *f.faceSlack >= 0 {
		cfg.Match.FaceSlack = f.faceSlack
	}
	if *f.votes > 0 {
		cfg.Checkin.Votes = *f.votes
	} else {
		cfg.Checkin.Votes = min(cfg.Checkin.Votes, track)
	}
	return nil
}

// openSetFlags shape the simulated branch of descriptors and photos.
type openSetFlags struct {
	enroll, seeds, track, gallery *int
	seed                          *uint64
	strangers, target, marginCost *float64
	duplicate                     *float64
	scoring, thresholds           *string
	creditFusion                  *bool
}

func declareOpenSetFlags(fs *flag.FlagSet) openSetFlags {
	def, tg := eval.DefaultOpenSet, eval.DefaultTarget
	return openSetFlags{
		enroll:       fs.Int("enroll", def.Enroll, "photos enrolled per simulated customer; their other photos are probes"),
		strangers:    fs.Float64("strangers", def.Strangers, "`fraction` of identities held back as strangers"),
		seeds:        fs.Int("seeds", def.Seeds, "random splits averaged"),
		seed:         fs.Uint64("seed", def.Seed, "first seed of the splits"),
		track:        fs.Int("track", def.Track, "probes fused per visit"),
		scoring:      fs.String("scoring", string(def.Scoring), "per-customer score: centroid (the gallery's), min (nearest template), mean2 (two nearest), or all to compare them"),
		target:       fs.Float64("target", tg.Rate, "false alerts per stranger visit to calibrate for"),
		gallery:      fs.Int("gallery", tg.Gallery, "number of enrolled `customers` the target must hold at"),
		creditFusion: fs.Bool("credit-fusion", false, "calibrate on fused tracks of independent photos (optimistic: real frames of a visit are alike)"),
		marginCost:   fs.Float64("margin-cost", tg.MarginCost, "fused genuine acceptance a margin may cost"),
		thresholds:   fs.String("thresholds", "", "comma-separated thresholds for the tables (default: chosen from the data)"),
		duplicate:    fs.Float64("duplicate", eval.DefaultDuplicate, "faces this close are one photo twice: dropped under two labels, kept once under one; negative keeps all"),
	}
}

// options are the simulation's options; the rule comes later (rule).
func (f openSetFlags) options() (eval.Options, error) {
	if sc := eval.Scoring(*f.scoring); *f.scoring != "all" && !slices.Contains(eval.Scorings, sc) {
		return eval.Options{}, usagef("--scoring %q: want centroid, min, mean2 or all", *f.scoring)
	}
	opt := eval.DefaultOptions()
	opt.OpenSet = eval.OpenSetConfig{Enroll: *f.enroll, Strangers: *f.strangers, Seeds: *f.seeds, Seed: *f.seed,
		Track: *f.track, Scoring: eval.Scoring(*f.scoring)}
	if *f.scoring == "all" {
		opt.OpenSet.Scoring, opt.CompareScorings = eval.DefaultOpenSet.Scoring, true
	}
	opt.Duplicate = *f.duplicate
	opt.Target.Rate, opt.Target.Gallery = *f.target, *f.gallery
	opt.Target.CreditFusion, opt.Target.MarginCost = *f.creditFusion, *f.marginCost
	var err error
	if opt.Thresholds, err = parseFloats(*f.thresholds); err != nil {
		return opt, usagef("--thresholds: %v", err)
	}
	return opt, nil
}

// rule sets the configured rule the simulation measures: the check-in
// rule the configuration sets (checkinConfig), calibrated to the simulated
// gallery's size unless --threshold fixes it.
func (f openSetFlags) rule(cfg Config, rf ruleFlags, opt *eval.Options) error {
	if err := rf.apply(&cfg, *f.track); err != nil {
		return err
	}
	rule := cfg.checkinConfig().Rule()
	opt.Rule, opt.Votes = rule.Match, rule.Votes
	if *rf.threshold > 0 {
		opt.Rule.Threshold = *rf.threshold
	} else {
		// The simulated customers hold no door rows, and the daemon holds
		// such customers to the kiosk-only calibration (enroll.Rule.Unlearned).
		opt.Calibrated = cfg.openSet()
		opt.Calibrated.DoorFactor = 0
		opt.VerifyTarget, opt.BandSizes = cfg.Match.VerifyTarget, []int{10, 100, 1000}
	}
	if *rf.margin >= 0 {
		opt.Rule.Margin = *rf.margin
	}
	return nil
}

// photoFlags say how photos are embedded.
type photoFlags struct {
	engine, padMode *string
	pad             *float64
	shrink          *int
}

func declarePhotoFlags(fs *flag.FlagSet, pad string) photoFlags {
	return photoFlags{
		engine:  fs.String("engine", "", "face `engine` (default: the config's vision.engine): mobilefacenet-foamliu, mobilefacenet, dlib or embedder (vision.embedder)"),
		pad:     fs.Float64("pad", -1, "border added on every side of a photo before detection, as a `fraction` of its size (default "+pad+")"),
		padMode: fs.String("pad-mode", string(eval.PadReplicate), "what fills the border: replicate or black"),
		shrink:  fs.Int("shrink", 0, "scale every photo down to at most `px` on its longer side and re-encode it as JPEG (quality 70) before padding: a door camera's view of a face (0: as they are)"),
	}
}

func (f photoFlags) check() error {
	if *f.shrink < 0 || *f.shrink > 0 && *f.shrink < 16 {
		return usagef("--shrink %d: want 0 or at least 16 pixels", *f.shrink)
	}
	if pm := eval.PadMode(*f.padMode); pm != eval.PadReplicate && pm != eval.PadBlack {
		return usagef("--pad-mode %q: want %s or %s", *f.padMode, eval.PadReplicate, eval.PadBlack)
	}
	return nil
}

// embedder opens the engine and the photo embedder; pad is the default
// border when --pad is not given.
func (f photoFlags) embedder(m *Main, cfg *Config, pad float64) (*eval.Embedder, func(), error) {
	if *f.engine != "" {
		cfg.Vision.Engine = *f.engine
	}
	det, closeDet, err := m.evalDetector(*cfg, cfg.Vision.Engine)
	if err != nil {
		return nil, nil, err
	}
	return f.photos(det, *cfg, pad), closeDet, nil
}

// photos is the photo embedder of det with these flags.
func (f photoFlags) photos(det enroll.Detector, cfg Config, pad float64) *eval.Embedder {
	emb := &eval.Embedder{Detector: det, PadMode: eval.PadMode(*f.padMode), Shrink: *f.shrink, Workers: cfg.Vision.Pool, Pad: pad}
	if *f.pad >= 0 {
		emb.Pad = *f.pad
	}
	return emb
}

func evalFolderCmd(m *Main, fs *flag.FlagSet) func(context.Context, string) error {
	pf := declarePhotoFlags(fs, "0.5")
	labels := fs.String("labels", "", "comma-separated `labels` to keep")
	of := declareOpenSetFlags(fs)
	rf := declareRuleFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	calibrate := fs.String("calibrate", "", "write the engine's calibration (impostor tails, ceiling) measured on the photos to `file`, for vision.embedder.calibration")
	projection := fs.String("projection", projectionDefault, "with --calibrate, how an embedder whose output_dim is not 128 is projected to 128, fitted on the photos (`method`): subspace, pca or pca-whiten")
	return func(ctx context.Context, dir string) error {
		if err := pf.check(); err != nil {
			return err
		}
		opt, err := of.options()
		if err != nil {
			return err
		}
		// Calibrating measures what the config would otherwise refuse to
		// load: an engine without its calibration.
		m.calibrating = *calibrate != ""
		cfg, err := m.config()
		if err != nil {
			return err
		}
		if *calibrate != "" {
			if err := m.fitProjection(ctx, &cfg, pf, dir, splitList(*labels), *projection); err != nil {
				return err
			}
		}
		emb, closeDet, err := pf.embedder(m, &cfg, 0.5)
		if err != nil {
			return err
		}
		defer closeDet()
		if err := of.rule(cfg, rf, &opt); err != nil {
			return err
		}
		rep, err := m.evalFolder(ctx, emb, dir, splitList(*labels), opt)
		if rep != nil {
			rep.Model = emb.Detector.Model()
		}
		if err == nil && *calibrate != "" {
			err = m.writeCalibration(cfg, cfg.Vision.Engine, rep, *calibrate)
		}
		return m.printReport(ctx, rep, err, *asJSON)
	}
}

func evalLFWCmd(m *Main, fs *flag.FlagSet) func(context.Context, string) error {
	pf := declarePhotoFlags(fs, "0")
	thresholds := fs.String("thresholds", "", "comma-separated thresholds for the table (default: chosen from the data)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	return func(ctx context.Context, dir string) error {
		if err := pf.check(); err != nil {
			return err
		}
		ths, err := parseFloats(*thresholds)
		if err != nil {
			return usagef("--thresholds: %v", err)
		}
		cfg, err := m.config()
		if err != nil {
			return err
		}
		emb, closeDet, err := pf.embedder(m, &cfg, 0)
		if err != nil {
			return err
		}
		defer closeDet()
		rep, err := m.evalLFW(ctx, emb, dir, ths)
		if rep != nil {
			rep.Model = emb.Detector.Model()
		}
		return m.printReport(ctx, rep, err, *asJSON)
	}
}

func evalDescriptorsCmd(m *Main, fs *flag.FlagSet) func(context.Context, string) error {
	of := declareOpenSetFlags(fs)
	rf := declareRuleFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	return func(ctx context.Context, path string) error {
		opt, err := of.options()
		if err != nil {
			return err
		}
		cfg, err := m.config()
		if err != nil {
			return err
		}
		// The configured rule is the one of the engine being measured:
		// the descriptor files this command reads are dlib's.
		cfg.Vision.Engine = engineDlib
		if err := of.rule(cfg, rf, &opt); err != nil {
			return err
		}
		rep, err := evalDescriptors(path, opt)
		return m.printReport(ctx, rep, err, *asJSON)
	}
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
			return nil, nil, concierge.Errorf(concierge.EUNAVAILABLE, "%w (run `concierge models fetch` first)", err)
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
			return nil, nil, concierge.Errorf(concierge.EUNAVAILABLE, "%w (run `concierge models fetch`)", err)
		}
		return e, func() { e.Close() }, nil
	}
	return nil, nil, usagef("--engine %q: not one of: %s, %s, %s", name, engineFoamliu, engineMobileFaceNet, engineDlib)
}

// invalid marks err as a problem with the caller's data or flags, not a
// failure of Concierge.
func invalid(err error) error { return concierge.Errorf(concierge.EINVALID, "eval: %w", err) }

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

func (m *Main) evalLFW(ctx context.Context, emb *eval.Embedder, dir string, thresholds []float64) (*eval.Report, error) {
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
	rep, err := eval.AnalyzeLFW(scored, folds, images, misses, thresholds)
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
