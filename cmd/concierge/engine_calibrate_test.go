package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"concierge/enroll"
	"concierge/internal/testenv"
	"concierge/models"
)

// engineCLI runs the CLI like the binary and returns stdout, stderr and the
// exit status.
func engineCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader("")}
	code := m.exitCode(m.Run(context.Background(), args))
	return out.String(), errb.String(), code
}

// sharedONNXDir is a model directory holding YuNet and foamliu's
// MobileFaceNet from the shared folder.
func sharedONNXDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{models.YuNet, models.MobileFaceNetFoamliu} {
		if err := os.Symlink(testenv.Shared(t, "models/"+f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// bankConfig writes a config whose engine is foamliu's MobileFaceNet
// described as a bank describes its own model, under another model id, with
// the calibration file cal.
func bankConfig(t *testing.T, modelsDir, model, cal string) string {
	t.Helper()
	d, err := models.ShippedEmbedder(engineFoamliu)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := "branch: t1\ndb: " + filepath.Join(dir, "c.db") + "\nmodels:\n  dir: " + modelsDir + "\nvision:\n  engine: embedder\n  embedder:\n" +
		"    model: " + model + "\n    path: " + d.Path + "\n    sha256: " + d.SHA256 + "\n    input: input0\n    size: [112, 112]\n" +
		"    channels: rgb\n    mean: [123.675, 116.28, 103.53]\n    std: [57.63]\n    template: arcface-112\n    output_dim: 128\n" +
		"    flip: true\n    batch: false\n    normalize: l2\n    calibration: " + cal + "\n"
	p := filepath.Join(dir, "concierge.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCalibrateFolder: `eval --folder --calibrate` on the kpop photos with
// the shipped foamliu engine writes a calibration that agrees with the
// shipped one within the noise of fewer splits (10 against 20): the same
// ceiling give or take a grid step or two, and calibrated thresholds within
// 0.02 at 100 to 10,000 customers. A bank's description of that model under
// its own id is then refused with that file (another model), calibrated
// although it has no calibration yet, and accepted with that one.
func TestCalibrateFolder(t *testing.T) {
	kpop := testenv.Shared(t, "data/kpop")
	dir := sharedONNXDir(t)
	out := filepath.Join(t.TempDir(), "foamliu.calibration.yaml")
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("models:\n  dir: "+dir+"\ndb: "+filepath.Join(t.TempDir(), "c.db")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := engineCLI(t, "eval", "--config", cfg, "--engine", engineFoamliu, "--folder", kpop, "--calibrate", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, err := enroll.ReadCalibration(out)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := models.ShippedCalibration(engineFoamliu)
	want, err := enroll.ParseCalibration(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("written: %+v", got)
	if got.Model != want.Model || got.SHA256 != want.SHA256 || got.Margin != want.Margin || got.FaceSlack != want.FaceSlack {
		t.Errorf("written %s %s margin %v slack %v, shipped %s %s %v %v", got.Model, got.SHA256, got.Margin, got.FaceSlack,
			want.Model, want.SHA256, want.Margin, want.FaceSlack)
	}
	if math.Abs(got.Threshold-want.Threshold) > 0.04 {
		t.Errorf("ceiling %.2f, shipped %.2f", got.Threshold, want.Threshold)
	}
	if got.Comparisons < 20_000 || got.TrackComparisons < 4_000 {
		t.Errorf("fitted on %d and %d comparisons", got.Comparisons, got.TrackComparisons)
	}
	g := enroll.OpenSet{Tail: got.Tail, Track: got.TrackTail, Target: 1e-4, Ceiling: got.Threshold}
	w := enroll.OpenSet{Tail: want.Tail, Track: want.TrackTail, Target: 1e-4, Ceiling: want.Threshold}
	for _, n := range []int{100, 1_000, 10_000} {
		if d := g.Threshold(n) - w.Threshold(n); math.Abs(d) > 0.02 {
			t.Errorf("%d customers: threshold %.3f from the written file, %.3f shipped", n, g.Threshold(n), w.Threshold(n))
		}
		t.Logf("%d customers: %.3f written, %.3f shipped", n, g.Threshold(n), w.Threshold(n))
	}

	// The same file under a bank's own model id: foamliu's calibration
	// names another model and is refused; calibrating the bank's
	// description writes one it accepts.
	m := &Main{Stderr: &bytes.Buffer{}, command: "run", configPath: bankConfig(t, dir, "bank-mfn-v1", out)}
	if _, err := m.config(); err == nil || !strings.Contains(err.Error(), "vision.embedder.calibration") || !strings.Contains(err.Error(), "bank-mfn-v1") {
		t.Fatalf("another model's calibration: %v", err)
	}
	bankCal := filepath.Join(t.TempDir(), "bank.yaml")
	bankCfg := bankConfig(t, dir, "bank-mfn-v1", bankCal)
	// Nine of the fifteen people keep the second pass short.
	_, stderr, code = engineCLI(t, "eval", "--config", bankCfg, "--folder", kpop, "--seeds", "20",
		"--labels", "Arin,Chaeyong,Chorong,Dahyun,Eunha,Irene,Jihyo,Lisa,Naeun", "--calibrate", bankCal)
	if code != 0 {
		t.Fatalf("calibrating the bank's embedder: exit %d: %s", code, stderr)
	}
	c, err := (&Main{Stderr: &bytes.Buffer{}, command: "run", configPath: bankCfg}).config()
	if err != nil {
		t.Fatal(err)
	}
	bank := c.calibration()
	if bank.Model != "bank-mfn-v1" || bank.SHA256 != want.SHA256 || !strings.Contains(bank.Source, "9 people") {
		t.Errorf("the bank's calibration %+v, want one of bank-mfn-v1 on the nine people", bank)
	}
	if o := c.openSet(); o.Tail != bank.Tail || o.Track != bank.TrackTail || o.Ceiling != bank.Threshold {
		t.Errorf("the daemon's policy %+v does not use the loaded calibration", o)
	}
	// A withdrawal does not wait for a calibration to be fixed: forget
	// warns and goes on to the database (where C1 is not enrolled).
	_, stderr, code = engineCLI(t, "forget", "--config", bankConfig(t, dir, "bank-mfn-v1", out), "--customer", "C1")
	if !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "not enrolled") {
		t.Errorf("forget with another model's calibration did not reach the database: exit %d, %s", code, stderr)
	}
	// The daemon's engine is the described one.
	stdout, stderr, code := engineCLI(t, "identify", "--config", bankCfg, testenv.Photo(t, "sample1.jpg"))
	if code != 0 || strings.Count(stdout, "\n") < 3 {
		t.Fatalf("identify with the bank's embedder: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestEmbedderConfigErrors: a described embedder without a calibration, with
// a missing or broken one, or one measured on another file, is a
// configuration error naming the key, never the shipped defaults.
func TestEmbedderConfigErrors(t *testing.T) {
	dir := t.TempDir()
	b, _ := models.ShippedCalibration(engineFoamliu)
	good := filepath.Join(dir, "good.yaml")
	other := filepath.Join(dir, "other.yaml")
	broken := filepath.Join(dir, "broken.yaml")
	cal, _ := enroll.ParseCalibration(bytes.NewReader(b))
	cal.Model = "bank-mfn-v1"
	out, _ := cal.Marshal()
	os.WriteFile(good, out, 0o600)
	cal.SHA256 = strings.Repeat("ab", 32)
	out, _ = cal.Marshal()
	os.WriteFile(other, out, 0o600)
	os.WriteFile(broken, []byte("model: bank-mfn-v1\nthreshold: 0.7\n"), 0o600)

	m := &Main{Stderr: &bytes.Buffer{}, command: "run", configPath: bankConfig(t, dir, "bank-mfn-v1", good)}
	c, err := m.config()
	if err != nil {
		t.Fatal(err)
	}
	if r := c.rule(); r != cal.Rule() {
		t.Errorf("rule %+v, want the file's %+v", r, cal.Rule())
	}
	for name, path := range map[string]string{"missing": filepath.Join(dir, "none.yaml"), "other file": other, "broken": broken} {
		m := &Main{Stderr: &bytes.Buffer{}, command: "run", configPath: bankConfig(t, dir, "bank-mfn-v1", path)}
		if _, err := m.config(); err == nil || !strings.Contains(err.Error(), "vision.embedder.calibration") {
			t.Errorf("%s calibration: %v", name, err)
		}
	}
	// No calibration named at all; a description under another engine;
	// an output size the product cannot store.
	p := bankConfig(t, dir, "bank-mfn-v1", "")
	for name, tc := range map[string]struct {
		edit func(string) string
		want string
	}{
		"no calibration": {func(s string) string { return strings.Replace(s, "    calibration: \n", "", 1) }, "vision.embedder.calibration"},
		"other engine":   {func(s string) string { return strings.Replace(s, "engine: embedder", "engine: dlib", 1) }, "vision.embedder"},
		"64-d":           {func(s string) string { return strings.Replace(s, "output_dim: 128", "output_dim: 64", 1) }, "output_dim"},
	} {
		raw, _ := os.ReadFile(p)
		_, err := ParseConfig(strings.NewReader(tc.edit(string(raw))))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
	// --calibrate measures photos.
	if _, stderr, code := engineCLI(t, "eval", "--descriptors", "d.json", "--calibrate", good); code != 2 || !strings.Contains(stderr, "--calibrate") {
		t.Errorf("--calibrate with --descriptors: exit %d, %s", code, stderr)
	}
	t.Setenv("CONCIERGE_VISION_EMBEDDER_CALIBRATION", other)
	if _, err := (&Main{Stderr: &bytes.Buffer{}, command: "run", configPath: bankConfig(t, dir, "bank-mfn-v1", good)}).config(); err == nil {
		t.Error("CONCIERGE_VISION_EMBEDDER_CALIBRATION did not override the file's calibration")
	}
	// A shipped engine may be re-calibrated, by a file measured on its model.
	c = DefaultConfig()
	c.Vision.Engine, c.Vision.Embedder.Calibration = engineFoamliu, good
	if err := c.resolveEngine(); err == nil || !strings.Contains(err.Error(), "bank-mfn-v1") {
		t.Errorf("foamliu with a calibration of another model: %v", err)
	}
}
