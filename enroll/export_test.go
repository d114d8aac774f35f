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

// DotBlocks runs the kernel Search uses and the portable one on the
// gallery's codes with a random probe pattern.
func (g *Gallery) DotBlocks(seed int64) (fast, portable []int32) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var pat [patLen]int8
	for k := range face.Dim {
		w := int8((seed*int64(k+7)*2654435761)%127 - 63)
		for j := range blk {
			pat[k/4*32+j*4+k%4] = w
		}
	}
	n := (len(g.rows) + blk - 1) / blk * blk
	fast, portable = make([]int32, n), make([]int32, n)
	dotBlocks(g.codes, &pat, fast)
	dotBlocksGo(g.codes, &pat, portable)
	return fast, portable
}

// UsePortableKernel makes Search use the portable kernel until the
// returned function is called.
func UsePortableKernel() (restore func()) {
	saved := dotBlocks
	dotBlocks = dotBlocksGo
	return func() { dotBlocks = saved }
}
