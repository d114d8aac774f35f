package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"concierge/enroll"
	"concierge/eval"
	"concierge/internal/testenv"
	"concierge/models"
)

// TestEvalVisitsKpop is issue 15's return-visit simulation on the kpop
// photos with the engine a fresh install ships (foamliu's MobileFaceNet):
// every door policy is measured, and the chosen one (a door centroid of
// the last 10 confirmed faces, 0.05 stricter than the enrollment's)
// lowers the threshold only by what its door rows add to strangers'
// chances (a factor of 1.27), so visit 1 loses a point, while later
// visits are recognised far more often and no stranger visit is announced
// (docs/accuracy.md reports the same figures). The daemon runs that
// policy: the engine's shipped calibration holds the door factor and
// offset measured here.
func TestEvalVisitsKpop(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "concierge.yaml")
	yaml := "branch: t1\ndb: " + filepath.Join(dir, "c.db") + "\nmodels:\n  dir: " + testenv.Shared(t, "models") +
		"\nvision:\n  engine: mobilefacenet-foamliu\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := evalCLI(t, "visits", "--config", cfg, "--door", "all", "--json", testenv.Shared(t, "data/kpop"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Results []eval.VisitsResult `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	by := map[eval.DoorMode]eval.VisitsResult{}
	for _, r := range rep.Results {
		by[r.Config.Door.Mode] = r
	}
	none, chosen := by[eval.DoorNone], by[eval.DoorMean]
	if len(rep.Results) != len(eval.DoorModes) || len(chosen.Sizes) != 3 || chosen.Sizes[1].Customers != 1000 {
		t.Fatalf("%d results, sizes %+v", len(rep.Results), chosen.Sizes)
	}
	if chosen.Config.Door != eval.DefaultVisits.Door {
		t.Fatalf("--door mean ran %+v, want the default policy %+v", chosen.Config.Door, eval.DefaultVisits.Door)
	}
	b, err := models.ShippedCalibration(models.EngineFoamliu)
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := enroll.ParseCalibration(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f, o, ok := chosen.DoorCalibration(); !ok || f != shipped.DoorFactor || o != shipped.DoorOffset {
		t.Errorf("measured door factor %v, offset %v (%v); the shipped calibration holds %v, %v", f, o, ok, shipped.DoorFactor, shipped.DoorOffset)
	}
	at := func(r eval.VisitsResult, visit int) (ann, card float64) {
		v := r.Sizes[1].Visits[visit-1]
		return v.Announced.Rate, v.Carded.Rate
	}
	for _, m := range []struct {
		what           string
		got, want, tol float64
	}{
		{"threshold at 1,000, kiosk only", none.Sizes[1].Threshold, 0.564, 0.001},
		{"threshold at 1,000, chosen", chosen.Sizes[1].Threshold, 0.561, 0.001},
		{"band at 1,000, chosen", chosen.Sizes[1].Band, 0.656, 0.001},
		{"door factor, chosen", chosen.DoorFactor, 1.27, 0.01},
	} {
		if math.Abs(m.got-m.want) > m.tol {
			t.Errorf("%s: %.3f, want %.3f", m.what, m.got, m.want)
		}
	}
	for _, m := range []struct {
		what      string
		r         eval.VisitsResult
		visit     int
		ann, card float64
	}{
		{"kiosk only, visit 1", none, 1, 0.595, 0.310},
		{"kiosk only, visit 3", none, 3, 0.575, 0.295},
		{"chosen, visit 1", chosen, 1, 0.595, 0.310},
		{"chosen, visit 2", chosen, 2, 0.731, 0.204},
		{"chosen, visit 3", chosen, 3, 0.870, 0.082},
	} {
		ann, card := at(m.r, m.visit)
		if math.Abs(ann-m.ann) > 0.006 || math.Abs(card-m.card) > 0.006 {
			t.Errorf("%s at 1,000: %.3f announced, %.3f carded; want %.3f, %.3f", m.what, ann, card, m.ann, m.card)
		}
	}
	for _, r := range rep.Results {
		for _, s := range r.Sizes {
			if s.StrangerAlerts.Events != 0 || s.WrongAlerts.Events != 0 || s.WrongCards.Events != 0 || s.StrangerAlerts.Trials != 443 {
				t.Errorf("%s at %d: stranger alerts %d/%d, wrong alerts %d, wrong cards %d", r.Config.Door, s.Customers,
					s.StrangerAlerts.Events, s.StrangerAlerts.Trials, s.WrongAlerts.Events, s.WrongCards.Events)
			}
			if s.Threshold > none.Sizes[0].Threshold+1e-9 && s.Customers == 100 {
				t.Errorf("%s: threshold %.3f above the kiosk-only %.3f", r.Config.Door, s.Threshold, none.Sizes[0].Threshold)
			}
		}
	}
}

// TestEvalVisitsCalibrate: `eval visits --calibrate FILE` writes the door
// factor it measured and the policy's offset into an existing calibration
// file, keeping its other values and comments; it refuses a policy the
// daemon cannot score and a file measured on another model, leaving the
// file as it was. (On the idols' dlib descriptors, which run in a second:
// the shipped dlib calibration itself keeps no factor.)
func TestEvalVisitsCalibrate(t *testing.T) {
	idols := testenv.Shared(t, "data/idols-descriptors.json")
	dir := t.TempDir()
	file := func(engine string) (string, []byte) {
		b, err := models.ShippedCalibration(engine)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, engine+".calibration.yaml")
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
		return p, b
	}
	cfg := evalConfig(t)
	dlib, orig := file(models.EngineDlib)
	args := []string{"visits", "--config", cfg, "--track", "3", "--visits", "3", "--seeds", "5"}
	out, stderr, code := evalCLI(t, append(args, "--calibrate", dlib, idols)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "door_factor: ") || !strings.Contains(stderr, "written to "+dlib) {
		t.Fatalf("report %q, stderr %q: want the values and where they went", out, stderr)
	}
	got, err := enroll.ReadCalibration(dlib)
	if err != nil {
		t.Fatal(err)
	}
	was, _ := enroll.ParseCalibration(bytes.NewReader(orig))
	if got.DoorFactor < 1 || got.DoorOffset != eval.DefaultVisits.Door.Penalty {
		t.Fatalf("door factor %v, offset %v written", got.DoorFactor, got.DoorOffset)
	}
	if !strings.Contains(out, fmt.Sprintf("door_factor: %g\n", got.DoorFactor)) {
		t.Errorf("the report's door factor is not the one written (%v): %s", got.DoorFactor, out)
	}
	got.DoorFactor, got.DoorOffset = 0, 0
	if got != was {
		t.Errorf("other values changed: %+v, was %+v", got, was)
	}
	if b, _ := os.ReadFile(dlib); !bytes.Contains(b, []byte("# Impostor tails fitted by")) {
		t.Errorf("comments lost:\n%s", b)
	}
	if st, _ := os.Stat(dlib); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the file's 0640", st.Mode().Perm())
	}

	foam, foamWas := file(models.EngineFoamliu)
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"a policy the gallery cannot score", []string{"--door", "faces", "--calibrate", foam}, 2},
		{"another model's file", []string{"--calibrate", foam}, 1},
	} {
		_, stderr, code := evalCLI(t, append(append(slices.Clone(args), tc.args...), idols)...)
		if code == 0 || !strings.Contains(stderr, "--calibrate") {
			t.Errorf("%s: exit %d, %s", tc.name, code, stderr)
		}
		if b, _ := os.ReadFile(foam); !bytes.Equal(b, foamWas) {
			t.Errorf("%s: the file changed", tc.name)
		}
	}
}

// TestEvalVisitsOthers: `eval visits --others` brings another labelled
// set's people into the simulation (half of the idols' descriptors as the
// set, the other half as the others): they fill the gallery towards each
// size and come in as strangers, the report says so, every stranger
// alert is listed, and --others of another kind than the set is a usage
// error.
func TestEvalVisitsOthers(t *testing.T) {
	b, err := os.ReadFile(testenv.Shared(t, "data/idols-descriptors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all struct {
		Idols []json.RawMessage `json:"idols"`
		Faces []struct {
			Descriptor string `json:"descriptor"`
			IdolID     string `json:"idol_id"`
		} `json:"faces"`
	}
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range all.Faces {
		if !slices.Contains(ids, f.IdolID) {
			ids = append(ids, f.IdolID)
		}
	}
	dir := t.TempDir()
	half := func(name string, mine bool) string {
		part := all
		part.Faces = nil
		for _, f := range all.Faces {
			if (slices.Index(ids, f.IdolID) < len(ids)/2) == mine {
				part.Faces = append(part.Faces, f)
			}
		}
		b, err := json.Marshal(part)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	set, others := half("set.json", true), half("others.json", false)
	args := []string{"visits", "--config", evalConfig(t), "--track", "3", "--visits", "3", "--seeds", "3", "--sizes", "10,100,10000"}
	out, stderr, code := evalCLI(t, append(args, "--others", others, "--verify-target", "0.01,0.05", "--json", set)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Results []eval.VisitsResult `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results[0].Config.VerifyTarget != 0.01 || rep.Results[1].Config.VerifyTarget != 0.05 {
		t.Fatalf("%d results; want one per card budget", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.OtherIDs < 50 {
			t.Fatalf("%d other people", r.OtherIDs)
		}
		for _, s := range r.Sizes {
			want := max(r.Customers, min(s.Customers, r.Customers+r.OtherIDs/2))
			if s.Gallery != want || s.OtherAlerts.Trials == 0 || len(s.Announced) != s.OtherAlerts.Events+s.StrangerAlerts.Events {
				t.Errorf("at %d: gallery %d (want %d), %d other strangers' visits, %d alerts listed", s.Customers, s.Gallery, want,
					s.OtherAlerts.Trials, len(s.Announced))
			}
		}
	}
	if b, c := rep.Results[1].Sizes[1].Band, rep.Results[0].Sizes[1].Band; b <= c {
		t.Errorf("band %.3f for 5 cards per 100, %.3f for 1", b, c)
	}
	text, _, code := evalCLI(t, append(args, "--others", others, set)...)
	if code != 0 || !strings.Contains(text, "other people fill each gallery") || !strings.Contains(text, "other strangers' alerts") {
		t.Errorf("exit %d, text report:\n%s", code, text)
	}
	for _, bad := range [][]string{{"--others", dir}, {"--verify-target", "2"}, {"--verify-target", "x"}} {
		_, stderr, code := evalCLI(t, append(append(slices.Clone(args), bad...), set)...)
		if code != 2 || !strings.Contains(stderr, bad[0]) {
			t.Errorf("%v: exit %d, %s", bad, code, stderr)
		}
	}
}
