package face

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
)

// Projection maps an embedder's output of InputDim values to the Dim the
// product stores: u = raw/|raw|, then y = Matrix·(u − Mean), normalised to
// unit length (Apply). It is fitted at
// calibration time on the bank's own labelled photos (PCA, eval.FitProjection)
// and lives in the calibration file, so a model of any output size is taken
// without changing face.Embedding, the sealed templates or the bus.
// A projection is part of the embedding space: embeddings projected
// differently are not comparable, so the embedder stamps its model id with
// the projection's digest (ModelID). It lives here, beside Embedding, so
// that the calibration (enroll) and the model description (models) share it.
type Projection struct {
	// InputDim is the embedder's output length (its description's
	// output_dim).
	InputDim int
	// Method says how the matrix was fitted, for people: "subspace",
	// "pca" or "pca-whiten" (eval.ProjectionMethods).
	Method string
	// Mean has InputDim values; Matrix Dim rows of InputDim, row-major.
	Mean   []float32
	Matrix []float32
	// Faces and People are what the fit rested on; Kept is the share of
	// the unit-length outputs' variance the Dim directions keep (1 for a
	// model whose outputs span only Dim directions).
	Faces, People int
	Kept          float64
}

// projectionYAML is a projection as the calibration file holds it: the
// floats as base64 of their little-endian bytes (a 128×512 matrix is 350
// KB so, against 1.5 MB as decimals), with their digest.
type projectionYAML struct {
	InputDim int     `yaml:"input_dim"`
	Method   string  `yaml:"method"`
	Faces    int     `yaml:"faces,omitempty"`
	People   int     `yaml:"people,omitempty"`
	Kept     float64 `yaml:"variance_kept,omitempty"`
	// SHA256 is the digest of Mean's bytes then Matrix's: a file edited
	// or truncated by hand is refused rather than projecting garbage.
	SHA256 string `yaml:"sha256"`
	Mean   string `yaml:"mean"`
	Matrix string `yaml:"matrix"`
}

// MarshalYAML writes the compact form.
func (p Projection) MarshalYAML() (any, error) {
	if err := p.Validate(p.InputDim); err != nil {
		return nil, err
	}
	return projectionYAML{
		InputDim: p.InputDim, Method: p.Method, Faces: p.Faces, People: p.People, Kept: p.Kept,
		SHA256: p.Digest(), Mean: encodeFloats(p.Mean), Matrix: encodeFloats(p.Matrix),
	}, nil
}

// UnmarshalYAML reads the compact form and checks it.
func (p *Projection) UnmarshalYAML(unmarshal func(any) error) error {
	var y projectionYAML
	if err := unmarshal(&y); err != nil {
		return err
	}
	mean, err := decodeFloats(y.Mean)
	if err != nil {
		return fmt.Errorf("projection.mean: %w", err)
	}
	matrix, err := decodeFloats(y.Matrix)
	if err != nil {
		return fmt.Errorf("projection.matrix: %w", err)
	}
	*p = Projection{InputDim: y.InputDim, Method: y.Method, Mean: mean, Matrix: matrix, Faces: y.Faces, People: y.People, Kept: y.Kept}
	if err := p.Validate(y.InputDim); err != nil {
		return err
	}
	if got := p.Digest(); got != y.SHA256 {
		return fmt.Errorf("projection.sha256: the mean and matrix hash to %s, the file says %s (edited or truncated?)", got, y.SHA256)
	}
	return nil
}

// Validate checks the projection takes inputDim values to Dim.
func (p Projection) Validate(inputDim int) error {
	switch {
	case p.InputDim != inputDim:
		return fmt.Errorf("projection: takes %d values, the embedder outputs %d (output_dim): it was fitted for another model", p.InputDim, inputDim)
	case p.InputDim <= Dim || p.InputDim > MaxProjected:
		return fmt.Errorf("projection.input_dim: %d must be in (%d, %d]", p.InputDim, Dim, MaxProjected)
	case p.Method != "subspace" && p.Method != "pca" && p.Method != "pca-whiten":
		return fmt.Errorf("projection.method: %q is not subspace, pca or pca-whiten", p.Method)
	case len(p.Mean) != p.InputDim:
		return fmt.Errorf("projection.mean: %d values, want %d", len(p.Mean), p.InputDim)
	case len(p.Matrix) != Dim*p.InputDim:
		return fmt.Errorf("projection.matrix: %d values, want %d×%d", len(p.Matrix), Dim, p.InputDim)
	}
	for _, v := range p.Mean {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return errors.New("projection.mean: not finite")
		}
	}
	for _, v := range p.Matrix {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return errors.New("projection.matrix: not finite")
		}
	}
	return nil
}

// Digest is the SHA-256 of Mean's then Matrix's little-endian bytes.
func (p Projection) Digest() string {
	h := sha256.New()
	var b [4]byte
	for _, vs := range [][]float32{p.Mean, p.Matrix} {
		for _, v := range vs {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			h.Write(b[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ModelID is the id stamped on embeddings of model projected by p: the
// model's, with the projection's digest, so that templates enrolled under
// one projection are never compared with probes of a refitted one.
func (p Projection) ModelID(model string) string {
	return model + "+proj-" + p.Digest()[:12]
}

// Apply projects raw (InputDim values) to a unit-length embedding. The raw
// output is brought to unit length first, as the model's cosine compares
// it, so that the fit and each face weigh directions, not the network's
// output norm.
func (p *Projection) Apply(raw []float32) Embedding {
	var out Embedding
	var n float64
	for _, v := range raw {
		n += float64(v) * float64(v)
	}
	inv := 0.0
	if n > 0 {
		inv = 1 / math.Sqrt(n)
	}
	u := make([]float64, len(raw))
	for i, v := range raw {
		u[i] = float64(v)*inv - float64(p.Mean[i])
	}
	for r := range Dim {
		row := p.Matrix[r*p.InputDim : (r+1)*p.InputDim]
		var s float64
		for i, w := range row {
			s += float64(w) * u[i]
		}
		out[r] = float32(s)
	}
	out.Normalize()
	return out
}

// MaxProjected bounds a projection's input: far above any face
// embedder's output (512).
const MaxProjected = 4096

func encodeFloats(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeFloats(s string) ([]float32, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of float32", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}
