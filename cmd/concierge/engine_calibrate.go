package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"concierge"
	"concierge/enroll"
	"concierge/eval"
	"concierge/models"
	"concierge/vision"
)

// writeCalibration is `eval --folder DIR --calibrate OUT`: the calibration
// of engine measured on the folder's report (eval.Calibrate), with the
// margin and face slack in force (or eval's defaults for a model not yet
// calibrated).
func (m *Main) writeCalibration(cfg Config, engine string, rep *eval.Report, path string) error {
	cfg.Vision.Engine = engine
	desc, ok, err := cfg.embedderDescription()
	if err != nil {
		return err
	}
	if !ok {
		f, _ := models.Lookup(models.DlibResNet)
		desc.Model, desc.SHA256 = vision.ModelDlib, f.SHA256
	}
	margin, slack := eval.DefaultMargin, eval.DefaultFaceSlack
	if cal, err := cfg.loadCalibration(); err == nil {
		margin, slack = cal.Margin, cal.FaceSlack
	}
	if cfg.Match.Margin > 0 {
		margin = cfg.Match.Margin
	}
	if cfg.Match.FaceSlack != nil {
		slack = *cfg.Match.FaceSlack
	}
	// A projected model's tails were measured through the projection in
	// force (fitted by fitProjection or kept from the configured
	// calibration): they are written together.
	cal, err := eval.CalibrateProjected(rep, desc.Model, desc.SHA256, desc.Projection, margin, slack)
	if err != nil {
		return invalid(err)
	}
	if err := eval.WriteCalibration(path, cal); err != nil {
		return concierge.Errorf(concierge.EINVALID, "--calibrate: %v", err)
	}
	o := enroll.OpenSet{Tail: cal.Tail, Track: cal.TrackTail, Target: cfg.Match.FalseAlertTarget, Ceiling: cal.Threshold}
	fmt.Fprintf(m.Stderr, "calibration of %s written to %s: ceiling %.2f, margin %.2f, face slack %.2f; thresholds at %g false alerts per stranger visit: %.3f (100 customers), %.3f (1,000), %.3f (10,000)\n",
		cal.Model, path, cal.Threshold, cal.Margin, cal.FaceSlack, o.Target, o.Threshold(100), o.Threshold(1000), o.Threshold(10000))
	return nil
}

// projectionDefault is eval --projection's default: the one of the three
// measured on a 512-d model (docs/engines.md) that keeps the model's own
// distances; centring or whitening changed them, and recognition at the
// calibrated thresholds with them.
const projectionDefault = "subspace"

// fitProjection is the first step of `eval folder DIR --calibrate OUT` for
// an embedder whose output_dim is not 128: it fits the projection to 128
// (eval.FitProjection, by method) on the raw outputs of the folder's
// photos, and sets it in cfg so the evaluation that follows, and the
// calibration written, are of the projected embeddings. A projection the
// configured calibration already carries for this model is kept instead:
// the projection is part of the embedding space (templates carry its
// digest), so re-calibrating must not change it; to refit, name no
// calibration, or another file.
func (m *Main) fitProjection(ctx context.Context, cfg *Config, pf photoFlags, dir string, labels []string, method string) error {
	if *pf.engine != "" {
		cfg.Vision.Engine = *pf.engine
	}
	desc := cfg.Vision.Embedder.Embedder
	if cfg.Vision.Engine != engineEmbedder || desc.OutputDim == models.Dim {
		return nil
	}
	if !slices.Contains(eval.ProjectionMethods, method) {
		return usagef("--projection %q: want one of %s", method, strings.Join(eval.ProjectionMethods, ", "))
	}
	if cal, err := cfg.loadCalibration(); err == nil && cal.Projection != nil {
		cfg.Vision.Embedder.Projection = cal.Projection
		fmt.Fprintf(m.Stderr, "keeping the projection of %s (%s, sha256 %s); name no calibration to fit a new one\n",
			cfg.Vision.Embedder.Calibration, cal.Projection.Method, cal.Projection.Digest())
		return nil
	}
	if err := desc.Validate(); err != nil {
		return invalid(fmt.Errorf("vision.embedder.%w", err))
	}
	e, err := vision.NewDNNEngineForFit(cfg.Models.Dir, desc, cfg.Vision.MaxPixels, cfg.Vision.MinFacePx)
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "%v (run `concierge models fetch`)", err)
	}
	defer e.Close()
	set, err := pf.photos(e, *cfg, 0.5).RawFolder(ctx, e, dir, labels)
	if err != nil {
		return inputOrInternal(err)
	}
	p, err := eval.FitProjection(set, method)
	if err != nil {
		return invalid(err)
	}
	cfg.Vision.Embedder.Projection = &p
	fmt.Fprintf(m.Stderr, "projection of %s from %d to %d values fitted (%s) on %d faces of %d people (%d photos without a face); it keeps %.1f %% of their variance\n",
		desc.Model, desc.OutputDim, models.Dim, p.Method, p.Faces, p.People, set.Misses, 100*p.Kept)
	return nil
}
