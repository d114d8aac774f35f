package models

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"concierge/face"
)

// Dim is the only embedding length the product stores: face.Embedding is
// [128]float32, a sealed template is 512 bytes, and the gallery, the bus
// and the backups all carry that size (docs/engines.md says what changing
// it costs). It is face.Dim, named here for the descriptions.
const Dim = face.Dim

// Embedder describes an ONNX face embedder: which file, and how it wants
// its input. The two shipped MobileFaceNets are described by data files in
// models/engines (ShippedEmbedder), a bank's own model by vision.embedder in
// the config; vision loads either the same way. Fields are in the units a
// model card gives them, so a description can be copied from one.
type Embedder struct {
	// Model is the id stamped on every embedding and template: two
	// embeddings are compared only when their ids are equal, so a new
	// model, or new weights, needs a new id.
	Model string `yaml:"model" json:"model"`
	// Path is the ONNX file; a relative path is inside models.dir.
	Path string `yaml:"path" json:"path"`
	// SHA256 pins the file: a different file is refused before OpenCV
	// sees it (a corrupt ONNX aborts the process inside OpenCV).
	SHA256 string `yaml:"sha256" json:"sha256"`
	// Input is the network's input name; empty takes its first input.
	Input string `yaml:"input" json:"input,omitempty"`
	// Size is the aligned crop's width and height in pixels.
	Size [2]int `yaml:"size" json:"size"`
	// Channels is the channel order the network wants: "rgb" or "bgr".
	Channels string `yaml:"channels" json:"channels"`
	// Mean is subtracted from each channel, in the network's channel
	// order and 0-255 units; then the value is multiplied by Scale, or
	// divided by Std (one value or one per channel). Give Scale or Std.
	Mean  []float64 `yaml:"mean" json:"mean"`
	Scale float64   `yaml:"scale" json:"scale,omitempty"`
	Std   []float64 `yaml:"std" json:"std,omitempty"`
	// Template is where the five landmarks (image-wise left eye, right
	// eye, nose tip, left and right mouth corner) go in the crop: a
	// built-in name (TemplateArcFace112) or Points.
	Template string       `yaml:"template" json:"template,omitempty"`
	Points   [][2]float64 `yaml:"points" json:"points,omitempty"`
	// OutputDim is the length of the network's output: Dim, or more, in
	// which case the calibration's Projection takes it to Dim.
	OutputDim int `yaml:"output_dim" json:"output_dim"`
	// Flip adds the embedding of the mirrored crop before normalising.
	Flip bool `yaml:"flip" json:"flip"`
	// Batch says the network takes several crops in one pass; without it
	// the mirrored crop is a second pass.
	Batch bool `yaml:"batch" json:"batch"`
	// Normalize is how the output becomes the stored embedding: "l2", to
	// unit length, so that the product's Euclidean distance is a function
	// of the cosine (d² = 2 − 2·cos) and cosine-trained models work.
	Normalize string `yaml:"normalize" json:"normalize"`
	// Projection takes an output of OutputDim > Dim values to Dim. It is
	// not part of the description but of the calibration fitted for it
	// (enroll.Calibration), attached when the engine is loaded.
	Projection *face.Projection `yaml:"-" json:"-"`
}

// TemplateArcFace112 is the five-point template of ArcFace's 112×112 crops
// (insightface), which both shipped MobileFaceNets were trained on.
const TemplateArcFace112 = "arcface-112"

// ArcFace112 are TemplateArcFace112's points.
var ArcFace112 = [5][2]float64{
	{38.2946, 51.6963},
	{73.5318, 51.5014},
	{56.0252, 71.7366},
	{41.5493, 92.3655},
	{70.7299, 92.2041},
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate names the first field a description gets wrong.
func (e Embedder) Validate() error {
	switch {
	case strings.TrimSpace(e.Model) == "" || strings.ContainsAny(e.Model, " \t\n"):
		return errors.New("model: an id without spaces must be set (templates carry it)")
	case e.Path == "":
		return errors.New("path: the ONNX file must be set")
	case !hexSHA256.MatchString(e.SHA256):
		return fmt.Errorf("sha256: %q is not 64 lowercase hex digits", e.SHA256)
	case e.Size[0] < 16 || e.Size[1] < 16 || e.Size[0] > 1024 || e.Size[1] > 1024:
		return fmt.Errorf("size: %v must be [width, height] in pixels, each 16-1024", e.Size)
	case e.Channels != "rgb" && e.Channels != "bgr":
		return fmt.Errorf("channels: %q is not rgb or bgr", e.Channels)
	case len(e.Mean) != 1 && len(e.Mean) != 3:
		return fmt.Errorf("mean: %d values, want 1 or 3 (0-255 units, in the network's channel order)", len(e.Mean))
	case (e.Scale > 0) == (len(e.Std) > 0):
		return errors.New("scale, std: give exactly one (value = (pixel − mean) · scale, or / std)")
	case e.Scale < 0:
		return fmt.Errorf("scale: %v must be > 0", e.Scale)
	case len(e.Std) != 0 && len(e.Std) != 1 && len(e.Std) != 3:
		return fmt.Errorf("std: %d values, want 1 or 3", len(e.Std))
	case e.OutputDim < Dim || e.OutputDim > face.MaxProjected:
		return fmt.Errorf("output_dim: %d is not supported: Concierge stores %d-d embeddings (face.Embedding, sealed templates, the bus); "+
			"a model with more outputs (up to %d) is projected to %d by its calibration, one with fewer cannot be (docs/engines.md)", e.OutputDim, Dim, face.MaxProjected, Dim)
	case e.OutputDim == Dim && e.Projection != nil:
		return fmt.Errorf("output_dim: %d needs no projection, but the calibration carries one (fitted for another model)", Dim)
	case e.Normalize != "l2":
		return fmt.Errorf("normalize: %q is not supported (want l2: embeddings are compared by Euclidean distance on unit vectors)", e.Normalize)
	}
	for _, s := range e.Std {
		if s <= 0 {
			return fmt.Errorf("std: %v must be > 0", e.Std)
		}
	}
	if _, err := e.TemplatePoints(); err != nil {
		return err
	}
	if e.Projection != nil {
		if err := e.Projection.Validate(e.OutputDim); err != nil {
			return err
		}
	}
	return nil
}

// EmbeddingModel is the id stamped on the embeddings: Model, or for a
// projected model Model with the projection's digest (Projection.ModelID).
func (e Embedder) EmbeddingModel() string {
	if e.Projection != nil {
		return e.Projection.ModelID(e.Model)
	}
	return e.Model
}

// TemplatePoints returns the five landmark positions in the crop.
func (e Embedder) TemplatePoints() ([5][2]float64, error) {
	var pts [5][2]float64
	switch {
	case e.Template != "" && len(e.Points) > 0:
		return pts, errors.New("template, points: give one, not both")
	case e.Template == TemplateArcFace112:
		if e.Size != [2]int{112, 112} {
			return pts, fmt.Errorf("template: %s is for 112x112 crops, size is %v (give points for another size)", TemplateArcFace112, e.Size)
		}
		return ArcFace112, nil
	case e.Template != "":
		return pts, fmt.Errorf("template: %q is not a built-in template (%s), give points instead", e.Template, TemplateArcFace112)
	case len(e.Points) != 5:
		return pts, fmt.Errorf("points: %d points, want five [x, y] (left eye, right eye, nose, left and right mouth corner)", len(e.Points))
	}
	for i, p := range e.Points {
		if p[0] < 0 || p[1] < 0 || p[0] > float64(e.Size[0]) || p[1] > float64(e.Size[1]) {
			return pts, fmt.Errorf("points[%d]: %v lies outside the %dx%d crop", i, p, e.Size[0], e.Size[1])
		}
		pts[i] = p
	}
	return pts, nil
}

// File returns the ONNX file's path, a relative Path taken inside dir.
func (e Embedder) File(dir string) string {
	if filepath.IsAbs(e.Path) {
		return e.Path
	}
	return filepath.Join(dir, e.Path)
}

// ParseEmbedder reads a YAML description and validates it.
func ParseEmbedder(r io.Reader) (Embedder, error) {
	var e Embedder
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("embedder description: %w", err)
	}
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("embedder description: %w", err)
	}
	return e, nil
}
