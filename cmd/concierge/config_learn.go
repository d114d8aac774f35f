package main

// maxDoorTemplates is the most door templates match.door_templates may
// keep per customer: the shipped door factors were measured with 10, and
// more door faces can only cost more.
const maxDoorTemplates = 10

// doorFactor is the door factor in force: 0 when the daemon learns
// nothing (match.door_templates 0, or an engine whose calibration has no
// door_factor, as dlib's: its visits are too few on the idols to measure
// one, and it recognises too little to learn from). The calibrated
// thresholds hold the target for the tails' rate times it while learning
// is on.
func (c Config) doorFactor() float64 {
	if c.Match.DoorTemplates <= 0 {
		return 0
	}
	c.resolveEngine()
	return c.calibration().DoorFactor
}

// doorOffset is how much farther than the enrollment's a customer's door
// centroid counts (enroll.Gallery.SetGroupOffset on enroll.DoorGroup), as
// the door factor was measured. It applies whether or not learning is on:
// door templates left in the store are never scored looser than measured.
func (c Config) doorOffset() float64 {
	c.resolveEngine()
	return c.calibration().DoorOffset
}
