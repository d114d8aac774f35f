package main

// maxDoorTemplates is the most door templates match.door_templates may
// keep per customer: the door factors below were measured with 10, and
// more door faces can only cost more.
const maxDoorTemplates = 10

// engineDoorFactors are how many times a customer's door templates (the
// last 10 faces of visits staff confirmed) multiply a stranger's chance of
// being taken for them, measured by `concierge eval visits` on the kpop
// photos (docs/accuracy.md, "Learning from confirmed visits") as the
// gallery scores them: a centroid of their own (group enroll.DoorGroup)
// beside the enrollment's, the customer's distance the nearest of the two
// (`--door mean --door-cap 10 --door-penalty 0`). The calibrated
// thresholds hold the target for the tails' rate times the factor while
// learning is on.
// dlib has none: its visits are too few on the idols to measure one, and
// it recognises too little to learn from.
var engineDoorFactors = map[string]float64{
	engineFoamliu:       2.94,
	engineMobileFaceNet: 3.40,
}

// doorFactor is the door factor in force: 0 when the daemon learns
// nothing (match.door_templates 0, or an engine without a measured factor).
func (c Config) doorFactor() float64 {
	if c.Match.DoorTemplates <= 0 {
		return 0
	}
	c.resolveEngine()
	return engineDoorFactors[c.Vision.Engine]
}
