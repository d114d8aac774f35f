package enroll_test

import (
	"bytes"
	"strings"
	"testing"

	"concierge/enroll"
	"concierge/models"
)

// TestCalibrationDoor: the door factor and offset of learning from
// confirmed visits are data in the shipped calibrations (the figures of
// `concierge eval visits`, docs/accuracy.md); dlib has none, so it learns
// nothing; and a calibration refuses values no measurement gives.
func TestCalibrationDoor(t *testing.T) {
	for engine, want := range map[string][2]float64{
		models.EngineFoamliu:       {1.271, 0.05},
		models.EngineMobileFaceNet: {1.294, 0.05},
		models.EngineDlib:          {0, 0},
	} {
		b, err := models.ShippedCalibration(engine)
		if err != nil {
			t.Fatal(err)
		}
		c, err := enroll.ParseCalibration(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", engine, err)
		}
		if c.DoorFactor != want[0] || c.DoorOffset != want[1] {
			t.Errorf("%s: door factor %v, offset %v; want %v, %v", engine, c.DoorFactor, c.DoorOffset, want[0], want[1])
		}
	}
	b, _ := models.ShippedCalibration(models.EngineFoamliu)
	good, err := enroll.ParseCalibration(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*enroll.Calibration){
		"door_factor":        func(c *enroll.Calibration) { c.DoorFactor = 0.5 },
		"door_offset":        func(c *enroll.Calibration) { c.DoorOffset = -0.05 },
		"door_offset: needs": func(c *enroll.Calibration) { c.DoorFactor = 0 },
	} {
		c := good
		edit(&c)
		if _, err := c.Marshal(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s: %v", name, err)
		}
	}
}
