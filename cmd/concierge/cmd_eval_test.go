package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"concierge/eval"
	"concierge/internal/testenv"
	"concierge/replay"
)

// evalCLI runs `concierge eval` like the binary and returns stdout, stderr
// and the exit status.
func evalCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader("")}
	code := m.exitCode(m.Run(context.Background(), append([]string{"eval"}, args...)))
	return out.String(), errb.String(), code
}

// evalConfig writes a configuration that points at the real dlib models.
func evalConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := "branch: t1\ndb: " + filepath.Join(dir, "c.db") + "\nmodels:\n  dir: " + testenv.ModelsDir(t) + "\nvision:\n  pool: 2\n  engine: dlib\n"
	p := filepath.Join(dir, "concierge.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func decodeReport(t *testing.T, out string) eval.Report {
	t.Helper()
	var r eval.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	return r
}

func TestEvalUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"--descriptors", "a.json", "--folder", "dir"},
		{"--descriptors", "a.json", "--engine", "dlib"},
		{"--folder", "dir", "--engine", "hog"},
		{"--descriptors", "a.json", "--thresholds", "0.3,x"},
		{"--descriptors", "a.json", "extra"},
		{"--descriptors", "a.json", "--scoring", "max"},
		{"--folder", "dir", "--pad-mode", "mirror"},
		{"--folder", "dir", "--shrink", "8"},
		{"--descriptors", "a.json", "--shrink", "80"},
		// The subcommands: each takes its one argument and its own flags.
		{"folder"},
		{"clips", "a", "b"},
		{"lfw", "dir", "--seeds", "2"},
		{"descriptors", "a.json", "--labels", "x"},
		{"visitors", "dir"},
	} {
		if _, stderr, code := evalCLI(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
	if _, stderr, code := evalCLI(t, "--descriptors", filepath.Join(t.TempDir(), "missing.json")); code != 1 || !strings.Contains(stderr, "missing.json") {
		t.Errorf("missing file: exit %d, %s", code, stderr)
	}
}

// TestEvalDescriptors runs the calibration on the shared descriptor file
// and checks the report carries the figures docs/accuracy.md quotes.
func TestEvalDescriptors(t *testing.T) {
	path := testenv.Shared(t, "data/idols-descriptors.json")
	out, stderr, code := evalCLI(t, "--descriptors", path, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := decodeReport(t, out)
	if r.Source != "descriptors" || r.Model != "dlib-resnet-v1" || r.Faces != 1241 || r.Identities != 134 || len(r.Dropped) != 45 {
		t.Fatalf("report header %+v", r)
	}
	rec := r.Recommendation
	if rec == nil || rec.Rule.Threshold < 0.145 || rec.Rule.Threshold > 0.152 || rec.Rule.FaceSlack != 0.15 || rec.Warning == "" {
		t.Fatalf("recommendation %+v", rec)
	}
	// The configured rule is dlib's, calibrated for the simulated gallery
	// of 89 customers, with one vote and dlib's face slack.
	if r.Configured == nil || math.Abs(r.Configured.Rule.Threshold-0.177) > 5e-4 || r.Configured.Votes != 1 || r.Configured.Rule.FaceSlack != 0.15 {
		t.Fatalf("configured rule %+v", r.Configured)
	}
	if len(rec.Expected) != 3 || rec.Expected[2].Customers != 10_000 || rec.Expected[2].Single > 1e-4 {
		t.Fatalf("expected rates %+v", rec.Expected)
	}
	text, _, code := evalCLI(t, "--descriptors", path, "--scoring", "all")
	if code != 0 || !strings.Contains(text, "centroid") || !strings.Contains(text, "EER 20.") {
		t.Fatalf("text report (exit %d):\n%s", code, text)
	}
}

// TestEvalFolderDlib embeds three kpop identities with the dlib engine:
// tight crops are padded before detection, misses are counted, and a set
// this small is measured but not calibrated.
func TestEvalFolderDlib(t *testing.T) {
	cfg := evalConfig(t)
	dir := testenv.Shared(t, "data/kpop")
	out, stderr, code := evalCLI(t, "--config", cfg, "--folder", dir, "--labels", "Arin,Sana,Dahyun", "--seeds", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := decodeReport(t, out)
	// 11 + 13 + 20 photos; dlib's HOG detector misses 2 even padded; one
	// of Arin's photos is there twice and 5 of Dahyun's validation photos
	// repeat her training photos.
	if r.Images != 44 || len(r.Misses) != 2 || len(r.Dropped) != 6 || r.Faces != 36 || r.Identities != 3 {
		t.Fatalf("photos %d, misses %d, dropped %d, faces %d, identities %d", r.Images, len(r.Misses), len(r.Dropped), r.Faces, r.Identities)
	}
	if r.Recommendation != nil || !strings.Contains(r.CalibrationError, "too few") || r.Configured == nil {
		t.Fatalf("calibration %q, recommendation %v", r.CalibrationError, r.Recommendation)
	}
	if v := r.Verification; v.Genuine.Median >= v.Impostor.Median || v.EER <= 0 || v.EER >= 0.5 {
		t.Fatalf("verification %+v", v)
	}
	// Without padding dlib misses twice as many of the same crops.
	out, stderr, code = evalCLI(t, "--config", cfg, "--folder", dir, "--labels", "Arin,Sana,Dahyun", "--seeds", "2", "--pad", "0", "--json")
	if code != 0 {
		t.Fatalf("unpadded: exit %d: %s", code, stderr)
	}
	if r := decodeReport(t, out); len(r.Misses) != 4 {
		t.Fatalf("unpadded crops: %d misses, want 4", len(r.Misses))
	}
}

// TestEvalLFWDlib runs the fold protocol on a few real LFW pairs with the
// dlib engine, including an image in which dlib finds no face.
func TestEvalLFWDlib(t *testing.T) {
	cfg := evalConfig(t)
	src := testenv.Shared(t, "data/lfw/images_deepfunneled")
	dir := t.TempDir()
	for _, person := range []string{"Abel_Pacheco", "Akhmed_Zakayev", "Amber_Tamblyn", "James_Jones"} {
		if err := os.MkdirAll(filepath.Join(dir, "images_deepfunneled"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(src, person), filepath.Join(dir, "images_deepfunneled", person)); err != nil {
			t.Fatal(err)
		}
	}
	pairs := "2\t2\n" +
		"Abel_Pacheco\t1\t4\nAkhmed_Zakayev\t1\t3\nAbel_Pacheco\t1\tAkhmed_Zakayev\t1\nJames_Jones\t1\tAbel_Pacheco\t4\n" +
		"Amber_Tamblyn\t1\t2\nAkhmed_Zakayev\t2\t3\nAmber_Tamblyn\t1\tAbel_Pacheco\t1\nAkhmed_Zakayev\t2\tAmber_Tamblyn\t2\n"
	if err := os.WriteFile(filepath.Join(dir, "pairs.txt"), []byte(pairs), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := evalCLI(t, "--config", cfg, "--lfw", dir, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := decodeReport(t, out)
	l := r.LFW
	if l == nil || l.Folds != 2 || l.Pairs != 8 || l.MissedPairs != 1 || r.Images != 8 || r.Faces != 7 ||
		len(r.Misses) != 1 || r.Misses[0].Image != filepath.Join("James_Jones", "James_Jones_0001.jpg") {
		t.Fatalf("lfw %+v, misses %+v", l, r.Misses)
	}
	// These pairs are easy for dlib: every scored pair is right.
	if l.Mean != 1 || l.Thresholds[0] < 0.3 || l.Thresholds[0] > 0.9 {
		t.Fatalf("accuracy %v, thresholds %v", l.Accuracy, l.Thresholds)
	}
}

// TestEvalKpopShippedRule is the accuracy issue's acceptance run: with the
// shipped defaults (MobileFaceNet, the threshold calibrated for the
// simulated 10-customer galleries, its margin, checkin.votes), on the kpop
// photos with 3 enrolled per person and a third of the people held back as
// strangers, at most 0.1 % of stranger faces are taken for a customer, and
// the acceptance docs/accuracy.md reports holds; so do the figures at the
// engine's ceiling and on photos shrunk to a door camera's view.
func TestEvalKpopShippedRule(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "concierge.yaml")
	yaml := "branch: t1\ndb: " + filepath.Join(dir, "c.db") + "\nmodels:\n  dir: " + testenv.Shared(t, "models") +
		"\nvision:\n  engine: mobilefacenet\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                                     string
		args                                     []string
		threshold                                float64
		strangers, faces, visits, strangerVisits float64
	}{
		// The shipped rule learns from confirmed visits, but customers
		// without door rows, as all of these, are held to the kiosk-only
		// threshold (0.649 for those who hold one).
		{"shipped", nil, 0.654, 0, 0.147, 0.917, 0},
		// A fixed threshold at the ceiling decides fused tracks far beyond
		// the budget: 6 of 500 strangers' visits.
		{"ceiling", []string{"--threshold", "0.78"}, 0.78, 0.00085, 0.540, 0.996, 0.012},
		// The 160 px face crops shrunk to 80 px and JPEG 70, as a door
		// camera sees faces; strangers still never pass.
		{"door-camera faces", []string{"--shrink", "80"}, 0.654, 0, 0.114, 0.878, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--config", cfg, "--folder", testenv.Shared(t, "data/kpop"), "--seeds", "20", "--json"}, tc.args...)
			out, stderr, code := evalCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			r := decodeReport(t, out)
			c := r.Configured
			if c == nil || math.Abs(c.Rule.Threshold-tc.threshold) > 5e-4 || c.Rule.Margin != 0.08 || c.Rule.FaceSlack != 0.20 || c.Votes != 1 || c.Track != 5 {
				t.Fatalf("configured rule %+v", c)
			}
			if r.Faces != 353 || r.Identities != 15 {
				t.Fatalf("%d faces of %d people, want 353 of 15", r.Faces, r.Identities)
			}
			for _, m := range []struct {
				what      string
				got, want float64
				tol       float64
			}{
				{"stranger faces accepted", c.Single.StrangerAccept.Rate, tc.strangers, 0.00015},
				{"enrolled faces accepted", c.Single.Accept.Rate, tc.faces, 0.01},
				{"enrolled 5-face visits accepted", c.Fused.Accept.Rate, tc.visits, 0.01},
				{"enrolled taken for another customer", c.Single.WrongAccept.Rate + c.Fused.WrongAccept.Rate, 0, 0},
				{"stranger visits accepted", c.Fused.StrangerAccept.Rate, tc.strangerVisits, 1e-9},
			} {
				if math.Abs(m.got-m.want) > m.tol {
					t.Errorf("%s: %.5f, want %.5f ± %.5f", m.what, m.got, m.want, m.tol)
				}
			}
			if tr := r.Recommendation.TrackTail; tc.args == nil && (math.Abs(tr.Alpha+11.415) > 0.002 || math.Abs(tr.Beta-10.935) > 0.002) {
				t.Errorf("track tail %+v, want the one config.go ships: -11.415 + 10.935 t", tr)
			}
			if c.Single.StrangerAccept.Rate > 0.001 {
				t.Errorf("stranger faces accepted %.4f %%: over the 0.1 %% budget", 100*c.Single.StrangerAccept.Rate)
			}
		})
	}
}

// TestEvalClips runs `concierge eval --clips` on three real clips, one
// person each, and on folders it must refuse.
func TestEvalClips(t *testing.T) {
	testenv.Shared(t, "models/face_detection_yunet_2023mar.onnx")
	dir := linkClips(t, "d11", "d18", "d19")
	cfg := filepath.Join(t.TempDir(), "concierge.yaml")
	yaml := "branch: t1\nmodels:\n  dir: " + testenv.ModelsDir(t) + "\nvision:\n  engine: mobilefacenet\n  pool: 1\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := evalCLI(t, "--config", cfg, "--clips", dir, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep replay.ClipReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	if rep.Source != "clips" || rep.Model != "mobilefacenet-paddlex-ms1mv3" || rep.People != 3 || rep.Votes != 1 || len(rep.Rows) != 3 {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Rows {
		if !r.EnrolledFrom || r.StartFrame != 50 || r.Enrolled.Embeddings == 0 || r.Deleted.Frames <= r.Enrolled.Frames || r.Enrolled.Threshold > r.Deleted.Threshold+1e-9 {
			// One customer fewer can only loosen the calibrated threshold.
			t.Errorf("row %+v", r)
		}
	}
	if want := (replay.ClipTotals{Visits: 3, AsSelf: 3, StrangerVisits: 3}); rep.Totals != want {
		t.Errorf("totals %+v, want %+v", rep.Totals, want)
	}
	// How near each clip came to its person, to read a miss by: every clip
	// was announced, so a fused embedding came within the threshold in
	// force and a face within the threshold plus the face slack.
	for _, r := range rep.Rows {
		d := r.Enrolled.Trace
		if d == nil || d.Faces == 0 || len(d.Nearest) == 0 || len(d.Nearest) > replay.NearestFaces || !slices.IsSorted(d.Nearest) ||
			d.Nearest[0] > r.Enrolled.Threshold+rep.FaceSlack || d.Fused == nil || *d.Fused > r.Enrolled.Threshold+1e-9 || r.Deleted.Trace != nil {
			t.Errorf("%s: distances %+v", r.Label, d)
		}
	}
	// The text is the same report: print the decoded one rather than
	// playing the clips again.
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "announced as themselves 3 (0 more than once), as another customer 0, missed 0") ||
		!strings.Contains(text.String(), "0 of 3 announced") || !strings.Contains(text.String(), "d18.mp4 (enrolled from; from frame 50)") ||
		!strings.Contains(text.String(), "Distances to the person") {
		t.Fatalf("text report (%v):\n%s", err, text.String())
	}

	// The same people a few metres away: frames at a third of their size
	// in a 1280x720 entrance frame, enrolled from the frames as filmed, as
	// a kiosk would enroll them; asked for by the subcommand's own form.
	out, stderr, code = evalCLI(t, "clips", dir, "--config", cfg, "--clip-scale", "0.35", "--json")
	var far replay.ClipReport
	if code != 0 || json.Unmarshal([]byte(out), &far) != nil {
		t.Fatalf("--clip-scale: exit %d: %s\n%s", code, stderr, out)
	}
	if want := (replay.ClipTotals{Visits: 3, AsSelf: 3, StrangerVisits: 3}); far.Place == nil || far.Place.Scale != 0.35 || far.Totals != want {
		t.Errorf("--clip-scale 0.35: place %+v, totals %+v, want %+v", far.Place, far.Totals, want)
	}

	one := linkClips(t, "d11")
	bad := t.TempDir()
	if err := os.Mkdir(filepath.Join(bad, "Ms Wang"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--clips", one}, 1, "want at least 2"},
		{[]string{"--clips", filepath.Join(t.TempDir(), "none")}, 1, "no such file"},
		{[]string{"--clips", dir, "--seeds", "3"}, 2, "--seeds applies to photos"},
		{[]string{"--clips", dir, "--enroll-frames", "1,x"}, 2, "not a frame number"},
		{[]string{"--clips", dir, "--enroll-frames", "0,12"}, 2, "the first frame is 1"},
		{[]string{"--folder", dir, "--enroll-frames", "1"}, 2, "apply to --clips"},
		{[]string{"--clips", dir, "--clip-scale", "1.5"}, 2, "want a factor in (0, 1]"},
	} {
		if err := os.Symlink(filepath.Join(testenv.Shared(t, "data/video"), "d12.mp4"), filepath.Join(bad, "Ms Wang", "a.mp4")); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		_, stderr, code := evalCLI(t, append([]string{"--config", cfg}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}
	if _, stderr, code := evalCLI(t, "--config", cfg, "--clips", bad); code != 1 || !strings.Contains(stderr, `label "Ms Wang"`) {
		t.Errorf("a label that is no customer id: exit %d: %s", code, stderr)
	}
	twice := linkClips(t, "d11", "d18")
	if err := os.Mkdir(filepath.Join(twice, "d11"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(testenv.Shared(t, "data/video"), "d12.mp4"), filepath.Join(twice, "d11", "a.mp4")); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := evalCLI(t, "--config", cfg, "--clips", twice); code != 1 || !strings.Contains(stderr, `label "d11" names two people`) {
		t.Errorf("one label twice: exit %d: %s", code, stderr)
	}
}
