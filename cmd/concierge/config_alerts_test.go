package main

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestAlertsConfig(t *testing.T) {
	t.Setenv("CONCIERGE_ALERTS_FALSE_MATCH_EXTRA_VOTES", "2")
	c, err := ParseConfig(strings.NewReader(`
vision: {engine: mobilefacenet}
alerts:
  escalate_after: 90s
  false_match: {repeat_count: 4, repeat_window: 168h, timezone: Asia/Shanghai}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Alerts.escalateAfter() != 90*time.Second {
		t.Errorf("escalate after %v", c.Alerts.escalateAfter())
	}
	fc, err := c.feedbackConfig()
	if err != nil {
		t.Fatal(err)
	}
	if fc.ExtraVotes != 2 || math.Abs(fc.Tighten-0.078) > 1e-9 || fc.RepeatCount != 4 || fc.RepeatWindow != 7*24*time.Hour ||
		fc.Location.String() != "Asia/Shanghai" {
		t.Errorf("feedback config %+v", fc)
	}

	// The defaults: 60s, and a tenth of the engine's threshold.
	d := DefaultConfig()
	d.Vision.Engine = engineDlib
	t.Setenv("CONCIERGE_ALERTS_FALSE_MATCH_EXTRA_VOTES", "1")
	if fc, err := d.feedbackConfig(); err != nil || math.Abs(fc.Tighten-0.03) > 1e-9 || fc.ExtraVotes != 1 || fc.RepeatCount != 3 || fc.Location != time.Local {
		t.Errorf("dlib defaults %+v, %v", fc, err)
	}
	if d.Alerts.escalateAfter() != time.Minute {
		t.Errorf("default escalate after %v", d.Alerts.escalateAfter())
	}
	d.Alerts.EscalateAfter = 0
	if d.Alerts.escalateAfter() >= 0 {
		t.Error("escalate_after 0 does not turn the default off")
	}
	d.Alerts.FalseMatch.Tighten = 0.3
	if _, err := d.feedbackConfig(); err == nil || !strings.Contains(err.Error(), "alerts.false_match.tighten") {
		t.Errorf("tighten up to the threshold: %v", err)
	}
}

func TestAlertsConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"alerts: {escalate_after: -1s}\n", "alerts.escalate_after"},
		{"alerts: {false_match: {extra_votes: -1}}\n", "alerts.false_match.extra_votes"},
		{"alerts: {false_match: {tighten: -0.1}}\n", "alerts.false_match.tighten"},
		{"alerts: {false_match: {repeat_count: -1}}\n", "alerts.false_match.repeat_count"},
		{"alerts: {false_match: {repeat_window: 0s}}\n", "alerts.false_match.repeat_window"},
		{"alerts: {false_match: {timezone: Mars/Olympus}}\n", "alerts.false_match.timezone"},
		{"alerts: {escalate: 1m}\n", "escalate"},
	} {
		if _, err := ParseConfig(strings.NewReader(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want mention of %q", tc.yaml, err, tc.want)
		}
	}
}

// The shipped example parses, alerts section included.
func TestExampleConfig(t *testing.T) {
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
	if c.Alerts != DefaultConfig().Alerts {
		t.Errorf("example alerts %+v, defaults %+v", c.Alerts, DefaultConfig().Alerts)
	}
	if c.Report != DefaultConfig().Report {
		t.Errorf("example report %+v, defaults %+v", c.Report, DefaultConfig().Report)
	}
}
