package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"concierge/enroll"
)

// The verify band's keys: defaults, environment overrides, errors that
// name the key, and the band they give the enroll rule.
func TestVerifyConfig(t *testing.T) {
	d := DefaultConfig()
	if d.Match.VerifyTarget != 2e-2 || d.Alerts.VerifyTTL != 5*time.Minute || !d.verifyBand() {
		t.Fatalf("defaults: verify_target %v verify_ttl %v", d.Match.VerifyTarget, d.Alerts.VerifyTTL)
	}
	// A card needs a face even when alerts carry none.
	if d.Alerts.ThumbnailPx != 0 || d.thumbnailPx() != cardThumbnailPx {
		t.Errorf("thumbnail px %d with the band on and alerts.thumbnail_px 0", d.thumbnailPx())
	}
	t.Setenv("CONCIERGE_MATCH_VERIFY_TARGET", "0.005")
	t.Setenv("CONCIERGE_ALERTS_VERIFY_TTL", "2m")
	c, err := ParseConfig(strings.NewReader("vision: {engine: mobilefacenet-foamliu}\nalerts: {thumbnail_px: 64}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Match.VerifyTarget != 0.005 || c.Alerts.VerifyTTL != 2*time.Minute || c.thumbnailPx() != 64 {
		t.Errorf("env overrides: %v %v %d", c.Match.VerifyTarget, c.Alerts.VerifyTTL, c.thumbnailPx())
	}
	// The band the daemon gets: beyond the alert threshold, shrinking
	// with the gallery, the engine's tails spending the card budget.
	s := enroll.Service{Rule: c.rule(), OpenSet: c.openSet(), VerifyTarget: c.Match.VerifyTarget, Gallery: enroll.NewGallery("m")}
	r, ok := s.Verification()
	if !ok || r.Threshold <= s.Recognition().Threshold || r.Margin != s.Recognition().Margin {
		t.Errorf("band %+v (%v), recognition %+v", r, ok, s.Recognition())
	}
	// A fixed threshold has no calibrated band.
	c.Match.Threshold = 0.6
	s.OpenSet = c.openSet()
	if _, ok := s.Verification(); ok {
		t.Error("a band with a fixed match.threshold")
	}

	t.Setenv("CONCIERGE_MATCH_VERIFY_TARGET", "0")
	if c, err := ParseConfig(strings.NewReader("")); err != nil || c.verifyBand() || c.thumbnailPx() != 0 {
		t.Errorf("verify_target 0: band %v, thumbnails %d, %v", c.verifyBand(), c.thumbnailPx(), err)
	}
}

func TestVerifyConfigErrors(t *testing.T) {
	for _, v := range []string{"CONCIERGE_MATCH_VERIFY_TARGET", "CONCIERGE_ALERTS_VERIFY_TTL"} {
		t.Setenv(v, "") // restored after the test, unset during it
		os.Unsetenv(v)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"match: {verify_target: -0.1}\n", "match.verify_target"},
		{"match: {verify_target: 1}\n", "match.verify_target"},
		{"match: {verify_target: 1e-5}\n", "match.verify_target"}, // tighter than the alerts' 1e-4
		{"alerts: {verify_ttl: 1s}\n", "alerts.verify_ttl"},
		{"alerts: {verify_ttl: 2h}\n", "alerts.verify_ttl"},
	} {
		if _, err := ParseConfig(strings.NewReader(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error naming %s", tc.yaml, err, tc.want)
		}
	}
}
