package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"

	"concierge/eval"
	"concierge/replay"
	"concierge/vision"
)

// `concierge eval clips` plays labelled door-camera clips through the
// daemon's pipeline (replay.Clips); this file holds its flags and wiring.

func evalClipsCmd(m *Main, fs *flag.FlagSet) func(context.Context, string) error {
	engine := fs.String("engine", "", "face `engine` (default: the config's vision.engine): mobilefacenet-foamliu, mobilefacenet or dlib")
	clipScale := fs.Float64("clip-scale", 0, "draw every frame scaled by this `factor` (0-1) in the middle of a 1280x720 frame, as an entrance camera sees a person a few metres away (0: as filmed)")
	enrollFrames := fs.String("enroll-frames", "1,12,24", "`frames` of a person's first clip to enroll from when their folder holds no photos")
	rf := declareRuleFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	return func(ctx context.Context, dir string) error {
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
		cfg, err := m.config()
		if err != nil {
			return err
		}
		if *engine != "" {
			cfg.Vision.Engine = *engine
		}
		if cfg.Vision.Engine != engineDlib && !isDNNEngine(cfg.Vision.Engine) {
			return usagef("--engine %q: not one of: %s, %s, %s", cfg.Vision.Engine, engineFoamliu, engineMobileFaceNet, engineDlib)
		}
		// --votes beyond a photo visit's faces is capped as in eval folder,
		// so that both measure the same rule.
		if err := rf.apply(&cfg, eval.DefaultOpenSet.Track); err != nil {
			return err
		}
		if *rf.threshold > 0 {
			cfg.Match.Threshold = *rf.threshold
		}
		if *rf.margin >= 0 {
			cfg.Match.Margin = *rf.margin
		}
		rep, err := m.evalClips(ctx, cfg, dir, enrollAt, place)
		return m.printReport(ctx, rep, err, *asJSON)
	}
}

// evalClips enrolls the people of dir in a throwaway database and plays
// their clips with the check-in rule the configuration sets
// (replay.Clips).
func (m *Main) evalClips(ctx context.Context, cfg Config, dir string, enrollAt []int64, place *vision.Placement) (*replay.ClipReport, error) {
	tmp, err := os.MkdirTemp("", "concierge-eval-clips-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	cfg.DB = filepath.Join(tmp, "eval.db")
	app, err := m.openFaceApp(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	defer app.Close()
	return replay.Clips(ctx, app.pipeline(cfg), app.svc, dir, enrollAt, place)
}
