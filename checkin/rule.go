package checkin

import (
	"math"

	"concierge/enroll"
	"concierge/face"
)

// Rule is the arrival rule for one track, the one implementation of the
// decision: Service decides its tracks with it, and `concierge eval`
// decides its simulated visits with it, so the figures eval reports are
// the daemon's. It sees only the gallery's matches, never pixels or
// embeddings, which is what lets eval replay precomputed searches.
type Rule struct {
	// Match is the per-embedding rule; a face of the track names a customer
	// under Match.Face(), the fused embedding must meet Match itself.
	Match enroll.Rule `json:"match"`
	// Votes is how many faces must name the customer (Config.Votes).
	Votes int `json:"votes"`
}

// Rule is the configuration's arrival rule before calibration: the
// Service replaces the threshold with the calibrated one when that is
// stricter (Service.Calibrated).
func (c Config) Rule() Rule {
	return Rule{Match: enroll.Rule{Threshold: c.Threshold, Margin: c.Margin, FaceSlack: c.FaceSlack}, Votes: c.Votes}
}

// Tighten gives the stricter rule for one customer (Service.Strictness):
// extraVotes more votes and thresholdDelta added to the threshold. It
// can only tighten: a negative extraVotes or a positive thresholdDelta
// counts as zero.
type Tighten func(customerID string) (extraVotes int, thresholdDelta float64)

func (t Tighten) of(customerID string) (int, float64) {
	if t == nil {
		return 0, 0
	}
	extra, delta := t(customerID)
	return max(extra, 0), min(delta, 0)
}

// Verdict is where a track stands after Rule.Decide.
type Verdict uint8

const (
	// Undecided: the faces so far name nobody, or not yet with the votes
	// and the fused evidence the rule needs; another face may decide it.
	Undecided Verdict = iota
	// Arrives: the track is the arrival of Decision.Customer.
	Arrives
	// Conflict: faces name two customers; no later face can decide it.
	Conflict
)

// Decision is the outcome of Rule.Decide or Rule.Card.
type Decision struct {
	Verdict  Verdict
	Customer string
	// Votes are the faces that name Customer under the customer's rule.
	Votes int
	// Fused is the gallery's match of the track's fused embedding, when
	// the rule came to search it.
	Fused enroll.Match
}

// Decide applies the rule to the matches of a track's faces so far (a face
// the gallery found nobody for has a zero Match). A track is customer C
// when no face names anyone else under the rule's face rule, at least
// Votes faces name C under C's rule (tighten), and fused, the gallery's
// match of the quality-weighted mean of the faces (Fuse), names C under
// C's rule too, margin included. The mean is the fused evidence: one
// embedding of a turned head may be noisy, the mean of several is closer
// to the person's true template, and an embedding of someone else that
// crept into the track pulls it away. That is why one face may name C with
// the rule's FaceSlack while the mean must meet the threshold itself,
// which is calibrated on strangers' fused embeddings (docs/accuracy.md).
// fused is called only when the votes are there: a search costs.
func (r Rule) Decide(faces []enroll.Match, fused func() (enroll.Match, bool), tighten Tighten) Decision {
	cand := ""
	base := r.Match.Face()
	for _, m := range faces {
		if !base.Accept(m) {
			continue
		}
		if cand != "" && m.CustomerID != cand {
			// Two customers in one track: a tracker swap, a look-alike
			// pair or a bad enrollment. Neither may be alerted on this
			// evidence, and more embeddings cannot undo it.
			return Decision{Verdict: Conflict}
		}
		cand = m.CustomerID
	}
	if cand == "" {
		return Decision{}
	}
	extra, delta := tighten.of(cand)
	rule := r.Match
	rule.Threshold += delta
	d := Decision{Customer: cand, Votes: votes(faces, cand, rule.Face())}
	if d.Votes < r.Votes+extra {
		return d
	}
	fm, ok := fused()
	d.Fused = fm
	// The fused embedding must name C under C's rule, margin included:
	// with centroid scoring that costs under half a point of genuine
	// tracks on the Korean photos (docs/accuracy.md) and stops a track in
	// which two lucky frames of a stranger vote for C while the whole
	// track sits between C and someone else.
	if ok && fm.CustomerID == cand && rule.Accept(fm) {
		d.Verdict = Arrives
	}
	return d
}

// Card decides whether a track that ends unannounced becomes a "please
// verify" card for band, the band's outer threshold, which takes the place
// of the rule's threshold (the margin and face slack stay, and the rule's
// Unlearned, which the caller sets to the band's): the fused embedding of
// all its faces (fused, ok as the gallery returned them) names one customer
// within the band with the rule's margin, and no face names anyone else
// within the band (staff cannot be asked "is this C?" on evidence that also
// says someone else). Arrives means a card for Decision.Customer; the
// caller still applies the customer's cooldown.
func (r Rule) Card(band float64, faces []enroll.Match, fused enroll.Match, ok bool, tighten Tighten) Decision {
	if band <= 0 || !ok {
		return Decision{}
	}
	cand := fused.CustomerID
	_, delta := tighten.of(cand)
	rule := r.Match
	rule.Threshold = band + delta
	if !rule.Accept(fused) {
		return Decision{}
	}
	face := rule.Face()
	for _, m := range faces {
		if face.Accept(m) && m.CustomerID != cand {
			return Decision{Verdict: Conflict}
		}
	}
	return Decision{Verdict: Arrives, Customer: cand, Votes: votes(faces, cand, face), Fused: fused}
}

func votes(faces []enroll.Match, cand string, face enroll.Rule) int {
	n := 0
	for _, m := range faces {
		if m.CustomerID == cand && face.Accept(m) {
			n++
		}
	}
	return n
}

// Fuse is a track's fused embedding: the quality-weighted mean of its
// faces' embeddings (face.Mean), a sharp frontal face counting for more
// than a blurred one. weights may be nil (every face the same).
func Fuse(es []face.Embedding, weights []float64) face.Embedding {
	if weights == nil {
		return face.Mean(es, nil)
	}
	ws := make([]float64, len(weights))
	for i, w := range weights {
		ws[i] = math.Max(w, 1e-6)
	}
	return face.Mean(es, ws)
}
