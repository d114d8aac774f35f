package enroll

import (
	"fmt"
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
	// Learned: the customer holds a door row (DoorGroup), learned from
	// visits staff confirmed. Rule.Unlearned applies to those who do not.
	Learned bool `json:"learned,omitempty"`
}

// Gallery is the in-memory index of every consented template of one model.
//
// It keeps one row per customer and Template.Group: the row's centroid is
// face.Mean of that group's templates (the mean put back on the unit
// sphere when the engine's embeddings live there). A customer's distance is
// the distance to the nearest of their rows; Match.RunnerUp and Margin are
// between customers, so a customer's second row never becomes their own
// runner-up. Measured on East Asian faces (docs/accuracy.md), the centroid
// beats the nearest template and the mean of the two nearest at every
// operating point and for both engines: one lucky template no longer
// decides alone, and the average of several photos sits nearer the person
// than any one of them. Groups let faces of another kind (door faces, say)
// form centroids of their own instead of pulling the enrollment centroid.
// A group may be scored stricter (SetGroupOffset): a customer's distance is
// then the least, over their rows, of the distance to the row's centroid
// plus its group's offset (0 unless set, as for the enrollment's), and
// Match.Distance, RunnerUp and Margin are those penalised distances.
//
// Search is exact: it returns what a plain float32 scan of the centroids
// (exactSearch) returns, bit for bit. It first scans 7-bit codes of the
// centroids (a quarter of their memory, 32 products an instruction with
// AVX2), bounds each code's error, and re-checks in float32 every row the
// bound cannot rule out of the best two customers.
//
// Templates themselves are not kept: each row holds the float64 sum of its
// templates, from which its centroid is recomputed exactly as face.Mean
// would, so that Add can extend a row. It is safe for concurrent use.
type Gallery struct {
	model string

	mu    sync.RWMutex
	ids   []string       // customer id by customer index
	index map[string]int // customer index by id
	crows [][]int32      // each customer's rows
	rows  []row
	sums  []float64 // each row's sum of embeddings, face.Dim back to back
	// codes holds the rows' 7-bit codes in blocks of 8 rows, face.Dim
	// words (1 KB) a block: 32 bytes for each 4 dimensions, 4 bytes a row
	// (codePos), which is what one AVX2 instruction multiplies.
	codes []uint64
	rq    []rowCode
	// center is subtracted from centroids and probes before they are coded:
	// distances do not change, and the codes then spend their 7 bits on
	// where faces differ instead of on what all faces of a model share
	// (dlib's descriptors share most of their length). It is the mean of
	// the centroids when the rows last doubled (recenter).
	center   [face.Dim]float64
	centerN2 float64 // |center|²
	centered int     // rows at the last recenter
	// Bounds over every row for the code error (enMax: the norm of a row's
	// centroid minus its decoded code) and the centroid norm. Removals leave
	// them as they were: a larger bound is still a bound.
	enMax, cnMax float64
	// offsets are the groups' offsets (SetGroupOffset); each row holds its
	// group's in row.off.
	offsets map[string]float64

	scratch sync.Pool // *searchScratch
}

type row struct {
	cust  int32 // customer index
	n     int32 // templates summed
	unit  bool  // every template is a unit vector, as face.Mean checks
	group string
	off   float64 // the group's offset, added to the row's distance
}

// rowCode is what the scan needs of a row: the code's scale and the
// centroid's squared norm.
type rowCode struct{ s, cn2 float64 }

// The codes: a centroid value c is coded as v = round(c/s), |v| ≤ qMax,
// and stored as the unsigned byte v+qOff, as VPMADDUBSW wants one factor;
// the probe's codes w, of the same range, are the signed factor. Two
// products, 2·127·63, fit an int16 without saturating.
const (
	qMax   = 63
	qOff   = 64
	blk    = 8              // rows per block
	patLen = blk * face.Dim // bytes of a block, and of the probe's pattern
)

// codePos is the word and bit of row r's code of dimension k.
func codePos(r, k int) (int, uint) {
	off := k/4*32 + r%blk*4 + k%4
	return r/blk*face.Dim + off/8, uint(off%8) * 8
}

type searchScratch struct {
	pat   [patLen]int8
	cand  []candidate
	lanes []int32
}

type candidate struct {
	row int32
	a   float64
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
	fresh.reserve(ts)
	fresh.add(ts)
	g.mu.Lock()
	g.ids, g.index, g.crows = fresh.ids, fresh.index, fresh.crows
	g.rows, g.sums, g.codes, g.rq = fresh.rows, fresh.sums, fresh.codes, fresh.rq
	g.enMax, g.cnMax = fresh.enMax, fresh.cnMax
	g.center, g.centerN2, g.centered = fresh.center, fresh.centerN2, fresh.centered
	if len(g.offsets) > 0 {
		for r := range g.rows {
			g.rows[r].off = g.offsets[g.rows[r].group]
		}
	}
	g.mu.Unlock()
}

// SetGroupOffset makes the group's rows count offset farther than their
// centroid is, from now on: a stricter rule for faces of another kind
// whose rows would otherwise add to strangers' chances (door templates,
// DoorGroup). Offset 0 scores the group as the enrollment's.
func (g *Gallery) SetGroupOffset(group string, offset float64) error {
	if !(offset >= 0) || math.IsInf(offset, 1) {
		return fmt.Errorf("enroll: offset %v of group %q: want a finite distance, not negative", offset, group)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if offset == 0 {
		delete(g.offsets, group)
	} else {
		if g.offsets == nil {
			g.offsets = map[string]float64{}
		}
		g.offsets[group] = offset
	}
	for r := range g.rows {
		if g.rows[r].group == group {
			g.rows[r].off = offset
		}
	}
	return nil
}

// reserve sizes an empty gallery's arrays for ts, so that a large load
// does not leave the spare capacity of appends behind.
func (g *Gallery) reserve(ts []Template) {
	type key struct{ cust, group string }
	seen := map[key]struct{}{}
	custs := map[string]struct{}{}
	for i := range ts {
		if ts[i].Model == g.model {
			seen[key{ts[i].CustomerID, ts[i].Group}] = struct{}{}
			custs[ts[i].CustomerID] = struct{}{}
		}
	}
	nr := len(seen)
	g.ids = make([]string, 0, len(custs))
	g.crows = make([][]int32, 0, len(custs))
	g.index = make(map[string]int, len(custs))
	g.rows = make([]row, 0, nr)
	g.sums = make([]float64, 0, nr*face.Dim)
	g.codes = make([]uint64, 0, (nr+blk-1)/blk*face.Dim)
	g.rq = make([]rowCode, 0, nr)
}

// Add inserts templates; other models are ignored.
func (g *Gallery) Add(ts ...Template) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.add(ts)
}

// Set replaces every row of the customer with ts, at once: searches see
// the customer either as before or as after. Templates of other models or
// other customers are ignored; with none left the customer is removed. It
// reloads one customer after a template was added or removed in the store.
func (g *Gallery) Set(customerID string, ts []Template) {
	mine := make([]Template, 0, len(ts))
	for _, t := range ts {
		if t.Model == g.model && t.CustomerID == customerID {
			mine = append(mine, t)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(mine) == 0 {
		g.remove(customerID)
		return
	}
	if ci, ok := g.index[customerID]; ok {
		for len(g.crows[ci]) > 0 {
			g.removeRow(int(g.crows[ci][len(g.crows[ci])-1]))
		}
	}
	g.add(mine)
}

func (g *Gallery) add(ts []Template) {
	var touched []int
	seen := map[int]bool{}
	for i := range ts {
		t := &ts[i]
		if t.Model != g.model {
			continue
		}
		ci, ok := g.index[t.CustomerID]
		if !ok {
			ci = len(g.ids)
			g.index[t.CustomerID] = ci
			g.ids = append(g.ids, t.CustomerID)
			g.crows = append(g.crows, nil)
		}
		r := g.rowOf(ci, t.Group)
		sum := g.sums[r*face.Dim : (r+1)*face.Dim]
		// The same sums, in the same order, as face.Mean's.
		var n float64
		for k, v := range t.Embedding {
			sum[k] += float64(v)
			n += float64(v) * float64(v)
		}
		rw := &g.rows[r]
		rw.unit = (rw.n == 0 || rw.unit) && math.Abs(n-1) < 1e-3
		rw.n++
		if !seen[r] {
			seen[r] = true
			touched = append(touched, r)
		}
	}
	if len(g.rows) >= 2*max(g.centered, 32) {
		g.recenter()
		return
	}
	for _, r := range touched {
		g.quantize(r)
	}
}

// recenter moves the center to the mean of the centroids and codes every
// row again. The gallery does it when its rows have doubled, so the cost
// per row stays constant.
func (g *Gallery) recenter() {
	var sum [face.Dim]float64
	var c face.Embedding
	for r := range g.rows {
		g.centroid(r, &c)
		for k, v := range c {
			sum[k] += float64(v)
		}
	}
	g.centerN2 = 0
	for k := range sum {
		g.center[k] = sum[k] / float64(len(g.rows))
		g.centerN2 += g.center[k] * g.center[k]
	}
	g.enMax, g.cnMax = 0, 0
	for r := range g.rows {
		g.quantize(r)
	}
	g.centered = len(g.rows)
}

// rowOf returns the customer's row of the group, appending an empty one.
func (g *Gallery) rowOf(ci int, group string) int {
	for _, r := range g.crows[ci] {
		if g.rows[r].group == group {
			return int(r)
		}
	}
	r := len(g.rows)
	g.rows = append(g.rows, row{cust: int32(ci), group: group, off: g.offsets[group]})
	g.sums = append(g.sums, make([]float64, face.Dim)...)
	g.rq = append(g.rq, rowCode{})
	if r%blk == 0 {
		g.codes = append(g.codes, make([]uint64, face.Dim)...)
	}
	g.crows[ci] = append(g.crows[ci], int32(r))
	return r
}

// centroid is row r's centroid, bit for bit face.Mean of its templates.
func (g *Gallery) centroid(r int, out *face.Embedding) {
	sum := (*[face.Dim]float64)(g.sums[r*face.Dim:])
	n := g.rows[r].n
	if n == 1 {
		for k := range out {
			out[k] = float32(sum[k])
		}
		return
	}
	w := float64(n)
	for k := range out {
		out[k] = float32(sum[k] / w)
	}
	if g.rows[r].unit {
		out.Normalize()
	}
}

// quantize codes row r's centroid c less the center: v = round(c/s) with
// s = max|c|/qMax.
func (g *Gallery) quantize(r int) {
	var ce face.Embedding
	g.centroid(r, &ce)
	var c [face.Dim]float64
	var mx, cn2 float64
	for k, v := range ce {
		x := float64(v) - g.center[k]
		c[k] = x
		cn2 += x * x
		mx = max(mx, math.Abs(x))
	}
	s := mx / qMax
	var en2 float64
	for k, v := range c {
		w := code(v, s)
		e := v - s*float64(w)
		en2 += e * e
		i, sh := codePos(r, k)
		g.codes[i] = g.codes[i]&^(0xFF<<sh) | uint64(w+qOff)<<sh
	}
	g.rq[r] = rowCode{s: s, cn2: cn2}
	g.enMax = max(g.enMax, math.Sqrt(en2))
	g.cnMax = max(g.cnMax, math.Sqrt(cn2))
}

func code(x, s float64) int64 {
	if !(s > 0) {
		return 0
	}
	return int64(max(-qMax, min(qMax, math.Round(x/s))))
}

// removeRow drops row r, moving the last row into its place so that the
// scan stays dense.
func (g *Gallery) removeRow(r int) {
	ci := g.rows[r].cust
	g.crows[ci] = deleteRow(g.crows[ci], int32(r))
	last := len(g.rows) - 1
	if r != last {
		g.rows[r], g.rq[r] = g.rows[last], g.rq[last]
		copy(g.sums[r*face.Dim:(r+1)*face.Dim], g.sums[last*face.Dim:])
		for k := range face.Dim {
			li, ls := codePos(last, k)
			ri, rs := codePos(r, k)
			g.codes[ri] = g.codes[ri]&^(0xFF<<rs) | (g.codes[li]>>ls&0xFF)<<rs
		}
		mc := g.rows[r].cust
		for i, x := range g.crows[mc] {
			if x == int32(last) {
				g.crows[mc][i] = int32(r)
			}
		}
	}
	// Clear what is cut off: deletion must not leave a template's trace
	// behind in a slice's spare capacity.
	clear(g.sums[last*face.Dim:])
	for k := range face.Dim {
		i, sh := codePos(last, k)
		g.codes[i] &^= 0xFF << sh
	}
	g.rows[last], g.rq[last] = row{}, rowCode{}
	g.rows, g.rq, g.sums = g.rows[:last], g.rq[:last], g.sums[:last*face.Dim]
	if last%blk == 0 {
		g.codes = g.codes[:last/blk*face.Dim]
	}
}

func deleteRow(rs []int32, r int32) []int32 {
	for i, x := range rs {
		if x == r {
			rs[i] = rs[len(rs)-1]
			return rs[:len(rs)-1]
		}
	}
	return rs
}

// Remove drops every template of the customer and reports how many there were.
func (g *Gallery) Remove(customerID string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.remove(customerID)
}

func (g *Gallery) remove(customerID string) int {
	ci, ok := g.index[customerID]
	if !ok {
		return 0
	}
	n := 0
	for len(g.crows[ci]) > 0 {
		r := int(g.crows[ci][len(g.crows[ci])-1])
		n += int(g.rows[r].n)
		g.removeRow(r)
	}
	// Move the last customer into the hole, as their rows move in theirs.
	last := len(g.ids) - 1
	if ci != last {
		g.ids[ci], g.crows[ci] = g.ids[last], g.crows[last]
		g.index[g.ids[ci]] = ci
		for _, r := range g.crows[ci] {
			g.rows[r].cust = int32(ci)
		}
	}
	g.ids[last], g.crows[last] = "", nil
	g.ids, g.crows = g.ids[:last], g.crows[:last]
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
	n := 0
	if ci, ok := g.index[customerID]; ok {
		for _, r := range g.crows[ci] {
			n += int(g.rows[r].n)
		}
	}
	return n
}

// Search returns the best customer for the probe, skipping the customers in
// exclude. ok is false when the gallery holds nobody else.
//
// A customer's distance is the distance to their nearest centroid, each
// centroid's group offset added; the runner-up margin guards against a
// probe that sits between two customers.
func (g *Gallery) Search(probe *face.Embedding, exclude ...string) (m Match, ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.search(probe, exclude)
}

// search scans the codes, then re-checks in float32 every row that may be
// one of the best two customers.
//
// With p the probe and c a row's centroid, both less the center, the code
// of p is t·w (t = max|p|/qMax, w integer) and of c s·v, so p·c = s·t·(w·v) + t·w·(c−s·v) + (p−t·w)·c, and by
// Cauchy–Schwarz the last two terms are at most ‖t·w‖·enMax + ‖p−t·w‖·cnMax.
// From |p−c|² = |p|² + |c|² − 2·p·c each row's approximate squared
// distance a is within delta of its float32 squared distance (delta also
// covers float32 rounding). The second-best customer by a, at a2, is then
// at most a2+delta away, and a row with a > a2+2·delta is farther than
// that: it is neither the best nor the runner-up, which the re-check of
// the other rows decides as the plain scan does.
//
// Group offsets are added to distances, not to squared distances, so the
// scan keeps its bounds as distances: a row's penalised distance lies
// between √(a+|p|²−delta)+off and √(a+|p|²+delta)+off, u2 is the second
// customer's least upper bound, and a row whose lower bound exceeds u2 is
// out. Offsets are never negative, so the squared threshold of rows
// without one, u2²−|p|²+delta (a2+2·delta when no row has an offset),
// rules out every row it rules out without a square root; only rows that
// pass it take one.
func (g *Gallery) search(probe *face.Embedding, exclude []string) (Match, bool) {
	nr := len(g.rows)
	if nr == 0 {
		return Match{}, false
	}
	var pc [face.Dim]float64 // the probe less the center
	var pn2, mx float64
	for k, v := range probe {
		x := float64(v) - g.center[k]
		pc[k] = x
		pn2 += x * x
		mx = max(mx, math.Abs(x))
	}
	if math.IsNaN(pn2) || math.IsInf(pn2, 0) {
		return g.exactSearch(nil, probe, exclude)
	}
	var exBuf [4]int32
	ex := exBuf[:0]
	for _, id := range exclude {
		if ci, ok := g.index[id]; ok {
			ex = append(ex, int32(ci))
		}
	}

	sc, _ := g.scratch.Get().(*searchScratch)
	if sc == nil {
		sc = &searchScratch{cand: make([]candidate, 0, 1024)}
	}
	defer g.scratch.Put(sc)
	// The probe's codes, repeated for the 8 rows of a block.
	t := mx / qMax
	pat := &sc.pat
	var sw int64
	var twn2, epn2 float64
	for k, v := range pc {
		w := code(v, t)
		for j := range blk {
			pat[k/4*32+j*4+k%4] = int8(w)
		}
		sw += w
		tw := t * float64(w)
		twn2 += tw * tw
		e := v - tw
		epn2 += e * e
	}
	bound := (math.Sqrt(twn2)*g.enMax + math.Sqrt(epn2)*g.cnMax) * (1 + 1e-9)
	delta := 2*bound + 4e-5*(pn2+g.cnMax*g.cnMax) + 1e-12*(1+g.centerN2)

	cand := sc.cand[:0]
	nb := (nr + blk - 1) / blk
	if cap(sc.lanes) < nb*blk {
		sc.lanes = make([]int32, nb*blk+nb*blk/4)
	}
	lanes := sc.lanes[:nb*blk]
	dotBlocks(g.codes, pat, lanes)
	// Σ(v+qOff)·w = v·w + qOff·Σw.
	wOff := qOff * sw
	tt := 2 * t
	// a is the approximate squared distance less |p|², the same for all;
	// upper and lower bound the row's distance from it, offset not added,
	// with room for the float64 rounding of the square root.
	upper := func(a float64) float64 { return math.Sqrt(max(0, a+pn2+delta)) * (1 + 1e-12) }
	lower := func(a float64) float64 { return math.Sqrt(max(0, a+pn2-delta)) * (1 - 1e-12) }
	u1, u2 := math.Inf(1), math.Inf(1)
	c1, c2 := int32(-1), int32(-1)
	thr := math.Inf(1)
	lanes = lanes[:len(g.rq)]
	for r := range g.rq {
		q := &g.rq[r]
		a := q.cn2 - tt*q.s*float64(int64(lanes[r])-wOff)
		if a > thr {
			continue
		}
		rw := &g.rows[r]
		if rw.off != 0 && lower(a)+rw.off > u2 {
			continue
		}
		cand = append(cand, candidate{int32(r), a})
		u := upper(a) + rw.off
		if u >= u2 {
			continue
		}
		c := rw.cust
		if excluded(ex, c) {
			continue
		}
		switch {
		case c == c1:
			u1 = min(u1, u)
		case u < u1: // c, even if second, is now first
			u2, c2 = u1, c1
			u1, c1 = u, c
		case c == c2:
			u2 = u
		default:
			u2, c2 = u, c
		}
		thr = u2*u2*(1+1e-9) - pn2 + delta
	}

	// The re-check, in float32 as the plain scan: the best two customers
	// by (distance, customer index), a customer at their nearest row.
	d1, d2 := math.Inf(1), math.Inf(1)
	b1, b2 := int32(-1), int32(-1)
	var cent face.Embedding
	for _, cd := range cand {
		if cd.a > thr {
			continue
		}
		rw := &g.rows[cd.row]
		if rw.off != 0 && lower(cd.a)+rw.off > u2 {
			continue
		}
		c := rw.cust
		if excluded(ex, c) {
			continue
		}
		g.centroid(int(cd.row), &cent)
		d := math.Sqrt(float64(face.SquaredDistance(&cent, probe))) + rw.off
		b1, d1, b2, d2 = top2(b1, d1, b2, d2, c, d)
	}
	sc.cand = cand[:0]
	return g.match(b1, d1, b2, d2)
}

// top2 adds customer c at distance d to the best two customers, ordered
// by distance then customer index; a customer already there keeps their
// nearer distance.
func top2(b1 int32, d1 float64, b2 int32, d2 float64, c int32, d float64) (int32, float64, int32, float64) {
	less := func(d float64, c int32, e float64, f int32) bool {
		return f < 0 || d < e || (d == e && c < f)
	}
	switch {
	case c == b1:
		d1 = min(d1, d)
	case c == b2:
		d2 = min(d2, d)
		if less(d2, b2, d1, b1) {
			b1, d1, b2, d2 = b2, d2, b1, d1
		}
	case less(d, c, d1, b1):
		b1, d1, b2, d2 = c, d, b1, d1
	case less(d, c, d2, b2):
		b2, d2 = c, d
	}
	return b1, d1, b2, d2
}

// match turns the best two customers at their (penalised) distances into
// a Match.
func (g *Gallery) match(b1 int32, d1 float64, b2 int32, d2 float64) (Match, bool) {
	if b1 < 0 {
		return Match{}, false
	}
	m := Match{CustomerID: g.ids[b1], Distance: d1, Margin: math.Inf(1), Learned: g.learned(b1)}
	if b2 >= 0 {
		m.RunnerUp = g.ids[b2]
		m.Margin = d2 - m.Distance
	}
	return m, true
}

// learned reports whether customer c holds a door row.
func (g *Gallery) learned(c int32) bool {
	for _, r := range g.crows[c] {
		if g.rows[r].group == DoorGroup {
			return true
		}
	}
	return false
}

func excluded(ex []int32, c int32) bool {
	for _, x := range ex {
		if x == c {
			return true
		}
	}
	return false
}

// dotBlocks sets out[r] to Σ_k code(r,k)·w_k for every row r of the
// blocks that out covers; pat holds the probe's codes w as a block's
// layout does. It is dotBlocksGo unless the machine has a faster kernel.
var dotBlocks = dotBlocksGo

// dotBlocksGo is the portable kernel, for machines without AVX2. It
// multiplies in 16-bit lanes of 64-bit words: the even bytes of a word are
// dimensions 0 and 2 of two rows, and one multiplication by
// (w0+qOff)·2¹⁶ + (w2+qOff) leaves each row's two-term sum in the odd
// lanes; qOff keeps the factors unsigned and is taken off at the end. A
// search with it takes 4–5 times as long as with AVX2 (docs/benchmarks.md).
func dotBlocksGo(codes []uint64, pat *[patLen]int8, out []int32) {
	var pe, po [face.Dim / 4]uint64
	for q := range pe {
		p := pat[q*32 : q*32+4]
		pe[q] = uint64(int64(p[2])+qOff) | uint64(int64(p[0])+qOff)<<16
		po[q] = uint64(int64(p[3])+qOff) | uint64(int64(p[1])+qOff)<<16
	}
	const m8, m16, lo = 0x00FF00FF00FF00FF, 0x0000FFFF0000FFFF, 0xFFFF
	for b := range len(out) / blk {
		words := (*[face.Dim]uint64)(codes[b*face.Dim:])
		for h := range blk / 2 { // rows 2h and 2h+1
			var acc, sum uint64
			for q := range face.Dim / 4 {
				x := words[q*4+h]
				e, o := x&m8, x>>8&m8
				acc += (e*pe[q])>>16&m16 + (o*po[q])>>16&m16
				sum += e + o
			}
			ua := int64(sum&lo + sum>>16&lo)
			ub := int64(sum>>32&lo + sum>>48)
			out[b*blk+2*h] = int32(int64(acc&0xFFFFFFFF) - qOff*ua)
			out[b*blk+2*h+1] = int32(int64(acc>>32) - qOff*ub)
		}
	}
}

// exactSearch is the plain scan Search must agree with: every row's
// float32 centroid (from cents when given, face.Dim floats a row, else
// recomputed), each customer at their nearest row (its distance plus its
// group's offset), the best two by distance then customer index. The
// caller holds g.mu.
func (g *Gallery) exactSearch(cents []float32, probe *face.Embedding, exclude []string) (Match, bool) {
	best := g.exactScores(cents, probe)
	for _, id := range exclude {
		if ci, ok := g.index[id]; ok {
			best[ci] = math.Inf(1)
		}
	}
	first, second := -1, -1
	for ci, d := range best {
		if math.IsInf(d, 1) {
			continue
		}
		switch {
		case first < 0 || d < best[first]:
			second, first = first, ci
		case second < 0 || d < best[second]:
			second = ci
		}
	}
	d1, d2 := 0.0, 0.0
	if first >= 0 {
		d1 = best[first]
	}
	if second >= 0 {
		d2 = best[second]
	}
	return g.match(int32(first), d1, int32(second), d2)
}

// exactScores returns each customer's distance to the probe, the nearest
// of their rows with its group's offset, indexed like g.ids. The float32
// squared distance is taken to float64 before its square root, which
// keeps the order of distinct float32 values.
func (g *Gallery) exactScores(cents []float32, probe *face.Embedding) []float64 {
	out := make([]float64, len(g.ids))
	for ci := range out {
		out[ci] = math.Inf(1)
	}
	var c face.Embedding
	for r := range g.rows {
		cp := &c
		if cents != nil {
			cp = (*face.Embedding)(cents[r*face.Dim:])
		} else {
			g.centroid(r, &c)
		}
		ci := g.rows[r].cust
		out[ci] = min(out[ci], math.Sqrt(float64(face.SquaredDistance(cp, probe)))+g.rows[r].off)
	}
	return out
}

// centroids returns every row's centroid, face.Dim floats a row, for
// repeated exact scans (tests, benchmarks). The caller holds g.mu.
func (g *Gallery) centroids() []float32 {
	out := make([]float32, len(g.rows)*face.Dim)
	for r := range g.rows {
		g.centroid(r, (*face.Embedding)(out[r*face.Dim:]))
	}
	return out
}

// Nearest returns up to k customers ordered by distance, for diagnostics
// and evaluation. It scans exactly.
func (g *Gallery) Nearest(probe *face.Embedding, k int) []Match {
	g.mu.RLock()
	best := g.exactScores(nil, probe)
	out := make([]Match, 0, len(best))
	for ci, d := range best {
		out = append(out, Match{CustomerID: g.ids[ci], Distance: d})
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
	// Unlearned is how much farther than Threshold a match may lie when its
	// customer holds no door row (Match.Learned false). The threshold in
	// force while learning is calibrated for the door factor, which only
	// customers with door rows bring: a stranger's chance against one who
	// has learned nothing is the kiosk-only tail's, so each customer's
	// share of the budget (target/n, the union bound the calibration for n
	// customers rests on) holds with the kiosk-only threshold for them
	// (Service.Recognition). 0 without learning.
	Unlearned float64 `json:"unlearned,omitempty"`
}

// Face is the rule one face of a track must meet to name a customer.
func (r Rule) Face() Rule {
	return Rule{Threshold: r.Threshold + r.FaceSlack, Margin: r.Margin, Unlearned: r.Unlearned}
}

// Accept reports whether m names a customer under the rule.
func (r Rule) Accept(m Match) bool {
	th := r.Threshold
	if !m.Learned {
		th += r.Unlearned
	}
	return m.CustomerID != "" && m.Distance <= th && m.Margin >= r.Margin
}
