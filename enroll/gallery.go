package enroll

import (
	"math"
	"sort"
	"sync"

	"concierge/face"
)

// Match is the result of a 1:N search: the closest customer, how close, and
// how far ahead of the runner-up.
type Match struct {
	CustomerID string  `json:"customer_id"`
	Distance   float64 `json:"distance"`
	// RunnerUp is the second-closest customer ("" when the gallery holds
	// only one) and Margin the gap between the two distances; +Inf when
	// there is no runner-up.
	RunnerUp string  `json:"runner_up,omitempty"`
	Margin   float64 `json:"margin"`
}

// Gallery is the in-memory index of every consented template of one model.
// It scores a probe against each customer's centroid: the mean of the
// customer's templates, put back on the unit sphere when the engine's
// embeddings live there. Measured on East Asian faces (docs/accuracy.md),
// the centroid beats the nearest template and the mean of the two nearest
// at every operating point and for both engines: one lucky template no
// longer decides alone, and the average of several photos sits nearer the
// person than any one of them. Search is a flat scan of the centroids
// (10,000 customers take well under a millisecond). It is safe for
// concurrent use.
type Gallery struct {
	model string

	mu    sync.RWMutex
	cents []float32 // centroids back to back, face.Dim floats each, by customer index
	ids   []string  // customer id by index
	index map[string]int
	tmpls [][]face.Embedding // each customer's templates, to recompute the centroid
}

// NewGallery returns an empty gallery for embeddings of model.
func NewGallery(model string) *Gallery {
	return &Gallery{model: model, index: map[string]int{}}
}

// Model is the embedding model the gallery holds.
func (g *Gallery) Model() string { return g.model }

// Load replaces the gallery's content with ts; templates of other models are
// ignored.
func (g *Gallery) Load(ts []Template) {
	fresh := NewGallery(g.model)
	fresh.add(ts)
	g.mu.Lock()
	g.cents, g.ids, g.index, g.tmpls = fresh.cents, fresh.ids, fresh.index, fresh.tmpls
	g.mu.Unlock()
}

// Add inserts templates; other models are ignored.
func (g *Gallery) Add(ts ...Template) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.add(ts)
}

func (g *Gallery) add(ts []Template) {
	touched := map[int]bool{}
	for _, t := range ts {
		if t.Model != g.model {
			continue
		}
		ci, ok := g.index[t.CustomerID]
		if !ok {
			ci = len(g.ids)
			g.index[t.CustomerID] = ci
			g.ids = append(g.ids, t.CustomerID)
			g.tmpls = append(g.tmpls, nil)
			g.cents = append(g.cents, make([]float32, face.Dim)...)
		}
		g.tmpls[ci] = append(g.tmpls[ci], t.Embedding)
		touched[ci] = true
	}
	for ci := range touched {
		c := face.Mean(g.tmpls[ci], nil)
		copy(g.cents[ci*face.Dim:], c[:])
	}
}

// Remove drops every template of the customer and reports how many there were.
func (g *Gallery) Remove(customerID string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	ci, ok := g.index[customerID]
	if !ok {
		return 0
	}
	n := len(g.tmpls[ci])
	// Move the last customer into the hole, so that the scan stays dense.
	last := len(g.ids) - 1
	if ci != last {
		g.ids[ci], g.tmpls[ci] = g.ids[last], g.tmpls[last]
		copy(g.cents[ci*face.Dim:(ci+1)*face.Dim], g.cents[last*face.Dim:])
		g.index[g.ids[ci]] = ci
	}
	// Clear what is cut off: deletion must not leave a template behind in
	// a slice's spare capacity.
	clear(g.cents[last*face.Dim:])
	g.tmpls[last] = nil
	g.ids, g.tmpls, g.cents = g.ids[:last], g.tmpls[:last], g.cents[:last*face.Dim]
	delete(g.index, customerID)
	return n
}

// Customers is the number of customers in the gallery.
func (g *Gallery) Customers() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.ids)
}

// Templates is the number of templates of the customer in the gallery.
func (g *Gallery) Templates(customerID string) int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if ci, ok := g.index[customerID]; ok {
		return len(g.tmpls[ci])
	}
	return 0
}

// scores returns the squared distance from probe to each customer's
// centroid, indexed like g.ids. The caller holds g.mu.
func (g *Gallery) scores(probe *face.Embedding) []float32 {
	out := make([]float32, len(g.ids))
	for ci := range out {
		out[ci] = face.SquaredDistance((*face.Embedding)(g.cents[ci*face.Dim:(ci+1)*face.Dim]), probe)
	}
	return out
}

// Search returns the best customer for the probe, skipping the customers in
// exclude. ok is false when the gallery holds nobody else.
//
// A customer's distance is the distance to their centroid; the runner-up
// margin guards against a probe that sits between two customers.
func (g *Gallery) Search(probe *face.Embedding, exclude ...string) (m Match, ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	best := g.scores(probe)
	for _, id := range exclude {
		if ci, ok := g.index[id]; ok {
			best[ci] = float32(math.Inf(1))
		}
	}
	first, second := -1, -1
	for ci, d := range best {
		if math.IsInf(float64(d), 1) {
			continue
		}
		switch {
		case first < 0 || d < best[first]:
			second, first = first, ci
		case second < 0 || d < best[second]:
			second = ci
		}
	}
	if first < 0 {
		return Match{}, false
	}
	m = Match{CustomerID: g.ids[first], Distance: math.Sqrt(float64(best[first])), Margin: math.Inf(1)}
	if second >= 0 {
		m.RunnerUp = g.ids[second]
		m.Margin = math.Sqrt(float64(best[second])) - m.Distance
	}
	return m, true
}

// Nearest returns up to k customers ordered by distance, for diagnostics
// and evaluation.
func (g *Gallery) Nearest(probe *face.Embedding, k int) []Match {
	g.mu.RLock()
	best := g.scores(probe)
	out := make([]Match, 0, len(best))
	for ci, d := range best {
		out = append(out, Match{CustomerID: g.ids[ci], Distance: math.Sqrt(float64(d))})
	}
	g.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Distance != out[j].Distance {
			return out[i].Distance < out[j].Distance
		}
		return out[i].CustomerID < out[j].CustomerID
	})
	if len(out) > k {
		out = out[:k]
	}
	for i := range out {
		out[i].Margin = math.Inf(1)
		if i+1 < len(out) {
			out[i].Margin = out[i+1].Distance - out[i].Distance
		}
	}
	return out
}

// Rule is the open-set decision: a probe is customer C only when it is close
// enough to C and clearly closer to C than to anyone else. Everything else
// is a stranger, whose face is then forgotten.
type Rule struct {
	Threshold float64 `json:"threshold"`
	Margin    float64 `json:"margin"`
	// FaceSlack matters only for a track of several faces, which is decided
	// on its fused embedding under Threshold: one face of it may name C
	// (vote for C, or stop the track by naming someone else) up to this much
	// farther (Face). The mean of a visit's faces is far nearer the person's
	// templates than any one face is, while no face may be accepted on its
	// own beyond Threshold: a one-face track's fused embedding is that face.
	FaceSlack float64 `json:"face_slack,omitempty"`
}

// Face is the rule one face of a track must meet to name a customer.
func (r Rule) Face() Rule {
	return Rule{Threshold: r.Threshold + r.FaceSlack, Margin: r.Margin}
}

// Accept reports whether m names a customer under the rule.
func (r Rule) Accept(m Match) bool {
	return m.CustomerID != "" && m.Distance <= r.Threshold && m.Margin >= r.Margin
}
