package enroll

import (
	"errors"
	"slices"
	"strings"
	"time"

	"concierge"
	"concierge/face"
)

// DoorGroup is the gallery group of a customer's door templates: one
// centroid of their last confirmed door faces, scored next to the
// enrollment's (docs/accuracy.md, "Learning from confirmed visits").
const DoorGroup = "door"

// DoorPolicy is what a visit staff confirmed may add to the gallery. The
// return-visit simulation (`concierge eval visits`) chose it: the mean of
// a customer's last Max door faces as one centroid (DoorGroup), its
// distance counted the calibration's door offset farther than the
// enrollment's (Calibration.DoorOffset, Gallery.SetGroupOffset), so that
// the door rows add little to strangers' chances (Calibration.DoorFactor)
// while later visits are recognised far more often.
type DoorPolicy struct {
	// Max is the number of door faces a customer keeps, the oldest
	// replaced (match.door_templates); 0 turns learning off.
	Max int
	// MinQuality is the least face.Quality.Score a face needs: a blurred
	// or turned face teaches the centroid noise. (A door template keeps no
	// quality breakdown: checkin holds only the score.)
	MinQuality float64
	// Dedupe skips a face within this distance of one of the customer's
	// templates (or of a face already taken from the visit): it adds no
	// knowledge, only weight.
	Dedupe float64
	// Consents are the consent texts whose wording covers door templates
	// (match.door_consent_versions); the store refuses them for a customer
	// whose consent in force was given on any other text.
	Consents DoorConsents
}

// ErrConsentNotCovered is why a store refused door templates: the
// customer's consent in force was given on a text that does not cover
// them (DoorConsents.Check). Templates from the entrance camera are a
// purpose the customer must have agreed to in the words they signed, so
// the customer learns nothing until they sign a text that covers it.
var ErrConsentNotCovered = errors.New("the consent text in force does not cover learning from confirmed visits")

// DoorConsents lists the consent text versions whose wording covers door
// templates: the built-in texts from 2026-12-v3 on (kiosk), or a bank's
// own versions that say so. Empty covers no one.
type DoorConsents []string

// Covers reports whether a consent recorded with textVersion covers door
// templates. The kiosk records "<version>@sha256:<16 hex digits>" and the
// CLI the version as typed: the part before the '@' must be listed, or
// the whole string when a listed entry pins the text's hash too.
func (v DoorConsents) Covers(textVersion string) bool {
	base, _, _ := strings.Cut(textVersion, "@")
	for _, c := range v {
		if c == textVersion || c == base && base != "" {
			return true
		}
	}
	return false
}

// Check returns nil when a consent recorded with textVersion covers door
// templates, and otherwise an ECONFLICT error wrapping
// ErrConsentNotCovered (its message names the version, not the customer).
func (v DoorConsents) Check(textVersion string) error {
	if v.Covers(textVersion) {
		return nil
	}
	return concierge.Errorf(concierge.ECONFLICT, "consent text %q: %w", textVersion, ErrConsentNotCovered)
}

// DefaultDoorPolicy is the measured choice for the MobileFaceNets (Max;
// the offset is the engine calibration's); its Consents are the caller's
// to set (the daemon: match.door_consent_versions). The photo simulation has no quality scores and no repeated
// frames, so MinQuality (checkin's embedding gate) and Dedupe (a tenth of
// a MobileFaceNet's genuine distances lie under it) are not measured by
// it: they keep a customer who stood still from filling the cap with one
// frame.
var DefaultDoorPolicy = DoorPolicy{Max: 10, MinQuality: 0.5, Dedupe: 0.3}

// DoorFace is a face of a confirmed visit, held in memory only for the
// claim window: its embedding and its quality (face.Quality.Score).
type DoorFace struct {
	Embedding face.Embedding
	Quality   float64
}

// Learn decides what a confirmed visit of a customer adds: new door
// templates (best quality first, at most Max, none a near-duplicate of
// the customer's templates, have) and the customer's existing door
// templates to delete so that at most Max remain, oldest first. The
// caller stores both in one transaction under the customer's consent in
// force, if Consents covers it.
func (p DoorPolicy) Learn(customerID, model string, have []Template, visit []DoorFace, at time.Time) (add, drop []Template) {
	if p.Max <= 0 || len(visit) == 0 {
		return nil, nil
	}
	fs := slices.Clone(visit)
	slices.SortStableFunc(fs, func(a, b DoorFace) int {
		qa, qb := a.Quality, b.Quality
		switch {
		case qa > qb:
			return -1
		case qa < qb:
			return 1
		}
		return 0
	})
	near := func(e *face.Embedding) bool {
		w := float32(p.Dedupe * p.Dedupe)
		for i := range have {
			if have[i].Model == model && face.SquaredDistance(&have[i].Embedding, e) <= w {
				return true
			}
		}
		for i := range add {
			if face.SquaredDistance(&add[i].Embedding, e) <= w {
				return true
			}
		}
		return false
	}
	for _, f := range fs {
		if len(add) >= p.Max || f.Quality < p.MinQuality || p.Dedupe > 0 && near(&f.Embedding) {
			continue
		}
		add = append(add, Template{CustomerID: customerID, Embedding: f.Embedding,
			Model: model, Created: at, Source: SourceDoor, Group: DoorGroup})
	}
	var doors []Template
	for _, t := range have {
		if t.Source == SourceDoor && t.Model == model {
			doors = append(doors, t)
		}
	}
	slices.SortStableFunc(doors, func(a, b Template) int { return a.Created.Compare(b.Created) })
	if over := len(doors) + len(add) - p.Max; over > 0 {
		drop = doors[:min(over, len(doors))]
	}
	return add, drop
}
