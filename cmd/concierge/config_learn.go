package main

import (
	"fmt"
	"slices"
	"strings"

	"concierge/enroll"
	"concierge/kiosk"
)

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

// validateDoorConsents: a listed version is matched as written against
// what consents record, so a blank or padded one would silently cover no
// one; an empty list while learning is on learns from no one, which is
// what match.door_templates 0 says plainly.
func (m MatchConfig) validateDoorConsents() error {
	for _, v := range m.DoorConsentVersions {
		if v == "" || strings.TrimSpace(v) != v {
			return fmt.Errorf("match.door_consent_versions: %q is not a consent text version (e.g. %s)", v, kiosk.BuiltinConsentVersion)
		}
	}
	if m.DoorTemplates > 0 && len(m.DoorConsentVersions) == 0 {
		return fmt.Errorf("match.door_consent_versions: empty while match.door_templates is %d: list the consent text versions that cover learning from confirmed visits (the built-in: %s), or set match.door_templates 0", m.DoorTemplates, kiosk.BuiltinConsentVersion)
	}
	return nil
}

// doorPolicy is what a confirmed visit may teach (enroll.DoorPolicy): the
// measured policy, capped at match.door_templates, for customers whose
// consent text is listed in match.door_consent_versions.
func (c Config) doorPolicy() enroll.DoorPolicy {
	p := enroll.DefaultDoorPolicy
	p.Max = c.Match.DoorTemplates
	p.Consents = enroll.DoorConsents(slices.Clone(c.Match.DoorConsentVersions))
	return p
}

// kioskConsentVersion is the version of the texts the kiosks show, which
// every kiosk enrollment records.
func (c Config) kioskConsentVersion() string {
	if c.Kiosk.ConsentVersion == "" {
		return kiosk.BuiltinConsentVersion
	}
	return c.Kiosk.ConsentVersion
}
