package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"concierge/kiosk"
)

// match.door_consent_versions: the built-in texts' version by default, a
// bank's own list replaces it, and the policy the learner gets covers
// exactly the listed versions (as the kiosk records them, with the
// text's hash); blank entries, and an empty list while learning is on,
// are refused with the key named.
func TestDoorConsentConfig(t *testing.T) {
	d := DefaultConfig()
	if v := d.Match.DoorConsentVersions; len(v) != 1 || v[0] != kiosk.BuiltinConsentVersion {
		t.Fatalf("default door_consent_versions %q, want the built-in %s", v, kiosk.BuiltinConsentVersion)
	}
	// Learning is on by default where the engine's calibration has a
	// door factor, so the calibrated thresholds count it; dlib learns
	// nothing.
	if d.Match.DoorTemplates != maxDoorTemplates {
		t.Errorf("default door_templates %d, want %d", d.Match.DoorTemplates, maxDoorTemplates)
	}
	for engine, learns := range map[string]bool{engineFoamliu: true, engineMobileFaceNet: true, engineDlib: false} {
		c := d
		c.Vision.Engine = engine
		if f := c.doorFactor(); (f > 1) != learns || c.openSet().DoorFactor != f {
			t.Errorf("%s: door factor %v by default, open set's %v", engine, f, c.openSet().DoorFactor)
		}
	}
	if p := d.doorPolicy(); !p.Consents.Covers(kiosk.BuiltinConsentVersion+"@sha256:0123456789abcdef") || p.Consents.Covers("2026-12-v2") {
		t.Errorf("default policy covers %q", p.Consents)
	}
	c, err := ParseConfig(strings.NewReader("match: {door_templates: 4, door_consent_versions: [bank-2027-01, bank-2027-03]}\n" +
		"kiosk: {consent_dir: /etc/concierge/consent, consent_version: bank-2027-03}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := c.doorPolicy()
	if p.Max != 4 || len(p.Consents) != 2 || !p.Consents.Covers(c.kioskConsentVersion()) || p.Consents.Covers(kiosk.BuiltinConsentVersion) {
		t.Errorf("policy %+v from the bank's list", p)
	}
	// Learning off needs no list.
	if _, err := ParseConfig(strings.NewReader("match: {door_templates: 0, door_consent_versions: []}\n")); err != nil {
		t.Errorf("learning off with no covering version: %v", err)
	}
	for _, y := range []string{
		"match: {door_templates: 10, door_consent_versions: []}\n",
		"match: {door_consent_versions: ['']}\n",
		"match: {door_consent_versions: [' 2026-12-v3']}\n",
	} {
		if _, err := ParseConfig(strings.NewReader(y)); err == nil || !strings.Contains(err.Error(), "match.door_consent_versions") {
			t.Errorf("%q: %v, want an error naming match.door_consent_versions", y, err)
		}
	}
}

// The example config an operator copies learns as the defaults do.
func TestExampleConfigLearning(t *testing.T) {
	t.Setenv("CAMERA_PASSWORD", "x")
	f, err := os.Open("../../deploy/concierge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.Match.DoorTemplates != d.Match.DoorTemplates || !slices.Equal(c.Match.DoorConsentVersions, d.Match.DoorConsentVersions) {
		t.Errorf("example door_templates %d, door_consent_versions %q; defaults %d, %q", c.Match.DoorTemplates,
			c.Match.DoorConsentVersions, d.Match.DoorTemplates, d.Match.DoorConsentVersions)
	}
}
