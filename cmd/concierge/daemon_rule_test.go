package main

import (
	"context"
	"math"
	"strings"
	"testing"

	"concierge/enroll"
)

// TestDaemonMatchRule: the threshold in force follows the gallery's size
// and is exported with its expected false-alert rate; a fixed threshold
// that costs more than the budget is warned about.
func TestDaemonMatchRule(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fixed float64 // match.threshold; 0: calibrated
		warn  bool
	}{
		{"calibrated", 0, false},
		{"fixed above the budget", 0.9, true}, // either engine
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := enrolledConfig(t)
			cfg.Match.Threshold = tc.fixed
			var logs syncBuffer
			d := NewDaemon(cfg, newLogger(&logs, LogConfig{Level: "info"}))
			if err := d.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer d.Close()

			n := d.app.svc.Gallery.Customers()
			want := cfg.openSet().Threshold(n)
			if tc.fixed > 0 {
				want = tc.fixed
			}
			if got := metric(t, d, "concierge_match_threshold"); n != 3 || math.Abs(got-want) > 1e-9 {
				t.Fatalf("%d customers: threshold %v, want %v", n, got, want)
			}
			exp := metric(t, d, "concierge_expected_false_alerts_per_stranger_visit")
			if over := exp > 1.01e-4; over != tc.warn || (!tc.warn && math.Abs(exp-1e-4) > 1e-6) {
				t.Fatalf("expected false alerts per stranger visit %v", exp)
			}
			if warned := strings.Contains(logs.String(), "exceed the false-alert target"); warned != tc.warn {
				t.Fatalf("warned %v, want %v:\n%s", warned, tc.warn, logs.String())
			}

			// A customer more: a calibrated threshold tightens at once.
			var e [128]float32
			e[0] = 1
			d.app.svc.Gallery.Add(enroll.Template{CustomerID: "C9", Embedding: e, Model: d.app.svc.Gallery.Model()})
			got := metric(t, d, "concierge_match_threshold")
			if tc.fixed == 0 && (got >= want || math.Abs(got-cfg.openSet().Threshold(4)) > 1e-9) {
				t.Fatalf("4 customers: threshold %v, was %v", got, want)
			}
			if tc.fixed > 0 && got != tc.fixed {
				t.Fatalf("fixed threshold moved to %v", got)
			}
		})
	}
}
