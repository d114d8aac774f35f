package eval

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"concierge/face"
)

// synthetic returns unit vectors of people in a known 128-d subspace of
// R^d (the columns of basis, d×128 row-major, orthonormal): each person a
// random centre, each face the centre plus spread, mapped by basis. The
// people have unequal photo counts.
func synthetic(rng *rand.Rand, d, people int) (*RawSet, []float64) {
	const k = face.Dim
	basis := make([]float64, d*k)
	for i := range basis {
		basis[i] = rng.NormFloat64()
	}
	for j := range k { // Gram-Schmidt on the columns
		for p := range j {
			var dot float64
			for i := range d {
				dot += basis[i*k+j] * basis[i*k+p]
			}
			for i := range d {
				basis[i*k+j] -= dot * basis[i*k+p]
			}
		}
		var n float64
		for i := range d {
			n += basis[i*k+j] * basis[i*k+j]
		}
		for i := range d {
			basis[i*k+j] /= math.Sqrt(n)
		}
	}
	set := &RawSet{}
	for p := range people {
		centre := make([]float64, k)
		for i := range centre {
			centre[i] = rng.NormFloat64()
		}
		for range 5 + p%7 {
			x := make([]float64, k)
			var n float64
			for i := range x {
				x[i] = centre[i] + 0.7*rng.NormFloat64()
				n += x[i] * x[i]
			}
			raw := make([]float32, d)
			for r := range d {
				var s float64
				for i := range k {
					s += basis[r*k+i] * x[i]
				}
				raw[r] = float32(3 * s / math.Sqrt(n)) // an output norm of 3: Apply and the fit take directions
			}
			set.Raw = append(set.Raw, raw)
			set.Labels = append(set.Labels, string(rune('A'+p%26))+string(rune('a'+p/26)))
		}
	}
	return set, basis
}

// TestFitProjectionRecoversSubspace: outputs that live in a 128-d subspace
// of 512 are projected onto exactly that subspace: every row of the
// matrix lies in it, and distances between the faces are kept (centred or
// not, a difference cancels the mean).
// Whitened, the projected faces have unit variance per direction.
func TestFitProjectionRecoversSubspace(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const d = 512
	set, basis := synthetic(rng, d, 40)
	for _, method := range ProjectionMethods {
		whiten := method == "pca-whiten"
		p, err := FitProjection(set, method)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(d); err != nil {
			t.Fatal(err)
		}
		if p.Kept < 1-1e-6 {
			t.Errorf("outputs in a 128-d subspace: %.6f of the variance kept, want all", p.Kept)
		}
		for r := range face.Dim {
			row := p.Matrix[r*d : (r+1)*d]
			var in, all float64 // the row's squared length inside the subspace, and in all
			for j := range face.Dim {
				var c float64
				for i := range d {
					c += basis[i*face.Dim+j] * float64(row[i])
				}
				in += c * c
			}
			for _, v := range row {
				all += float64(v) * float64(v)
			}
			if in < all*(1-1e-4) {
				t.Fatalf("whiten %v: row %d has %.5f of its length outside the subspace", whiten, r, 1-in/all)
			}
		}
		// Projected, un-normalised coordinates of each face.
		proj := make([][]float64, len(set.Raw))
		for i, raw := range set.Raw {
			u := unit(raw)
			proj[i] = make([]float64, face.Dim)
			for r := range face.Dim {
				var s float64
				for j := range d {
					s += float64(p.Matrix[r*d+j]) * (u[j] - float64(p.Mean[j]))
				}
				proj[i][r] = s
			}
		}
		if !whiten {
			for i := 1; i < len(set.Raw); i++ {
				a, b := unit(set.Raw[i]), unit(set.Raw[i-1])
				var want, got float64
				for j := range d {
					want += (a[j] - b[j]) * (a[j] - b[j])
				}
				for r := range face.Dim {
					got += (proj[i][r] - proj[i-1][r]) * (proj[i][r] - proj[i-1][r])
				}
				if math.Abs(math.Sqrt(got)-math.Sqrt(want)) > 1e-4 {
					t.Fatalf("faces %d, %d: distance %.6f projected, %.6f before", i-1, i, math.Sqrt(got), math.Sqrt(want))
				}
			}
			continue
		}
		// Weighted as the fit weighs (each person the same).
		count := map[string]int{}
		for _, l := range set.Labels {
			count[l]++
		}
		for _, r := range []int{0, 63, 127} {
			var v float64
			for i := range proj {
				v += proj[i][r] * proj[i][r] / float64(count[set.Labels[i]]*len(count))
			}
			if math.Abs(v-1) > 1e-3 {
				t.Errorf("whitened direction %d: variance %.4f, want 1", r, v)
			}
		}
	}
}

// TestFitProjectionRefuses: too few faces, one person, outputs of 128 or
// spanning fewer directions than 128.
func TestFitProjectionRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	set, _ := synthetic(rng, 256, 40)
	few := &RawSet{Raw: set.Raw[:100], Labels: set.Labels[:100]}
	if _, err := FitProjection(few, "pca"); err == nil || !strings.Contains(err.Error(), "faces") {
		t.Errorf("100 faces: %v", err)
	}
	one := &RawSet{Raw: set.Raw, Labels: make([]string, len(set.Raw))}
	if _, err := FitProjection(one, "pca"); err == nil || !strings.Contains(err.Error(), "two people") {
		t.Errorf("one person: %v", err)
	}
	// Outputs in a 100-d subspace: fewer directions than 128.
	flat := &RawSet{Labels: set.Labels}
	for _, r := range set.Raw {
		c := append([]float32(nil), r...)
		for j := 100; j < len(c); j++ {
			c[j] = 0
		}
		flat.Raw = append(flat.Raw, c)
	}
	if _, err := FitProjection(flat, "pca"); err == nil || !strings.Contains(err.Error(), "directions") {
		t.Errorf("100-d outputs: %v", err)
	}
}
