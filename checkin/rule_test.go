package checkin_test

import (
	"math"
	"testing"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
)

// The rule on matches set by hand: what the service and eval both decide
// with, including the per-customer tightening the service passes in.
func TestRuleDecide(t *testing.T) {
	a := func(d, margin float64) enroll.Match {
		return enroll.Match{CustomerID: "A", RunnerUp: "B", Distance: d, Margin: margin}
	}
	b := enroll.Match{CustomerID: "B", RunnerUp: "A", Distance: 0.42, Margin: 0.1}
	fusedA := func(d float64) func() (enroll.Match, bool) {
		return func() (enroll.Match, bool) { return a(d, 0.2), true }
	}
	rule := checkin.Rule{Match: enroll.Rule{Threshold: 0.40, Margin: 0.06, FaceSlack: 0.05}, Votes: 2}
	for _, tc := range []struct {
		name    string
		faces   []enroll.Match
		fused   func() (enroll.Match, bool)
		tighten checkin.Tighten
		want    checkin.Verdict
		votes   int
		search  bool // the fused embedding is searched only once the votes are there
	}{
		{"two votes, fused within", []enroll.Match{a(0.30, 0.2), a(0.44, 0.2)}, fusedA(0.35), nil, checkin.Arrives, 2, true},
		{"one vote of two", []enroll.Match{a(0.30, 0.2), a(0.46, 0.2)}, fusedA(0.35), nil, checkin.Undecided, 1, false},
		{"no face names anyone", []enroll.Match{{}, a(0.50, 0.2)}, fusedA(0.35), nil, checkin.Undecided, 0, false},
		{"fused beyond the threshold", []enroll.Match{a(0.30, 0.2), a(0.32, 0.2)}, fusedA(0.41), nil, checkin.Undecided, 2, true},
		{"another customer in the track", []enroll.Match{a(0.30, 0.2), b, a(0.31, 0.2)}, fusedA(0.30), nil, checkin.Conflict, 0, false},
		{"an extra vote for A", []enroll.Match{a(0.30, 0.2), a(0.31, 0.2)}, fusedA(0.30),
			func(string) (int, float64) { return 1, 0 }, checkin.Undecided, 2, false},
		{"a tighter threshold for A", []enroll.Match{a(0.30, 0.2), a(0.38, 0.2)}, fusedA(0.34),
			func(string) (int, float64) { return 0, -0.1 }, checkin.Undecided, 1, false},
		// Tightening only tightens: fewer votes or a looser threshold count as none.
		{"loosening is ignored", []enroll.Match{a(0.30, 0.2), a(0.50, 0.2)}, fusedA(0.45),
			func(string) (int, float64) { return -1, 0.2 }, checkin.Undecided, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			searched := false
			fused := func() (enroll.Match, bool) { searched = true; return tc.fused() }
			d := rule.Decide(tc.faces, fused, tc.tighten)
			if d.Verdict != tc.want || d.Votes != tc.votes {
				t.Fatalf("verdict %v with %d votes, want %v with %d", d.Verdict, d.Votes, tc.want, tc.votes)
			}
			if searched != tc.search {
				t.Fatalf("fused embedding searched: %v, want %v", searched, tc.search)
			}
		})
	}

	band := 0.50
	for _, tc := range []struct {
		name  string
		faces []enroll.Match
		fused enroll.Match
		want  checkin.Verdict
	}{
		{"fused within the band", []enroll.Match{a(0.47, 0.2), a(0.60, 0.2)}, a(0.45, 0.2), checkin.Arrives},
		{"fused beyond the band", []enroll.Match{a(0.47, 0.2)}, a(0.51, 0.2), checkin.Undecided},
		{"fused margin too small", []enroll.Match{a(0.47, 0.2)}, a(0.45, 0.05), checkin.Undecided},
		{"a face names another customer in the band", []enroll.Match{a(0.47, 0.2), b}, a(0.45, 0.2), checkin.Conflict},
	} {
		t.Run("card/"+tc.name, func(t *testing.T) {
			d := rule.Card(band, tc.faces, tc.fused, true, nil)
			if d.Verdict != tc.want || (d.Verdict == checkin.Arrives && (d.Customer != "A" || d.Votes != 1)) {
				t.Fatalf("card %+v, want %v for A with 1 vote", d, tc.want)
			}
		})
	}
	if d := rule.Card(0, []enroll.Match{a(0.30, 0.2)}, a(0.30, 0.2), true, nil); d.Verdict != checkin.Undecided {
		t.Fatalf("no band: %+v", d)
	}
}

// Fuse weighs faces by quality, and a face of quality 0 still counts a
// little rather than dividing by zero.
func TestFuse(t *testing.T) {
	es := make([]face.Embedding, 2)
	es[0][0], es[1][1] = 1, 1
	f := checkin.Fuse(es, []float64{3, 1})
	if !(f[0] > f[1] && f[1] > 0) {
		t.Fatalf("fused %v %v: want the better face to weigh more", f[0], f[1])
	}
	g := checkin.Fuse(es, []float64{0, 0})
	if math.IsNaN(float64(g[0])) || math.Abs(float64(g[0]-g[1])) > 1e-6 {
		t.Fatalf("zero qualities: %v %v", g[0], g[1])
	}
}
