package main

import (
	"strings"
	"testing"
	"time"
)

// The health keys: defaults, the file, the environment, and errors that
// name the key.
func TestHealthConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Vision.CameraStaleAfter != 30*time.Second || c.Alerts.OutboxStaleAfter != 2*time.Minute {
		t.Fatalf("defaults: camera_stale_after %v, outbox_stale_after %v", c.Vision.CameraStaleAfter, c.Alerts.OutboxStaleAfter)
	}
	c, err = ParseConfig(strings.NewReader("vision: {camera_stale_after: 10s}\nalerts: {outbox_stale_after: 5m}\n"))
	if err != nil || c.Vision.CameraStaleAfter != 10*time.Second || c.Alerts.OutboxStaleAfter != 5*time.Minute {
		t.Fatalf("file: %v %v %v", c.Vision.CameraStaleAfter, c.Alerts.OutboxStaleAfter, err)
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("CONCIERGE_VISION_CAMERA_STALE_AFTER", "7s")
		t.Setenv("CONCIERGE_ALERTS_OUTBOX_STALE_AFTER", "90s")
		c, err := ParseConfig(strings.NewReader("vision: {camera_stale_after: 10s}\n"))
		if err != nil || c.Vision.CameraStaleAfter != 7*time.Second || c.Alerts.OutboxStaleAfter != 90*time.Second {
			t.Fatalf("environment: %v %v %v", c.Vision.CameraStaleAfter, c.Alerts.OutboxStaleAfter, err)
		}
	})
	for _, tc := range []struct{ yaml, want string }{
		{"vision: {camera_stale_after: 0s}\n", "vision.camera_stale_after"},
		{"vision: {camera_stale_after: -1s}\n", "vision.camera_stale_after"},
		{"alerts: {outbox_stale_after: 0s}\n", "alerts.outbox_stale_after"},
	} {
		if _, err := ParseConfig(strings.NewReader(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want mention of %q", tc.yaml, err, tc.want)
		}
	}
}
