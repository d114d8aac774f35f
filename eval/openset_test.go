package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
)

// syntheticSet makes ids identities of n faces each: a random centre per
// identity and small seeded noise around it, so that the structure of the
// simulation (splits, tracks) can be checked without shared data.
func syntheticSet(ids, n int, spread float64, seed uint64) *Set {
	rng := rand.New(rand.NewPCG(seed, 1))
	set := &Set{Model: "synthetic"}
	for i := range ids {
		var c face.Embedding
		for k := range c {
			c[k] = float32(rng.NormFloat64() / math.Sqrt(face.Dim) * 0.5)
		}
		for j := range n {
			e := c
			for k := range e {
				e[k] += float32(rng.NormFloat64() / math.Sqrt(face.Dim) * spread)
			}
			set.Samples = append(set.Samples, Sample{Label: fmt.Sprintf("id%02d", i), Source: fmt.Sprintf("id%02d/%d", i, j), Embedding: e})
		}
	}
	return set
}

func TestSimulateSplit(t *testing.T) {
	set := syntheticSet(6, 5, 0.2, 1)
	cfg := OpenSetConfig{Enroll: 3, Strangers: 1.0 / 3, Seeds: 5, Seed: 1, Track: 5, Scoring: BestOf}
	tr, err := Simulate(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 2 strangers and 4 customers; each customer has 2 probes left, each
	// stranger 5; every person makes one track of 5.
	if tr.Customers != 4 || tr.StrangerIDs != 2 || tr.GenuineProbes != 8 || tr.StrangerProbes != 10 || tr.Tracks != 6 {
		t.Fatalf("split %+v", tr)
	}
	var splits [][]string
	for _, r := range tr.runs {
		splits = append(splits, r.ids)
		for _, tk := range r.tracks {
			owners := map[int]bool{}
			for _, pi := range tk.probes {
				owners[r.probes[pi].owner] = true
			}
			if len(tk.probes) != 5 || len(owners) != 1 || !owners[tk.owner] {
				t.Fatalf("track %+v mixes people", tk)
			}
		}
	}
	if slices.IndexFunc(splits[1:], func(s []string) bool { return !slices.Equal(s, splits[0]) }) < 0 {
		t.Fatal("every seed drew the same customers")
	}
	again, err := Simulate(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rule := enroll.Rule{Threshold: 0.3, Margin: 0.02}
	if !reflect.DeepEqual(tr.Evaluate(rule, 3), again.Evaluate(rule, 3)) {
		t.Fatal("the same seed gave different results")
	}
	for _, bad := range []OpenSetConfig{
		{Enroll: 0, Strangers: 0.3, Seeds: 1, Track: 5, Scoring: BestOf},
		{Enroll: 3, Strangers: 1, Seeds: 1, Track: 5, Scoring: BestOf},
		{Enroll: 3, Strangers: 0.3, Seeds: 1, Track: 5, Scoring: "max"},
		{Enroll: 5, Strangers: 0.3, Seeds: 1, Track: 5, Scoring: BestOf}, // nobody left to probe
	} {
		if _, err := Simulate(set, bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestCentroidIsTheGallery pins that the simulation decides on exactly
// what enroll.Gallery.Search returns.
func TestCentroidIsTheGallery(t *testing.T) {
	centroidIsTheGallery(t, syntheticSet(20, 4, 0.3, 2))
}

// centroidIsTheGallery enrolls the first three faces of every label and
// searches with every face, through the simulation's scorer and through
// the gallery.
func centroidIsTheGallery(t *testing.T, set *Set) {
	t.Helper()
	labels, groups := set.byLabel()
	g := enroll.NewGallery("m")
	templates := make([][]int, len(labels))
	for ci, lab := range labels {
		templates[ci] = groups[lab][:min(3, len(groups[lab]))]
		for _, i := range templates[ci] {
			g.Add(enroll.Template{CustomerID: lab, Embedding: set.Samples[i].Embedding, Model: "m"})
		}
	}
	score := scorer(Centroid, set, templates)
	for i := range set.Samples {
		got, _ := topMatch(score(&set.Samples[i].Embedding), labels)
		want, _ := g.Search(&set.Samples[i].Embedding)
		if got != want {
			t.Fatalf("face %d: simulation %+v, gallery %+v", i, got, want)
		}
	}
}

func TestScorings(t *testing.T) {
	set := &Set{}
	for _, v := range []float32{0, 1, 2, 4} { // a probe at 0, templates at 1, 2, 4
		var e face.Embedding
		e[0] = v
		set.Samples = append(set.Samples, Sample{Embedding: e})
	}
	for _, tc := range []struct {
		mode Scoring
		want float64
	}{
		{BestOf, 1},
		{MeanOf2, 1.5},      // (1 + 2) / 2
		{Centroid, 7.0 / 3}, // mean of 1, 2, 4
	} {
		if got := scorer(tc.mode, set, [][]int{{1, 2, 3}})(&set.Samples[0].Embedding)[0]; math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("%s: %v, want %v", tc.mode, got, tc.want)
		}
	}
}

// handRun is one gallery of customers A and B with five probes of A, and
// five of a stranger, whose distances are set by hand, as are those of
// each track's fused embedding after each probe.
func handRun() run {
	ids := []string{"A", "B"}
	scores := [][]float64{
		{0.30, 0.50}, // A, margin 0.20
		{0.32, 0.45}, // A, margin 0.13
		{0.35, 0.38}, // A, margin 0.03: fails a 0.06 margin
		{0.50, 0.42}, // B, but only under a threshold of 0.42 or more
		{0.36, 0.60}, // A
		// the stranger
		{0.60, 0.39}, {0.70, 0.45}, {0.65, 0.50}, {0.80, 0.41}, {0.55, 0.70},
	}
	r := run{ids: ids}
	for i, s := range scores {
		p := probe{owner: 0, scores: s}
		if i >= 5 {
			p.owner = -1
		}
		p.match, p.top = topMatch(s, ids)
		r.probes = append(r.probes, p)
	}
	prefixes := [][][]float64{
		// A's track; the first fused embedding is probe 0 itself.
		{{0.30, 0.50}, {0.325, 0.47}, {0.33, 0.44}, {0.34, 0.43}, {0.33, 0.47}},
		// The stranger's.
		{{0.60, 0.39}, {0.62, 0.40}, {0.61, 0.41}, {0.63, 0.40}, {0.62, 0.42}},
	}
	for ti, owner := range []int{0, -1} {
		tk := track{owner: owner, probes: []int{5 * ti, 5*ti + 1, 5*ti + 2, 5*ti + 3, 5*ti + 4}}
		for _, sc := range prefixes[ti] {
			f := fused{scores: sc}
			f.match, f.top = topMatch(sc, ids)
			tk.fused = append(tk.fused, f)
		}
		r.tracks = append(r.tracks, tk)
	}
	return r
}

func TestFuse(t *testing.T) {
	r := handRun()
	for _, tc := range []struct {
		name  string
		rule  enroll.Rule
		votes int
		want  int // customer index, −1 for none
	}{
		// A's third vote is probe 4, the last; the fused 0.33 then names A.
		{"three votes", enroll.Rule{Threshold: 0.40, Margin: 0.06}, 3, 0},
		{"four votes needed", enroll.Rule{Threshold: 0.40, Margin: 0.06}, 4, -1},
		// Without the margin probe 2 votes for A too.
		{"no margin", enroll.Rule{Threshold: 0.40}, 4, 0},
		// Probe 0 alone is its own fused embedding: decided on it.
		{"first probe decides", enroll.Rule{Threshold: 0.32}, 1, 0},
		// Probes 0 and 1 vote for A, but no fused embedding from the
		// second probe on is within 0.32.
		{"fused too far", enroll.Rule{Threshold: 0.32}, 2, -1},
		// A's votes are probes 0 and 4; the fused embedding after probe 4
		// is only 0.14 closer to A than to B.
		{"fused margin too small", enroll.Rule{Threshold: 0.40, Margin: 0.15}, 2, -1},
		// At 0.45 probe 3 names B: two customers in one track name nobody
		// if the track was not decided before it ...
		{"another customer in the track", enroll.Rule{Threshold: 0.45, Margin: 0.06}, 3, -1},
		// ... but two votes decide it on probe 1, as the daemon would.
		{"decided before the other customer", enroll.Rule{Threshold: 0.45, Margin: 0.06}, 2, 0},
		// Probe 4 (0.36) is no vote at 0.33, but is one with a face slack
		// of 0.04; the fused embedding then is 0.33.
		{"no third vote", enroll.Rule{Threshold: 0.33, Margin: 0.06}, 3, -1},
		{"third vote within the face slack", enroll.Rule{Threshold: 0.33, Margin: 0.06, FaceSlack: 0.04}, 3, 0},
		// The slack lets probe 3 name B (0.42) before A's third vote.
		{"another customer within the face slack", enroll.Rule{Threshold: 0.40, Margin: 0.06, FaceSlack: 0.05}, 3, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := decide(r, r.tracks[0], checkin.Rule{Match: tc.rule, Votes: tc.votes})
			if (tc.want >= 0) != ok || (ok && c != tc.want) {
				t.Fatalf("fuse = %d, %v; want %d", c, ok, tc.want)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	tr := &Trials{Config: OpenSetConfig{Track: 5}, runs: []run{handRun()}}
	res := tr.Evaluate(enroll.Rule{Threshold: 0.40, Margin: 0.06}, 3)
	// Single probes of A: 0, 1, 4 accepted as A; 2 and 3 rejected. Of the
	// stranger's probes only the first (0.39 to B) passes; 0.41 is just
	// outside.
	want := Decisions{
		Accept:         Rate{Rate: 0.6, Events: 3, Trials: 5},
		WrongAccept:    Rate{Rate: 0, Events: 0, Trials: 5},
		StrangerAccept: Rate{Rate: 0.2, Events: 1, Trials: 5},
	}
	if res.Single != want {
		t.Fatalf("single %+v, want %+v", res.Single, want)
	}
	// The stranger's track: one vote for B of 3 needed: rejected.
	wantF := Decisions{Accept: Rate{Rate: 1, Events: 1, Trials: 1}, WrongAccept: Rate{Trials: 1}, StrangerAccept: Rate{Trials: 1}}
	if res.Fused != wantF {
		t.Fatalf("fused %+v, want %+v", res.Fused, wantF)
	}
	if got := tr.ImpostorScores(); len(got) != 15 || got[0] != 0.38 {
		t.Fatalf("impostor scores %v", got) // 5 of A against B, and 10 of the stranger
	}
	// With one vote a track's score is, over its probes, the smallest of
	// the larger of the nearest probe so far and the fused distance then:
	// A's track against B max(0.38, 0.43) after probe 3, the stranger's
	// against A and B their first probes, 0.60 and 0.39.
	if got := tr.FusedImpostorScores(1, 0); !slices.Equal(round3(got), []float64{0.39, 0.43, 0.60}) {
		t.Fatalf("fused impostor scores %v", got)
	}
	// Decided on the fused embeddings alone: the nearest of them, A's
	// track 0.43 to B, the stranger's 0.60 to A and 0.39 to B.
	if got := tr.FusedImpostorScores(1, math.Inf(1)); !slices.Equal(round3(got), []float64{0.39, 0.43, 0.60}) {
		t.Fatalf("fused alone: impostor scores %v", got)
	}
	// Two votes with a slack of 0.05: A's track against B after probe 3
	// is max(0.42-0.05, 0.43); the stranger's against B after probe 1
	// max(0.45-0.05, 0.40), against A after probe 2 max(0.65-0.05, 0.61).
	if got := tr.FusedImpostorScores(2, 0.05); !slices.Equal(round3(got), []float64{0.40, 0.43, 0.61}) {
		t.Fatalf("two votes, slack 0.05: impostor scores %v", got)
	}
}

func round3(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.Round(x*1000) / 1000
	}
	return out
}
