package main

import (
	"strings"
	"testing"
	"time"

	"concierge/checkin"
)

// The check-in rule the daemon, eval and bench run is the configuration's,
// every key of it, and the file's defaults are checkin's own.
func TestCheckinConfig(t *testing.T) {
	def := DefaultConfig().checkinConfig()
	want := checkin.DefaultConfig()
	want.Branch = "b001"
	rule := DefaultConfig().rule()
	want.Threshold, want.Margin, want.FaceSlack = rule.Threshold, rule.Margin, rule.FaceSlack
	if def != want {
		t.Fatalf("defaults:\n%+v\nwant checkin's:\n%+v", def, want)
	}
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}

	cfg, err := ParseConfig(strings.NewReader(strings.Join([]string{
		"branch: b042",
		"vision:",
		"  engine: dlib",
		"  min_face_px: 50",
		"match:",
		"  threshold: 0.25",
		"  margin: 0.07",
		"  face_slack: 0.1",
		"checkin:",
		"  votes: 2",
		"  max_embeddings: 6",
		"  min_embed_interval: 200ms",
		"  confirm_interval: 90ms",
		"  cooldown: 10m",
		"  track_timeout: 3s",
		"cameras:",
		"  - id: door-1",
		"    source: rtsp://cam",
		"  - id: door-2",
		"    source: rtsp://cam2",
		"    min_face_px: 40",
	}, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.checkinConfig()
	if got.Branch != "b042" || got.Threshold != 0.25 || got.Margin != 0.07 || got.FaceSlack != 0.1 ||
		got.Votes != 2 || got.MaxEmbeddings != 6 || got.MinEmbedInterval != 200*time.Millisecond || got.ConfirmInterval != 90*time.Millisecond ||
		got.Cooldown != 10*time.Minute || got.TrackTimeout != 3*time.Second {
		t.Fatalf("check-in rule %+v", got)
	}
	// door-2 passes on faces from 40 px: check-in must not drop them.
	if got.MinFacePx != 40 {
		t.Fatalf("min face %d px, want 40 (the smallest any camera passes on)", got.MinFacePx)
	}
	if r := got.Rule(); r.Votes != 2 || r.Match.Threshold != 0.25 || r.Match.FaceSlack != 0.1 {
		t.Fatalf("rule %+v", r)
	}
}
