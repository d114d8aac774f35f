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
	ids   []string  // customer of each template, parallel to vecs
	vecs  []float32 // templates back to back, face.Dim floats each
	count map[string]int
}

// NewGallery returns an empty gallery for embeddings of model.
func NewGallery(model string) *Gallery {
	return &Gallery{model: model, count: map[string]int{}}
}

// Model is the embedding model the gallery holds.
func (g *Gallery) Model() string { return g.model }

// Load replaces the gallery's content with ts; templates of other models are
// ignored.
func (g *Gallery) Load(ts []Template) {
	ids := make([]string, 0, len(ts))
	vecs := make([]float32, 0, len(ts)*face.Dim)
	count := map[string]int{}
	for _, t := range ts {
		if t.Model != g.model {
			continue
		}
		ids = append(ids, t.CustomerID)
		vecs = append(vecs, t.Embedding[:]...)
		count[t.CustomerID]++
	}
	g.mu.Lock()
	g.ids, g.vecs, g.count = ids, vecs, count
	g.mu.Unlock()
}

// Add inserts templates; other models are ignored.
func (g *Gallery) Add(ts ...Template) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range ts {
		if t.Model != g.model {
			continue
		}
		g.ids = append(g.ids, t.CustomerID)
		g.vecs = append(g.vecs, t.Embedding[:]...)
		g.count[t.CustomerID]++
	}
}

// Remove drops every template of the customer and reports how many there were.
func (g *Gallery) Remove(customerID string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.count[customerID]
	if n == 0 {
		return 0
	}
	j := 0
	for i, id := range g.ids {
		if id == customerID {
			continue
		}
		g.ids[j] = id
		copy(g.vecs[j*face.Dim:(j+1)*face.Dim], g.vecs[i*face.Dim:(i+1)*face.Dim])
		j++
	}
	g.ids = g.ids[:j]
	g.vecs = g.vecs[:j*face.Dim]
	delete(g.count, customerID)
	return n
}

// Customers is the number of customers in the gallery.
func (g *Gallery) Customers() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.count)
}

// Templates is the number of templates of the customer in the gallery.
func (g *Gallery) Templates(customerID string) int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.count[customerID]
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
	best := map[string]float32{}
	for i, id := range g.ids {
		if len(exclude) > 0 && contains(exclude, id) {
			continue
		}
		v := g.vecs[i*face.Dim : (i+1)*face.Dim]
		var sum float32
		for k, x := range v {
			d := x - probe[k]
			sum += d * d
		}
		if b, seen := best[id]; !seen || sum < b {
			best[id] = sum
		}
	}
	if len(best) == 0 {
		return Match{}, false
	}
	type cand struct {
		id string
		d  float32
	}
	top := []cand{{"", float32(math.Inf(1))}, {"", float32(math.Inf(1))}}
	for id, d := range best {
		switch {
		case d < top[0].d || (d == top[0].d && id < top[0].id):
			top[1] = top[0]
			top[0] = cand{id, d}
		case d < top[1].d || (d == top[1].d && id < top[1].id):
			top[1] = cand{id, d}
		}
	}
	m = Match{CustomerID: top[0].id, Distance: math.Sqrt(float64(top[0].d)), Margin: math.Inf(1)}
	if top[1].id != "" {
		m.RunnerUp = top[1].id
		m.Margin = math.Sqrt(float64(top[1].d)) - m.Distance
	}
	return m, true
}

// Nearest returns up to k customers ordered by distance, for diagnostics
// and evaluation.
func (g *Gallery) Nearest(probe *face.Embedding, k int) []Match {
	g.mu.RLock()
	best := map[string]float64{}
	for i, id := range g.ids {
		v := (*face.Embedding)(g.vecs[i*face.Dim : (i+1)*face.Dim])
		d := face.Distance(v, probe)
		if b, seen := best[id]; !seen || d < b {
			best[id] = d
		}
	}
	g.mu.RUnlock()
	out := make([]Match, 0, len(best))
	for id, d := range best {
		out = append(out, Match{CustomerID: id, Distance: d})
	}
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

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
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
