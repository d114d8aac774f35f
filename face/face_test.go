package face

import (
	"image"
	"math"
	"testing"
)

func TestDistance(t *testing.T) {
	var a, b Embedding
	for i := range a {
		a[i] = float32(i) / 100
		b[i] = a[i]
	}
	b[3] += 0.3
	b[100] -= 0.4
	if d := Distance(&a, &b); math.Abs(d-0.5) > 1e-6 {
		t.Fatalf("Distance = %v, want 0.5", d)
	}
	if d := Distance(&a, &a); d != 0 {
		t.Fatalf("Distance to itself = %v", d)
	}
	b.Normalize()
	var n float64
	for _, v := range b {
		n += float64(v) * float64(v)
	}
	if math.Abs(n-1) > 1e-5 {
		t.Fatalf("norm after Normalize = %v", n)
	}
}

func TestFrontal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lm       Landmarks
		min, max float64
	}{
		{"frontal", Landmarks{LeftEye: image.Pt(40, 50), RightEye: image.Pt(80, 50), Nose: image.Pt(60, 75)}, 0.95, 1},
		{"turned", Landmarks{LeftEye: image.Pt(40, 50), RightEye: image.Pt(80, 50), Nose: image.Pt(76, 75)}, 0, 0.25},
		{"rolled 45°", Landmarks{LeftEye: image.Pt(40, 40), RightEye: image.Pt(70, 70), Nose: image.Pt(48, 68)}, 0, 0.7},
		{"unknown", Landmarks{}, 0.5, 0.5},
	} {
		if f := tc.lm.Frontal(); f < tc.min || f > tc.max {
			t.Errorf("%s: Frontal = %.2f, want in [%.2f, %.2f]", tc.name, f, tc.min, tc.max)
		}
	}
}

func TestQualityScore(t *testing.T) {
	good := Quality{SizePx: 200, Sharpness: 800, Frontal: 1, Brightness: 128}
	for _, tc := range []struct {
		name string
		q    Quality
	}{
		{"small", Quality{SizePx: 50, Sharpness: 800, Frontal: 1, Brightness: 128}},
		{"blurry", Quality{SizePx: 200, Sharpness: 20, Frontal: 1, Brightness: 128}},
		{"turned", Quality{SizePx: 200, Sharpness: 800, Frontal: 0.3, Brightness: 128}},
		{"dark", Quality{SizePx: 200, Sharpness: 800, Frontal: 1, Brightness: 10}},
	} {
		if tc.q.Score() >= good.Score() {
			t.Errorf("%s: score %.2f not below a good face's %.2f", tc.name, tc.q.Score(), good.Score())
		}
	}
	if s := good.Score(); s < 0.9 || s > 1 {
		t.Errorf("good face score %.2f", s)
	}
}

func TestMean(t *testing.T) {
	at := func(pairs ...float64) Embedding {
		var e Embedding
		for i := 0; i < len(pairs); i += 2 {
			e[int(pairs[i])] = float32(pairs[i+1])
		}
		return e
	}
	one := at(3, 0.7)
	for _, tc := range []struct {
		name    string
		es      []Embedding
		weights []float64
		want    Embedding
	}{
		{"one is its own mean", []Embedding{one}, nil, one},
		{"unit vectors: back on the sphere", []Embedding{at(0, 1), at(0, 1), at(1, 1)}, nil,
			at(0, 2/math.Sqrt(5), 1, 1/math.Sqrt(5))},
		{"unit vectors, weighted", []Embedding{at(0, 1), at(1, 1)}, []float64{3, 1},
			at(0, 3/math.Sqrt(10), 1, 1/math.Sqrt(10))},
		{"other vectors: the plain mean", []Embedding{at(0, 0.5), at(1, 0.3)}, nil, at(0, 0.25, 1, 0.15)},
		{"other vectors, weighted", []Embedding{at(0, 0.5), at(1, 0.3)}, []float64{1, 3}, at(0, 0.125, 1, 0.225)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Mean(tc.es, tc.weights)
			if d := Distance(&got, &tc.want); d > 1e-6 {
				t.Fatalf("mean %v… is %v from %v…", got[:4], d, tc.want[:4])
			}
		})
	}
}
