package main

import "concierge/checkin"

// The arrival rule has two homes by design and no third: its type and
// defaults live in checkin (checkin.Config, checkin.DefaultConfig), and
// the mapping from this file's keys to it is wiring, here, in
// checkinConfig. The daemon, `concierge eval` and `concierge bench` all
// take their rule from checkinConfig, so a key the daemon honours is
// honoured by the commands that measure it.

// defaultCheckinConfig is the checkin section of DefaultConfig, taken from
// checkin.DefaultConfig so that the file's defaults are the package's.
func defaultCheckinConfig() CheckinConfig {
	d := checkin.DefaultConfig()
	return CheckinConfig{
		Votes:            d.Votes,
		MaxEmbeddings:    d.MaxEmbeddings,
		MinEmbedInterval: d.MinEmbedInterval,
		ConfirmInterval:  d.ConfirmInterval,
		Cooldown:         d.Cooldown,
		TrackTimeout:     d.TrackTimeout,
		Retention:        checkin.DefaultRetention,
		NameMask:         "surname",
	}
}

// checkinConfig is the check-in rule the configuration sets: the match
// rule (match.*, the engine's defaults where unset; the daemon's Service
// tightens the threshold to the calibrated one), the checkin keys, and
// the least face size. A camera may lower vision.min_face_px for itself
// (cameras[].min_face_px) and gates its own faces by it, so check-in
// takes the smallest size any camera passes on: a larger one here would
// silently undo the override.
func (c Config) checkinConfig() checkin.Config {
	cc := checkin.DefaultConfig()
	cc.Branch = c.Branch
	rule := c.rule()
	cc.Threshold, cc.Margin, cc.FaceSlack = rule.Threshold, rule.Margin, rule.FaceSlack
	k := c.Checkin
	cc.Votes, cc.MaxEmbeddings = k.Votes, k.MaxEmbeddings
	cc.MinEmbedInterval, cc.ConfirmInterval = k.MinEmbedInterval, k.ConfirmInterval
	cc.Cooldown, cc.TrackTimeout = k.Cooldown, k.TrackTimeout
	cc.MinFacePx = c.Vision.MinFacePx
	for _, cam := range c.Cameras {
		if cam.MinFacePx > 0 {
			cc.MinFacePx = min(cc.MinFacePx, cam.MinFacePx)
		}
	}
	return cc
}
