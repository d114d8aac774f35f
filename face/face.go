// Package face holds the plain-Go description of a detected face that the
// vision engine produces and the enrollment, matching and check-in logic
// consume. It has no dependencies so that the domain never sees cgo.
package face

import (
	"fmt"
	"image"
	"log/slog"
	"math"
)

// Dim is the length of every embedding the engines produce.
const Dim = 128

// Embedding is a face template: a point in the engine's metric space.
// Euclidean distance between two embeddings of the same model compares faces.
// Engines whose native metric is cosine L2-normalise their output, so one
// distance serves all of them.
type Embedding [Dim]float32

// LogValue keeps biometric data out of logs.
func (Embedding) LogValue() slog.Value { return slog.StringValue("[embedding redacted]") }

// Distance is the Euclidean distance between two embeddings.
func Distance(a, b *Embedding) float64 {
	return math.Sqrt(float64(SquaredDistance(a, b)))
}

// SquaredDistance is the squared Euclidean distance, unrolled with four
// accumulators: Go does not vectorise, and this loop is the whole cost of a
// 1:N search. Everything that compares embeddings uses it, so the gallery,
// check-in and evaluation agree bit for bit.
func SquaredDistance(a, b *Embedding) float32 {
	var s0, s1, s2, s3 float32
	for k := 0; k < Dim; k += 4 {
		d0 := a[k] - b[k]
		d1 := a[k+1] - b[k+1]
		d2 := a[k+2] - b[k+2]
		d3 := a[k+3] - b[k+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	return (s0 + s1) + (s2 + s3)
}

// Normalize scales e to unit length; a zero vector is left unchanged.
func (e *Embedding) Normalize() {
	var sum float64
	for _, v := range e {
		sum += float64(v) * float64(v)
	}
	if sum == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range e {
		e[i] *= inv
	}
}

// Mean is the weighted mean of es (equal weights when weights is nil),
// put back on the unit sphere when every embedding lies on it: engines
// with unit embeddings compare on the sphere, so distances to the mean keep
// the scale their thresholds are measured in; dlib's are compared as they
// are. One embedding is its own mean, bit for bit. It is how a customer's
// templates become one centroid and how a track's faces become one fused
// probe, so that the gallery, check-in and evaluation agree.
func Mean(es []Embedding, weights []float64) Embedding {
	if len(es) == 1 {
		return es[0]
	}
	var acc [Dim]float64
	var wsum float64
	unit := len(es) > 0
	for i := range es {
		w := 1.0
		if weights != nil {
			w = weights[i]
		}
		wsum += w
		var n float64
		for k, v := range es[i] {
			acc[k] += w * float64(v)
			n += float64(v) * float64(v)
		}
		unit = unit && math.Abs(n-1) < 1e-3
	}
	var out Embedding
	if wsum == 0 {
		return out
	}
	for k := range out {
		out[k] = float32(acc[k] / wsum)
	}
	if unit {
		out.Normalize()
	}
	return out
}

// Quality describes how useful a face image is for recognition.
type Quality struct {
	// SizePx is the shorter side of the face box in pixels.
	SizePx int `json:"size_px"`
	// Sharpness is the variance of the Laplacian of the grey face crop,
	// normalised to a 112-pixel crop so it does not depend on resolution.
	Sharpness float64 `json:"sharpness"`
	// Frontal is 1 for a face looking straight at the camera and falls
	// towards 0 as the head turns or tilts, estimated from the landmarks.
	Frontal float64 `json:"frontal"`
	// Brightness is the mean grey level of the face crop, 0–255.
	Brightness float64 `json:"brightness"`
}

// Score folds the quality measures into one number in [0,1] used to pick the
// best frames of a track and to weight embeddings when fusing them.
func (q Quality) Score() float64 {
	size := clamp01(float64(q.SizePx-40) / 120) // 40 px useless, 160 px and up full
	sharp := clamp01(q.Sharpness / 150)         // Laplacian variance of a crisp face crop
	light := 1 - math.Abs(q.Brightness-128)/128 // mid-grey best
	return size * (0.4 + 0.6*sharp) * q.Frontal * clamp01(0.3+light)
}

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }

// Face is one face found in an image.
type Face struct {
	Box image.Rectangle `json:"box"`
	// Landmarks are five points in image coordinates. Their order depends on
	// the engine; Pose-related code uses the Landmarks helpers, not indices.
	Landmarks Landmarks `json:"landmarks"`
	Embedding Embedding `json:"-"`
	Quality   Quality   `json:"quality"`
	// Model names the embedding model, so templates of different engines
	// are never compared with each other.
	Model string `json:"model"`
	// Score is the detector's confidence in [0,1], or 1 when it gives none.
	Score float64 `json:"score"`
}

// LogValue keeps the embedding out of logs.
func (f Face) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("box", f.Box.String()),
		slog.Int("size_px", f.Quality.SizePx),
		slog.Float64("quality", f.Quality.Score()),
	)
}

// Landmarks are the eye centres, nose tip and mouth corners of a face, as
// seen in the image (LeftEye is the eye on the image's left).
type Landmarks struct {
	LeftEye, RightEye, Nose, LeftMouth, RightMouth image.Point
}

// Frontal estimates how directly the face looks at the camera, from 1 (frontal)
// towards 0, from the symmetry of the nose between the eyes and the roll of
// the eye line. A missing landmark set gives 0.5: unknown, not bad.
func (l Landmarks) Frontal() float64 {
	if l == (Landmarks{}) {
		return 0.5
	}
	ex := float64(l.RightEye.X - l.LeftEye.X)
	ey := float64(l.RightEye.Y - l.LeftEye.Y)
	eyeDist := math.Hypot(ex, ey)
	if eyeDist < 1 {
		return 0
	}
	// Yaw: the nose projects off the middle of the eyes when the head turns.
	midX := float64(l.LeftEye.X+l.RightEye.X) / 2
	midY := float64(l.LeftEye.Y+l.RightEye.Y) / 2
	// Project the nose offset on the eye line, in units of eye distance.
	off := ((float64(l.Nose.X)-midX)*ex + (float64(l.Nose.Y)-midY)*ey) / (eyeDist * eyeDist)
	yaw := clamp01(1 - 2*math.Abs(off)) // off = ±0.5 means the nose is at an eye
	// Roll: a tilted head is fine for the aligner, but a strong tilt hints at
	// a bad detection; penalise only beyond 20 degrees.
	roll := math.Abs(math.Atan2(ey, ex)) * 180 / math.Pi
	rollF := 1.0
	if roll > 20 {
		rollF = clamp01(1 - (roll-20)/40)
	}
	return yaw * rollF
}

// Points returns the landmarks as a slice in a fixed order.
func (l Landmarks) Points() []image.Point {
	return []image.Point{l.LeftEye, l.RightEye, l.Nose, l.LeftMouth, l.RightMouth}
}

// String helps debugging without exposing anything sensitive.
func (l Landmarks) String() string {
	return fmt.Sprintf("eyes %v %v nose %v mouth %v %v", l.LeftEye, l.RightEye, l.Nose, l.LeftMouth, l.RightMouth)
}
