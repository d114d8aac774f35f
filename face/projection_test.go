package face

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestProjectionYAML: the compact form round-trips bit for bit, and a
// changed matrix, a wrong size or another model's input size is refused.
func TestProjectionYAML(t *testing.T) {
	const d = 160
	p := Projection{InputDim: d, Method: "pca", Mean: make([]float32, d), Matrix: make([]float32, Dim*d), Faces: 300, People: 12}
	for i := range p.Matrix {
		p.Matrix[i] = float32(i%7) * 0.125
	}
	for i := range p.Mean {
		p.Mean[i] = float32(i) / 1000
	}
	b, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var got Projection
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Digest() != p.Digest() || got.InputDim != d || got.Faces != 300 || len(got.Matrix) != Dim*d {
		t.Fatalf("round trip: %+v", got.Digest())
	}
	edited := strings.Replace(string(b), "matrix: ", "matrix: AAAA", 1)
	if err := yaml.Unmarshal([]byte(edited), &got); err == nil || !strings.Contains(err.Error(), "sha256") && !strings.Contains(err.Error(), "matrix") {
		t.Errorf("edited matrix: %v", err)
	}
	if err := p.Validate(512); err == nil || !strings.Contains(err.Error(), "another model") {
		t.Errorf("512 outputs: %v", err)
	}
	raw := make([]float32, d)
	raw[3] = 5
	emb := p.Apply(raw)
	var n float32
	for _, v := range emb {
		n += v * v
	}
	if n < 0.999 || n > 1.001 {
		t.Errorf("projected embedding has squared length %v, want 1", n)
	}
	if !strings.HasPrefix(p.ModelID("m"), "m+proj-") || p.ModelID("m") == (&Projection{InputDim: d}).ModelID("m") {
		t.Errorf("model id %s", p.ModelID("m"))
	}
}

// BenchmarkProjectionApply: the projection's cost per face, 512 → 128 (the
// network's inference it follows takes milliseconds).
func BenchmarkProjectionApply(b *testing.B) {
	const d = 512
	p := Projection{InputDim: d, Method: "pca", Mean: make([]float32, d), Matrix: make([]float32, Dim*d)}
	for i := range p.Matrix {
		p.Matrix[i] = float32(i%13) - 6
	}
	raw := make([]float32, d)
	for i := range raw {
		raw[i] = float32(i%5) - 2
	}
	for b.Loop() {
		p.Apply(raw)
	}
}
