package enroll_test

import (
	"bytes"
	"strings"
	"testing"

	"concierge/enroll"
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
