package eval

import (
	"bytes"
	"math"
	"path/filepath"
	"testing"

	"concierge/enroll"
	"concierge/models"
)

// TestCalibrateIdols: the calibration written from the idols descriptors
// (dlib) gives the thresholds the shipped dlib calibration, fitted on the
// same descriptors, gives; it is written whole and read back; and a report
// of another model or without an open-set simulation is refused.
func TestCalibrateIdols(t *testing.T) {
	set := idolSet(t)
	opt := DefaultOptions()
	opt.Duplicate = -1 // idolSet deduped already
	rep, err := Analyze(set, opt)
	if err != nil {
		t.Fatal(err)
	}
	rep.Model = "dlib-resnet-v1"
	b, _ := models.ShippedCalibration(models.EngineDlib)
	want, err := enroll.ParseCalibration(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Calibrate(rep, want.Model, want.SHA256, want.Margin, want.FaceSlack)
	if err != nil {
		t.Fatal(err)
	}
	g := enroll.OpenSet{Tail: got.Tail, Track: got.TrackTail, Target: 1e-4, Ceiling: 2}
	w := enroll.OpenSet{Tail: want.Tail, Track: want.TrackTail, Target: 1e-4, Ceiling: 2}
	for _, n := range []int{100, 1_000, 10_000} {
		t.Logf("%d customers: %.3f written, %.3f shipped", n, g.Threshold(n), w.Threshold(n))
		if d := g.Threshold(n) - w.Threshold(n); math.Abs(d) > 0.01 {
			t.Errorf("%d customers: threshold %.3f written, %.3f shipped", n, g.Threshold(n), w.Threshold(n))
		}
	}
	// The idols' simulated galleries hold 89 customers, the shipped
	// ceiling was chosen on about ten: a stranger meets more customers
	// here, so the ceiling comes out lower, not higher.
	t.Logf("ceiling %.2f (shipped %.2f)", got.Threshold, want.Threshold)
	if got.Threshold < 0.15 || got.Threshold > want.Threshold {
		t.Errorf("ceiling %.2f, want in [0.15, %.2f]", got.Threshold, want.Threshold)
	}

	path := filepath.Join(t.TempDir(), "dlib.calibration.yaml")
	if err := WriteCalibration(path, got); err != nil {
		t.Fatal(err)
	}
	back, err := enroll.ReadCalibration(path)
	if err != nil || back != got {
		t.Fatalf("read back %+v, %v; wrote %+v", back, err, got)
	}

	if _, err := Calibrate(rep, "mobilefacenet-foamliu-ms1m", want.SHA256, 0.08, 0.2); err == nil {
		t.Error("a dlib report calibrated foamliu")
	}
	if _, err := Calibrate(&Report{Model: want.Model}, want.Model, want.SHA256, 0.08, 0.2); err == nil {
		t.Error("a report without a simulation calibrated")
	}
}
