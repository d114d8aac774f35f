package main

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	t.Setenv("CAM_PW", "s3cret")
	t.Setenv("CONCIERGE_NATS_URL", "nats://hq.example:4222")
	t.Setenv("CONCIERGE_MATCH_THRESHOLD", "0.35")
	c, err := ParseConfig(strings.NewReader(`
branch: b042
db: /tmp/x.db
cameras:
  - id: door-1
    source: rtsp://u:${CAM_PW}@cam/1
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Branch != "b042" || c.DB != "/tmp/x.db" || c.Cameras[0].Source != "rtsp://u:s3cret@cam/1" {
		t.Fatalf("file values: %+v", c)
	}
	if c.NATS.URL != "nats://hq.example:4222" || c.Match.Threshold != 0.35 {
		t.Fatalf("env overrides: nats.url %q threshold %v", c.NATS.URL, c.Match.Threshold)
	}
	if c.HTTP.Addr != DefaultConfig().HTTP.Addr || c.Match.Margin != DefaultConfig().Match.Margin {
		t.Fatal("defaults lost")
	}
}

// TestFaceSlack: left out, match.face_slack is the engine's measured
// default; given, even as 0, it is taken as it is, from the file or the
// environment.
func TestFaceSlack(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, env string
		want            float64
	}{
		{"mobilefacenet default", "vision:\n  engine: mobilefacenet\n", "", 0.20},
		{"dlib default", "vision:\n  engine: dlib\n", "", 0.15},
		{"zero is zero", "vision:\n  engine: mobilefacenet\nmatch:\n  face_slack: 0\n", "", 0},
		{"from the environment", "vision:\n  engine: dlib\n", "0.05", 0.05},
		{"environment zero", "vision:\n  engine: dlib\nmatch:\n  face_slack: 0.1\n", "0", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("CONCIERGE_MATCH_FACE_SLACK", tc.env)
			}
			c, err := ParseConfig(strings.NewReader(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.rule().FaceSlack; got != tc.want {
				t.Fatalf("face slack %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "brnach: b1\n", "brnach"},
		{"bad branch", "branch: a.b\n", "branch"},
		{"bad threshold", "match:\n  threshold: 3\n", "match.threshold"},
		{"negative face slack", "match:\n  face_slack: -0.1\n", "match.face_slack"},
		{"false-alert target not a rate", "match:\n  false_alert_target: 2\n", "match.false_alert_target"},
		{"thumbnail too small to see", "alerts:\n  thumbnail_px: 8\n", "alerts.thumbnail_px"},
		{"thumbnail big enough to recognise with", "alerts:\n  thumbnail_px: 1024\n", "alerts.thumbnail_px"},
		{"negative opencv threads", "vision:\n  threads: -1\n", "vision.threads"},
		{"duplicate camera", "cameras:\n  - {id: a, source: '0'}\n  - {id: a, source: '1'}\n", "duplicate id"},
		{"camera without source", "cameras:\n  - {id: a}\n", "cameras[0]"},
		{"not yaml", "branch: [\n", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
	t.Setenv("CONCIERGE_VISION_POOL", "many")
	if _, err := ParseConfig(strings.NewReader("")); err == nil || !strings.Contains(err.Error(), "CONCIERGE_VISION_POOL") {
		t.Fatalf("bad env value: %v", err)
	}
}
