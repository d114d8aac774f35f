package main

import (
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"concierge/kiosk"
)

// wallPhoto writes a photo of a plain wall: an image with no face in it.
func wallPhoto(t *testing.T) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for y := range 240 {
		for x := range 320 {
			img.Set(x, y, color.RGBA{uint8(180 + x%7), 170, 160, 255})
		}
	}
	p := filepath.Join(t.TempDir(), "wall.png")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIdentifyNoFace: a photo without a face is said so on stderr (exit 0,
// it is an answer, not a failure); with --json stdout has an object for it
// too, beside the faces of the other images.
func TestIdentifyNoFace(t *testing.T) {
	cfg := faceConfig(t)
	wall := wallPhoto(t)
	blair := lfw(t, "Tony_Blair")[0]

	out, stderr, code := run(t, "identify", "--config", cfg, wall)
	if code != 0 || out != "" || !strings.Contains(stderr, "wall.png: no face found") {
		t.Fatalf("identify wall: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	out, stderr, code = run(t, "identify", "--config", cfg, "--json", wall, blair)
	if code != 0 || !strings.Contains(stderr, "no face found") {
		t.Fatalf("identify --json: exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("want an object for the wall and one per face of the other photo:\n%s", out)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["image"] != "wall.png" || first["faces"] != 0.0 || first["error"] != "no face found" {
		t.Errorf("object for the wall = %v", first)
	}
	if l := parseLines(t, strings.Join(lines[1:], "\n")); l[0].Image != filepath.Base(blair) || l[0].Box == [4]int{} {
		t.Errorf("face line = %+v", l[0])
	}
}

// TestEnrollWarnsRefusedPhoto: enrolled from the good photos, with a warning
// on stderr naming the refused one and why (and none about the consent
// text: the built-in 2026-12-v3 covers learning from confirmed visits).
func TestEnrollWarnsRefusedPhoto(t *testing.T) {
	cfg := faceConfig(t)
	blair := lfw(t, "Tony_Blair")
	wall := wallPhoto(t)
	out, stderr, code := run(t, "enroll", "--config", cfg, "--customer", "C8", "--name", "Mr B", "--consent", "F-8",
		"--consent-text", kiosk.BuiltinConsentVersion, blair[0], wall, blair[3])
	if code != 0 {
		t.Fatalf("enroll: exit %d, %s", code, stderr)
	}
	if !strings.Contains(stderr, "warning: wall.png refused: no_face") || strings.Contains(stderr, "door_consent_versions") {
		t.Errorf("stderr should warn about the refused photo only: %q", stderr)
	}
	if !strings.Contains(out, `"ok":false`) || !strings.Contains(out, `"templates":`) {
		t.Errorf("stdout should stay the JSON result: %s", out)
	}
}

// TestForgetUsage: forget without its flag prints its own usage, exit 2.
func TestForgetUsage(t *testing.T) {
	for _, args := range [][]string{{"forget"}, {"forget", "C1"}} {
		_, stderr, code := run(t, args...)
		if code != 2 || !strings.Contains(stderr, "usage: concierge forget --customer ID") ||
			!strings.Contains(stderr, "-customer") || strings.Contains(stderr, "Usage of") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
