package eval

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gopkg.in/yaml.v3"

	"concierge/enroll"
)

// DoorCalibration is what an engine's calibration file needs for the
// daemon to learn under this result's policy (enroll.Calibration's
// door_factor and door_offset): the door factor rounded up to thousandths,
// and the policy's penalty, which the daemon's gallery adds to the door
// centroid's distance. ok is false for a policy the daemon cannot score:
// anything but one door centroid (DoorMean) of a capped number of faces,
// every face of a visit.
func (res *VisitsResult) DoorCalibration() (factor, offset float64, ok bool) {
	d := res.Config.Door
	if d.Mode != DoorMean || d.PerVisit != 0 || d.Cap < 1 {
		return 0, 0, false
	}
	return math.Ceil(res.DoorFactor*1000-1e-9) / 1000, d.Penalty, true
}

// UpdateDoorCalibration sets door_factor and door_offset in the existing
// calibration file at path, which must have been measured on model,
// keeping its other keys and its comments, and returns the calibration
// as written. The file is replaced whole (a temporary file renamed), so a
// reader never sees half of it.
func UpdateDoorCalibration(path, model string, factor, offset float64) (enroll.Calibration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return enroll.Calibration{}, err
	}
	cal, err := enroll.ParseCalibration(bytes.NewReader(b))
	if err != nil {
		return cal, fmt.Errorf("%s: %w", path, err)
	}
	if cal.Model != model {
		return cal, fmt.Errorf("%s was measured on %s, these visits on %s", path, cal.Model, model)
	}
	cal.DoorFactor, cal.DoorOffset = factor, offset
	if err := cal.Validate(); err != nil {
		return cal, fmt.Errorf("%s: %w", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return cal, fmt.Errorf("%s: not a calibration mapping", path)
	}
	m := doc.Content[0]
	set := func(key string, v float64) {
		val := strconv.FormatFloat(v, 'f', -1, 64)
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				m.Content[i+1].Kind, m.Content[i+1].Tag, m.Content[i+1].Value = yaml.ScalarNode, "!!float", val
				return
			}
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: val})
	}
	set("door_factor", factor)
	set("door_offset", offset)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return cal, err
	}
	if back, err := enroll.ParseCalibration(bytes.NewReader(out.Bytes())); err != nil || back != cal {
		return cal, fmt.Errorf("%s: the updated file would not read back as written (%v)", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return cal, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".calibration-*")
	if err != nil {
		return cal, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return cal, err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return cal, err
	}
	if err := tmp.Close(); err != nil {
		return cal, err
	}
	return cal, os.Rename(tmp.Name(), path)
}
