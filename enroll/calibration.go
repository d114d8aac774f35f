package enroll

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"concierge/face"
)

// Calibration is an engine's measured decision rule: embeddings of
// different models live in different spaces, so a threshold only means
// something for the model it was measured on, and the file records which
// (Model, SHA256). The shipped engines' calibrations are data files in
// models/engines; `concierge eval --folder DIR --calibrate OUT` writes one
// for a bank's embedder from the bank's own labelled photos.
type Calibration struct {
	// Model and SHA256 are the model id and the ONNX file's digest (for
	// dlib, its ResNet's) the figures were measured with.
	Model  string `yaml:"model" json:"model"`
	SHA256 string `yaml:"sha256" json:"sha256"`
	// Threshold is the ceiling: the largest distance that keeps stranger
	// faces accepted at or under 0.1 % per face on small galleries. A
	// calibrated threshold never exceeds it.
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// Margin and FaceSlack complete the rule (Rule).
	Margin    float64 `yaml:"margin" json:"margin"`
	FaceSlack float64 `yaml:"face_slack" json:"face_slack"`
	// Tail is the impostor tail of single faces and TrackTail that of
	// 5-face tracks decided on their fused embedding alone, which no vote
	// count or face slack exceeds. OpenSet turns them into the threshold
	// for each gallery size and the verify band.
	Tail      Tail `yaml:"tail" json:"tail"`
	TrackTail Tail `yaml:"track_tail" json:"track_tail"`
	// Source says what the figures were measured on, for people.
	Source string `yaml:"source" json:"source,omitempty"`
	// Comparisons and TrackComparisons are the impostor comparisons the
	// tails were fitted to.
	Comparisons      int `yaml:"comparisons" json:"comparisons,omitempty"`
	TrackComparisons int `yaml:"track_comparisons" json:"track_comparisons,omitempty"`
	// Projection takes the outputs of a model whose output_dim is not 128
	// to the 128 the product stores; it was fitted on the calibration's
	// photos and the tails were measured on its projected embeddings, so
	// the two only make sense together. Nil for a 128-d model.
	Projection *face.Projection `yaml:"projection,omitempty" json:"-"`

	// DoorFactor and DoorOffset are what learning from confirmed visits
	// costs and how it is scored (match.door_templates, DoorPolicy): a
	// customer's door centroid (DoorGroup) counts DoorOffset farther than
	// their enrollment's (Gallery.SetGroupOffset), and so scored the door
	// rows multiply a stranger's chance by DoorFactor (OpenSet.DoorFactor),
	// both measured by `concierge eval visits`. DoorFactor 0 is "not
	// measured": the daemon then learns nothing.
	DoorFactor float64 `yaml:"door_factor,omitempty" json:"door_factor,omitempty"`
	DoorOffset float64 `yaml:"door_offset,omitempty" json:"door_offset,omitempty"`
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate names the first field the calibration gets wrong.
func (c Calibration) Validate() error {
	switch {
	case strings.TrimSpace(c.Model) == "":
		return errors.New("model: must name the model id the figures were measured with")
	case !hexDigest.MatchString(c.SHA256):
		return fmt.Errorf("sha256: %q is not 64 lowercase hex digits (the measured model file's)", c.SHA256)
	case !(c.Threshold > 0 && c.Threshold <= 2):
		return fmt.Errorf("threshold: %v must be in (0, 2]", c.Threshold)
	case c.Margin < 0 || c.Margin > 1:
		return fmt.Errorf("margin: %v must be in [0, 1]", c.Margin)
	case c.FaceSlack < 0 || c.FaceSlack > 1:
		return fmt.Errorf("face_slack: %v must be in [0, 1]", c.FaceSlack)
	case !c.Tail.Measured() || !c.TrackTail.Measured():
		return errors.New("tail, track_tail: both need a fitted alpha and a positive beta")
	case c.DoorFactor != 0 && !(c.DoorFactor >= 1 && c.DoorFactor <= 1000):
		return fmt.Errorf("door_factor: %v must be 0 (not measured) or in [1, 1000]", c.DoorFactor)
	case !(c.DoorOffset >= 0 && c.DoorOffset <= 1):
		return fmt.Errorf("door_offset: %v must be in [0, 1]", c.DoorOffset)
	case c.DoorOffset != 0 && c.DoorFactor == 0:
		return errors.New("door_offset: needs the door_factor measured with it")
	}
	if c.Projection != nil {
		return c.Projection.Validate(c.Projection.InputDim)
	}
	return nil
}

// CheckOutput checks the calibration against the model's output size: a
// model of outputDim ≠ 128 needs the projection the calibration was
// measured through, one of 128 none.
func (c Calibration) CheckOutput(outputDim int) error {
	switch {
	case outputDim != face.Dim && c.Projection == nil:
		return fmt.Errorf("the model outputs %d values and this calibration has no projection to %d: "+
			"run `concierge eval folder DIR --calibrate OUT` with this model, which fits one", outputDim, face.Dim)
	case outputDim == face.Dim && c.Projection != nil:
		return fmt.Errorf("the calibration carries a projection of %d values, but the model outputs %d: it was measured on another model", c.Projection.InputDim, outputDim)
	case c.Projection != nil:
		return c.Projection.Validate(outputDim)
	}
	return nil
}

// Check refuses a calibration measured on another model than the one
// configured: its thresholds would mean nothing there.
func (c Calibration) Check(model, sha256 string) error {
	if c.Model != model || c.SHA256 != sha256 {
		return fmt.Errorf("calibration was measured on %s (sha256 %s), not on the configured %s (sha256 %s): "+
			"run `concierge eval --folder DIR --calibrate OUT` with this model", c.Model, c.SHA256, model, sha256)
	}
	return nil
}

// Rule is the loosest rule the calibration allows: the ceiling.
func (c Calibration) Rule() Rule {
	return Rule{Threshold: c.Threshold, Margin: c.Margin, FaceSlack: c.FaceSlack}
}

// ParseCalibration reads a calibration file and validates it.
func ParseCalibration(r io.Reader) (Calibration, error) {
	var c Calibration
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("calibration: %w", err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("calibration: %w", err)
	}
	return c, nil
}

// ReadCalibration reads the calibration file at path.
func ReadCalibration(path string) (Calibration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Calibration{}, err
	}
	c, err := ParseCalibration(bytes.NewReader(b))
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Marshal is the calibration as the YAML file the daemon reads.
func (c Calibration) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	return yaml.Marshal(c)
}
