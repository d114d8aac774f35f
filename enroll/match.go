package enroll

import (
	"math"

	"concierge/face"
)

// Distance is the distance from probe to the customer's nearest centroid,
// group offsets added: the distance Search ranks by; ok is false when the
// gallery holds no template of the customer.
func (g *Gallery) Distance(probe *face.Embedding, customerID string) (d float64, ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	ci, ok := g.index[customerID]
	if !ok {
		return math.Inf(1), false
	}
	best := math.Inf(1)
	var c face.Embedding
	for _, r := range g.crows[ci] {
		g.centroid(int(r), &c)
		best = min(best, math.Sqrt(float64(face.SquaredDistance(&c, probe)))+g.rows[r].off)
	}
	return best, true
}

// MatchesCustomer reports whether faces of one person are the customer, by
// the rule the cameras use for a track: the faces' fused embedding within
// the recognition threshold in force (Recognition) of the customer's
// templates. It returns the distance (+Inf for a customer without
// templates, or no face). Kiosks use it before they let a customer number
// be re-enrolled or withdrawn without a supervisor.
func (s *Service) MatchesCustomer(customerID string, faces []face.Face) (bool, float64) {
	if len(faces) == 0 {
		return false, math.Inf(1)
	}
	es := make([]face.Embedding, len(faces))
	for i := range faces {
		es[i] = faces[i].Embedding
	}
	fused := face.Mean(es, nil)
	d, ok := s.Gallery.Distance(&fused, customerID)
	if !ok {
		return false, d
	}
	return d <= s.Recognition().Threshold, d
}
