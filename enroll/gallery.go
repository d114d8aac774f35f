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
// Search compares a probe with every template (a flat scan: 10,000
// customers with three templates each take about a millisecond) and scores
// per customer, not per template. It is safe for concurrent use.
type Gallery struct {
	model string

	mu    sync.RWMutex
	owner []int32   // customer index of each template, parallel to vecs
	vecs  []float32 // templates back to back, face.Dim floats each
	ids   []string  // customer id by index
	index map[string]int32
	count []int // templates per customer index
}

// NewGallery returns an empty gallery for embeddings of model.
func NewGallery(model string) *Gallery {
	return &Gallery{model: model, index: map[string]int32{}}
}

// Model is the embedding model the gallery holds.
func (g *Gallery) Model() string { return g.model }

// Load replaces the gallery's content with ts; templates of other models are
// ignored.
func (g *Gallery) Load(ts []Template) {
	fresh := NewGallery(g.model)
	fresh.add(ts)
	g.mu.Lock()
	g.owner, g.vecs, g.ids, g.index, g.count = fresh.owner, fresh.vecs, fresh.ids, fresh.index, fresh.count
	g.mu.Unlock()
}

// Add inserts templates; other models are ignored.
func (g *Gallery) Add(ts ...Template) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.add(ts)
}

func (g *Gallery) add(ts []Template) {
	for _, t := range ts {
		if t.Model != g.model {
			continue
		}
		ci, ok := g.index[t.CustomerID]
		if !ok {
			ci = int32(len(g.ids))
			g.index[t.CustomerID] = ci
			g.ids = append(g.ids, t.CustomerID)
			g.count = append(g.count, 0)
		}
		g.owner = append(g.owner, ci)
		g.vecs = append(g.vecs, t.Embedding[:]...)
		g.count[ci]++
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
	n := g.count[ci]
	// Rebuild without the customer: removal is rare (consent withdrawal)
	// and a compact layout keeps every search fast.
	fresh := NewGallery(g.model)
	for i, o := range g.owner {
		if o == ci {
			continue
		}
		var e face.Embedding
		copy(e[:], g.vecs[i*face.Dim:(i+1)*face.Dim])
		fresh.add([]Template{{CustomerID: g.ids[o], Embedding: e, Model: g.model}})
	}
	g.owner, g.vecs, g.ids, g.index, g.count = fresh.owner, fresh.vecs, fresh.ids, fresh.index, fresh.count
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
		return g.count[ci]
	}
	return 0
}

// bestPerCustomer returns the smallest squared distance from probe to each
// customer's templates, indexed like g.ids. The caller holds g.mu.
func (g *Gallery) bestPerCustomer(probe *face.Embedding) []float32 {
	best := make([]float32, len(g.ids))
	for i := range best {
		best[i] = float32(math.Inf(1))
	}
	for i, o := range g.owner {
		sum := face.SquaredDistance((*face.Embedding)(g.vecs[i*face.Dim:(i+1)*face.Dim]), probe)
		if sum < best[o] {
			best[o] = sum
		}
	}
	return best
}

// Search returns the best customer for the probe, skipping the customers in
// exclude. ok is false when the gallery holds nobody else.
//
// A customer's distance is the smallest distance to any of their templates
// (best-of-templates): several enrollment photos widen the set of poses and
// lighting that match, while the runner-up margin guards against a probe
// that sits between two customers.
func (g *Gallery) Search(probe *face.Embedding, exclude ...string) (m Match, ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	best := g.bestPerCustomer(probe)
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
	best := g.bestPerCustomer(probe)
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
}

// Accept reports whether m names a customer under the rule.
func (r Rule) Accept(m Match) bool {
	return m.CustomerID != "" && m.Distance <= r.Threshold && m.Margin >= r.Margin
}
