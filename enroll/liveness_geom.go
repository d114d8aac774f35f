package enroll

import (
	"math"

	"concierge/face"
)

// This file holds the plane geometry behind the liveness check: a
// normalised direct linear transform (DLT) fitting one homography to point
// pairs, and the yaw of a face from its landmarks. Pure Go, no matrices
// library: the systems are 9×9.

// pt is a point in image coordinates.
type pt struct{ x, y float64 }

func points(l face.Landmarks) []pt {
	ps := l.Points()
	out := make([]pt, len(ps))
	for i, p := range ps {
		out[i] = pt{float64(p.X), float64(p.Y)}
	}
	return out
}

// homography is a 3×3 matrix, row-major.
type homography [9]float64

func (h homography) apply(p pt) (pt, bool) {
	w := h[6]*p.x + h[7]*p.y + h[8]
	if math.Abs(w) < 1e-12 {
		return pt{}, false
	}
	return pt{(h[0]*p.x + h[1]*p.y + h[2]) / w, (h[3]*p.x + h[4]*p.y + h[5]) / w}, true
}

func mul3(a, b homography) homography {
	var c homography
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			for k := 0; k < 3; k++ {
				c[3*i+j] += a[3*i+k] * b[3*k+j]
			}
		}
	}
	return c
}

// normaliser returns Hartley's similarity moving the points' centroid to
// the origin and their mean distance to √2, and its inverse. Without it the
// DLT's equations mix pixel coordinates and their squares and the fit
// depends on where the face is in the frame.
func normaliser(ps []pt) (t, inv homography, ok bool) {
	var cx, cy float64
	for _, p := range ps {
		cx += p.x
		cy += p.y
	}
	cx /= float64(len(ps))
	cy /= float64(len(ps))
	var d float64
	for _, p := range ps {
		d += math.Hypot(p.x-cx, p.y-cy)
	}
	d /= float64(len(ps))
	if d < 1e-9 {
		return t, inv, false
	}
	s := math.Sqrt2 / d
	t = homography{s, 0, -s * cx, 0, s, -s * cy, 0, 0, 1}
	inv = homography{1 / s, 0, cx, 0, 1 / s, cy, 0, 0, 1}
	return t, inv, true
}

// fitHomography returns the homography H minimising the algebraic error of
// H·src ≈ dst over at least four point pairs (normalised DLT).
func fitHomography(src, dst []pt) (homography, bool) {
	if len(src) != len(dst) || len(src) < 4 {
		return homography{}, false
	}
	ts, _, ok1 := normaliser(src)
	td, tdInv, ok2 := normaliser(dst)
	if !ok1 || !ok2 {
		return homography{}, false
	}
	// AᵀA accumulated row by row: each pair gives two equations in the nine
	// entries of H.
	var ata [9][9]float64
	for i := range src {
		p, _ := ts.apply(src[i])
		q, _ := td.apply(dst[i])
		rows := [2][9]float64{
			{-p.x, -p.y, -1, 0, 0, 0, q.x * p.x, q.x * p.y, q.x},
			{0, 0, 0, -p.x, -p.y, -1, q.y * p.x, q.y * p.y, q.y},
		}
		for _, r := range rows {
			for a := 0; a < 9; a++ {
				for b := 0; b < 9; b++ {
					ata[a][b] += r[a] * r[b]
				}
			}
		}
	}
	h := smallestEigenvector(ata)
	return mul3(mul3(tdInv, homography(h)), ts), true
}

// smallestEigenvector returns the unit eigenvector of the symmetric matrix
// with the smallest eigenvalue, by cyclic Jacobi rotations.
func smallestEigenvector(a [9][9]float64) [9]float64 {
	var v [9][9]float64
	for i := range v {
		v[i][i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		off := 0.0
		for p := 0; p < 9; p++ {
			for q := p + 1; q < 9; q++ {
				off += a[p][q] * a[p][q]
			}
		}
		if off < 1e-30 {
			break
		}
		for p := 0; p < 9; p++ {
			for q := p + 1; q < 9; q++ {
				if math.Abs(a[p][q]) < 1e-300 {
					continue
				}
				theta := (a[q][q] - a[p][p]) / (2 * a[p][q])
				t := math.Copysign(1, theta) / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := 0; k < 9; k++ {
					akp, akq := a[k][p], a[k][q]
					a[k][p], a[k][q] = c*akp-s*akq, s*akp+c*akq
				}
				for k := 0; k < 9; k++ {
					apk, aqk := a[p][k], a[q][k]
					a[p][k], a[q][k] = c*apk-s*aqk, s*apk+c*aqk
				}
				for k := 0; k < 9; k++ {
					vkp, vkq := v[k][p], v[k][q]
					v[k][p], v[k][q] = c*vkp-s*vkq, s*vkp+c*vkq
				}
			}
		}
	}
	best := 0
	for i := 1; i < 9; i++ {
		if a[i][i] < a[best][best] {
			best = i
		}
	}
	var out [9]float64
	for k := 0; k < 9; k++ {
		out[k] = v[k][best]
	}
	return out
}

// transferRMS is the root-mean-square distance between H·src and dst.
func transferRMS(h homography, src, dst []pt) float64 {
	var sum float64
	for i := range src {
		p, ok := h.apply(src[i])
		if !ok {
			return math.Inf(1)
		}
		sum += (p.x-dst[i].x)*(p.x-dst[i].x) + (p.y-dst[i].y)*(p.y-dst[i].y)
	}
	return math.Sqrt(sum / float64(len(src)))
}

// eyeDistance is the inter-ocular distance in pixels, the face's own unit
// of length.
func eyeDistance(l face.Landmarks) float64 {
	return math.Hypot(float64(l.RightEye.X-l.LeftEye.X), float64(l.RightEye.Y-l.LeftEye.Y))
}

// yaw is the nose tip's offset from the midpoint of the eyes along the eye
// line, in eye distances: 0 facing the camera, about ±0.3 at a 45° turn.
// Positive means the nose moved towards the image's right, i.e. the
// customer turned to their left as the camera sees them (unmirrored).
func yaw(l face.Landmarks) float64 {
	ex := float64(l.RightEye.X - l.LeftEye.X)
	ey := float64(l.RightEye.Y - l.LeftEye.Y)
	d2 := ex*ex + ey*ey
	if d2 < 1 {
		return 0
	}
	mx := float64(l.LeftEye.X+l.RightEye.X) / 2
	my := float64(l.LeftEye.Y+l.RightEye.Y) / 2
	return ((float64(l.Nose.X)-mx)*ex + (float64(l.Nose.Y)-my)*ey) / d2
}
