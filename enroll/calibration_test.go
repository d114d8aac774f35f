package enroll_test

import (
	"bytes"
	"strings"
	"testing"

	"concierge/enroll"
	"concierge/face"
	"concierge/models"
)

// TestShippedCalibrations: the engines' rules and tails, data files since
// they left cmd/concierge's Go constants, hold exactly the values those
// constants held, and name the model files they were measured on.
func TestShippedCalibrations(t *testing.T) {
	legacy := map[string]struct {
		threshold, margin, faceSlack float64
		single, track                enroll.Tail
		file                         string
	}{
		models.EngineDlib: {0.30, 0.10, 0.15, enroll.Tail{Alpha: -10.154, Beta: 24.429}, enroll.Tail{Alpha: -10.021, Beta: 29.839}, models.DlibResNet},
		models.EngineMobileFaceNet: {0.78, 0.08, 0.20, enroll.Tail{Alpha: -12.608, Beta: 11.285}, enroll.Tail{Alpha: -11.415, Beta: 10.935},
			models.MobileFaceNetPaddleX},
		models.EngineFoamliu: {0.76, 0.08, 0.20, enroll.Tail{Alpha: -12.104, Beta: 10.884}, enroll.Tail{Alpha: -11.215, Beta: 10.838},
			models.MobileFaceNetFoamliu},
	}
	for engine, want := range legacy {
		b, err := models.ShippedCalibration(engine)
		if err != nil {
			t.Fatal(err)
		}
		c, err := enroll.ParseCalibration(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", engine, err)
		}
		if r := c.Rule(); r != (enroll.Rule{Threshold: want.threshold, Margin: want.margin, FaceSlack: want.faceSlack}) {
			t.Errorf("%s: rule %+v, want %+v", engine, r, want)
		}
		if c.Tail != want.single || c.TrackTail != want.track {
			t.Errorf("%s: tails %+v %+v, want %+v %+v", engine, c.Tail, c.TrackTail, want.single, want.track)
		}
		f, _ := models.Lookup(want.file)
		if c.SHA256 != f.SHA256 {
			t.Errorf("%s: calibration names sha256 %s, the catalogue's %s is %s", engine, c.SHA256, f.Name, f.SHA256)
		}
		if engine != models.EngineDlib {
			d, err := models.ShippedEmbedder(engine)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Check(d.Model, d.SHA256); err != nil {
				t.Errorf("%s: %v", engine, err)
			}
		}
	}
}

func TestCalibrationRefuses(t *testing.T) {
	b, _ := models.ShippedCalibration(models.EngineFoamliu)
	good, err := enroll.ParseCalibration(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := good.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if back, err := enroll.ParseCalibration(bytes.NewReader(out)); err != nil || back != good {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if err := good.Check(good.Model, strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "--calibrate") {
		t.Errorf("another file's digest: %v, want an error saying how to calibrate", err)
	}
	if err := good.Check("other-model", good.SHA256); err == nil {
		t.Error("another model id accepted")
	}
	for name, edit := range map[string]func(*enroll.Calibration){
		"model":      func(c *enroll.Calibration) { c.Model = "" },
		"sha256":     func(c *enroll.Calibration) { c.SHA256 = "abc" },
		"threshold":  func(c *enroll.Calibration) { c.Threshold = 0 },
		"face_slack": func(c *enroll.Calibration) { c.FaceSlack = 2 },
		"tail":       func(c *enroll.Calibration) { c.TrackTail = enroll.Tail{} },
	} {
		c := good
		edit(&c)
		if _, err := c.Marshal(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s: %v", name, err)
		}
	}
	if _, err := enroll.ParseCalibration(strings.NewReader("model: x\ntreshold: 0.7\n")); err == nil {
		t.Error("misspelt key accepted")
	}
}

// TestCalibrationProjection: a calibration carries a projection through
// the file bit for bit, and CheckOutput asks a model of another output size
// for one, and a 128-d model for none.
func TestCalibrationProjection(t *testing.T) {
	b, _ := models.ShippedCalibration(models.EngineFoamliu)
	c, err := enroll.ParseCalibration(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckOutput(128); err != nil {
		t.Errorf("128-d model, no projection: %v", err)
	}
	if err := c.CheckOutput(512); err == nil || !strings.Contains(err.Error(), "no projection") {
		t.Errorf("512-d model, no projection: %v", err)
	}
	const d = 512
	p := &face.Projection{InputDim: d, Method: "subspace", Mean: make([]float32, d), Matrix: make([]float32, face.Dim*d), Faces: 389, People: 15, Kept: 0.93}
	for i := range p.Matrix {
		p.Matrix[i] = float32(i%11) / 7
	}
	c.Projection = p
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := enroll.ParseCalibration(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if got.Projection == nil || got.Projection.Digest() != p.Digest() || got.Projection.Kept != 0.93 || got.Tail != c.Tail {
		t.Fatalf("round trip lost the projection or the tails")
	}
	if err := got.CheckOutput(d); err != nil {
		t.Errorf("512-d model with its projection: %v", err)
	}
	for _, dim := range []int{128, 256} {
		if err := got.CheckOutput(dim); err == nil {
			t.Errorf("%d-d model with a projection of 512: accepted", dim)
		}
	}
}
