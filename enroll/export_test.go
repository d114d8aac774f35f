package enroll

import "concierge/face"

// ExactSearch is the plain float32 scan Search must agree with; cents from
// Centroids makes repeated scans cheaper, nil recomputes the centroids.
func (g *Gallery) ExactSearch(cents []float32, probe *face.Embedding, exclude ...string) (Match, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.exactSearch(cents, probe, exclude)
}

// Centroids returns every row's centroid, face.Dim floats a row.
func (g *Gallery) Centroids() []float32 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.centroids()
}
