package main

import (
	"fmt"

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
	cal, err := eval.Calibrate(rep, desc.Model, desc.SHA256, margin, slack)
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
