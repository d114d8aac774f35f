package eval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"concierge/enroll"
	"concierge/face"
)

// RawDetector finds faces and gives each one's raw embedder output, of
// any length (vision.DNNEngine.DetectRaw): what a projection is fitted on.
type RawDetector interface {
	DetectRaw(ctx context.Context, data []byte) ([]face.Face, [][]float32, error)
}

// RawSet is the raw outputs of one face per labelled photo.
type RawSet struct {
	Labels []string
	Raw    [][]float32
	Images int
	Misses int
}

// RawFolder is EmbedFolder for fitting a projection: the same photos,
// shrunk and padded alike, the same face picked in each (PickFace), but
// the detector's raw outputs.
func (e *Embedder) RawFolder(ctx context.Context, det RawDetector, dir string, labels []string) (*RawSet, error) {
	paths, names, err := folderPhotos(dir, labels)
	if err != nil {
		return nil, err
	}
	raws := make([][]float32, len(paths))
	err = e.each(ctx, len(paths), func(ctx context.Context, i int) error {
		data, w, h, miss, err := e.load(paths[i])
		if err != nil || miss != "" {
			return err
		}
		faces, rs, err := det.DetectRaw(ctx, data)
		if err != nil {
			if enroll.IsBadInput(err) {
				return nil
			}
			return &DetectError{Image: paths[i], Err: err}
		}
		if f, ok := PickFace(faces, w, h); ok {
			for j := range faces {
				if faces[j].Box == f.Box {
					raws[i] = rs[j]
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	set := &RawSet{Images: len(paths)}
	for i, r := range raws {
		if r == nil {
			set.Misses++
			continue
		}
		set.Labels, set.Raw = append(set.Labels, names[i]), append(set.Raw, r)
	}
	return set, nil
}

// ProjectionMethods are FitProjection's methods: "subspace" keeps the 128
// directions in which the unit-length outputs have the largest second
// moment, uncentred, so that distances are the model's own as far as the
// outputs lie in them; "pca" centres on the faces' mean first (the
// classic PCA); "pca-whiten" also scales each direction to unit variance.
var ProjectionMethods = []string{"subspace", "pca", "pca-whiten"}

// FitProjection fits the projection of a model's raw outputs to the 128
// dimensions the product stores by method (ProjectionMethods), on the
// unit-length outputs, each person weighing the same whatever their number
// of photos (a bank's folder may hold far more of a few people). It needs
// more faces than 128 and at least two people, and refuses outputs that
// span fewer than 128 directions.
func FitProjection(set *RawSet, method string) (face.Projection, error) {
	if !slices.Contains(ProjectionMethods, method) {
		return face.Projection{}, fmt.Errorf("projection: method %q is not one of %v", method, ProjectionMethods)
	}
	whiten, centre := method == "pca-whiten", method != "subspace"
	n := len(set.Raw)
	if n <= face.Dim {
		return face.Projection{}, fmt.Errorf("projection: %d faces, need more than %d to fit %d directions", n, face.Dim, face.Dim)
	}
	d := len(set.Raw[0])
	if d <= face.Dim {
		return face.Projection{}, fmt.Errorf("projection: the embedder outputs %d values, nothing to project", d)
	}
	count := map[string]int{}
	for _, l := range set.Labels {
		count[l]++
	}
	if len(count) < 2 {
		return face.Projection{}, errors.New("projection: needs the faces of at least two people")
	}
	u := make([][]float64, n)
	w := make([]float64, n)
	mean := make([]float64, d)
	for i, r := range set.Raw {
		if len(r) != d {
			return face.Projection{}, fmt.Errorf("projection: outputs of %d and %d values", d, len(r))
		}
		u[i] = unit(r)
		w[i] = 1 / float64(count[set.Labels[i]]*len(count))
		if !centre {
			continue
		}
		for j, v := range u[i] {
			mean[j] += w[i] * v
		}
	}
	// X: rows √w·(u − mean), so XᵀX is the weighted covariance (the
	// second moment when not centred: mean stays 0).
	for i := range u {
		s := math.Sqrt(w[i])
		for j := range u[i] {
			u[i][j] = s * (u[i][j] - mean[j])
		}
	}
	var total float64 // the trace of XᵀX: all the variance
	for _, row := range u {
		total += dot(row, row)
	}
	vals, vecs := principal(u, d, face.Dim)
	if vals[face.Dim-1] <= 1e-9*vals[0] {
		return face.Projection{}, fmt.Errorf("projection: the faces span fewer than %d directions (more people and photos needed)", face.Dim)
	}
	p := face.Projection{InputDim: d, Method: method, Mean: make([]float32, d), Matrix: make([]float32, face.Dim*d),
		Faces: n, People: len(count)}
	for j, v := range mean {
		p.Mean[j] = float32(v)
	}
	for _, v := range vals {
		p.Kept += v / total
	}
	for r := range face.Dim {
		s := 1.0
		if whiten {
			s = 1 / math.Sqrt(vals[r])
		}
		for j := range d {
			p.Matrix[r*d+j] = float32(s * vecs[r][j])
		}
	}
	return p, nil
}

func unit(r []float32) []float64 {
	var s float64
	for _, v := range r {
		s += float64(v) * float64(v)
	}
	inv := 1 / math.Sqrt(s)
	if s == 0 {
		inv = 0
	}
	out := make([]float64, len(r))
	for i, v := range r {
		out[i] = float64(v) * inv
	}
	return out
}

// principal returns the k largest eigenvalues of XᵀX (X: n rows of d) and
// their unit eigenvectors, largest first. It decomposes the smaller of
// XᵀX (d×d) and XXᵀ (n×n): with fewer faces than outputs, the Gram
// matrix's eigenvectors v give XᵀX's as Xᵀv/√λ.
func principal(x [][]float64, d, k int) ([]float64, [][]float64) {
	n := len(x)
	gram := n < d
	m := min(n, d)
	a := make([][]float64, m)
	for i := range a {
		a[i] = make([]float64, m)
	}
	if gram {
		for i := range n {
			for j := i; j < n; j++ {
				a[i][j] = dot(x[i], x[j])
				a[j][i] = a[i][j]
			}
		}
	} else {
		for _, row := range x {
			for i, v := range row {
				if v == 0 {
					continue
				}
				ai := a[i]
				for j := i; j < d; j++ {
					ai[j] += v * row[j]
				}
			}
		}
		for i := range d {
			for j := range i {
				a[i][j] = a[j][i]
			}
		}
	}
	vals, vecs := jacobi(a)
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return vals[order[i]] > vals[order[j]] })
	outVals := make([]float64, k)
	outVecs := make([][]float64, k)
	for r := range k {
		c := order[r]
		outVals[r] = max(vals[c], 0)
		v := make([]float64, d)
		if gram {
			for i := range n {
				f := vecs[i][c]
				for j := range d {
					v[j] += f * x[i][j]
				}
			}
			if norm := math.Sqrt(dot(v, v)); norm > 0 {
				for j := range v {
					v[j] /= norm
				}
			}
		} else {
			for j := range d {
				v[j] = vecs[j][c]
			}
		}
		outVecs[r] = v
	}
	return outVals, outVecs
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// jacobi diagonalises the symmetric matrix a (destroyed) by cyclic Jacobi
// rotations: eigenvalues, and eigenvectors as the columns of v.
func jacobi(a [][]float64) ([]float64, [][]float64) {
	m := len(a)
	v := make([][]float64, m)
	for i := range v {
		v[i] = make([]float64, m)
		v[i][i] = 1
	}
	var total float64
	for i := range m {
		for j := range m {
			total += a[i][j] * a[i][j]
		}
	}
	for sweep := 0; sweep < 50; sweep++ {
		var off float64
		for i := range m {
			for j := i + 1; j < m; j++ {
				off += a[i][j] * a[i][j]
			}
		}
		if off <= 1e-22*total {
			break
		}
		for p := range m {
			for q := p + 1; q < m; q++ {
				apq := a[p][q]
				if math.Abs(apq) < 1e-300 {
					continue
				}
				theta := (a[q][q] - a[p][p]) / (2 * apq)
				t := 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				if theta < 0 {
					t = -t
				}
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := range m {
					akp, akq := a[k][p], a[k][q]
					a[k][p] = c*akp - s*akq
					a[k][q] = s*akp + c*akq
				}
				ap, aq := a[p], a[q]
				for k := range m {
					apk, aqk := ap[k], aq[k]
					ap[k] = c*apk - s*aqk
					aq[k] = s*apk + c*aqk
				}
				for k := range m {
					vkp, vkq := v[k][p], v[k][q]
					v[k][p] = c*vkp - s*vkq
					v[k][q] = s*vkp + c*vkq
				}
			}
		}
	}
	vals := make([]float64, m)
	for i := range m {
		vals[i] = a[i][i]
	}
	return vals, v
}

// CalibrateProjected is Calibrate for a model whose outputs were projected
// by proj (nil: Calibrate itself): the report must have measured the
// projected embeddings (their model id carries the projection's digest),
// and the calibration carries the projection, which its tails only mean
// together with.
func CalibrateProjected(rep *Report, model, sha256 string, proj *face.Projection, margin, faceSlack float64) (enroll.Calibration, error) {
	if proj == nil {
		return Calibrate(rep, model, sha256, margin, faceSlack)
	}
	if rep != nil {
		if want := proj.ModelID(model); rep.Model != want {
			return enroll.Calibration{}, fmt.Errorf("calibrate: the report measured %s, not %s", rep.Model, want)
		}
		r := *rep
		r.Model = model
		rep = &r
	}
	c, err := Calibrate(rep, model, sha256, margin, faceSlack)
	c.Projection = proj
	return c, err
}
