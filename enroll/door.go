package enroll

import (
	"slices"
	"time"

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
}

// DefaultDoorPolicy is the measured choice for the MobileFaceNets (Max;
// the offset is the engine calibration's). The photo simulation has no quality scores and no repeated
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
// caller sets ConsentID to the customer's consent in force and stores both
// in one transaction.
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
