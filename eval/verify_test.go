package eval

import (
	"testing"

	"concierge/enroll"
)

func TestEvaluateBand(t *testing.T) {
	tr := &Trials{Config: OpenSetConfig{Track: 5}, runs: []run{handRun()}}
	rule := enroll.Rule{Threshold: 0.32, Margin: 0.06}
	for _, tc := range []struct {
		name                    string
		band                    float64
		carded, wrong, strCards int
	}{
		// A's track is not announced at 0.32 (its fused embeddings stay
		// beyond it) but ends at 0.33 from A: a card.
		{"card", 0.40, 1, 0, 0},
		// At 0.45 probe 3 names B within the band: two customers, no
		// card for A; the stranger's track ends 0.42 from B, 0.20 clear of
		// A, and every probe within the band names B: a stranger card.
		{"conflict and a stranger card", 0.45, 0, 0, 1},
		{"no band", rule.Threshold, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tr.EvaluateBand(rule, tc.band, 2)
			if b.Announced.Events != 0 || b.Carded.Events != tc.carded || b.WrongCard.Events != tc.wrong ||
				b.StrangerC.Events != tc.strCards || b.Stranger.Events != 0 || b.Carded.Trials != 1 || b.StrangerC.Trials != 1 {
				t.Fatalf("%+v", b)
			}
		})
	}
	// An announced track gets no card.
	if b := tr.EvaluateBand(enroll.Rule{Threshold: 0.40, Margin: 0.06}, 0.5, 3); b.Announced.Events != 1 || b.Carded.Events != 0 {
		t.Fatalf("announced and carded: %+v", b)
	}
}

// On real descriptors the band only adds: the announced visits are the
// configured rule's, cards come on top for visits it missed, and a wider
// band cards more.
func TestIdolsBand(t *testing.T) {
	tr, err := Simulate(idolSet(t), DefaultOpenSet)
	if err != nil {
		t.Fatal(err)
	}
	rule := enroll.Rule{Threshold: 0.19, Margin: 0.10, FaceSlack: 0.15}
	fused := tr.Evaluate(rule, 1).Fused
	prev := -1
	for _, band := range []float64{0.19, 0.23, 0.27} {
		b := tr.EvaluateBand(rule, band, 1)
		if b.Announced != fused.Accept || b.Stranger != fused.StrangerAccept {
			t.Fatalf("band %.2f: announced %+v, want the rule's %+v", band, b.Announced, fused.Accept)
		}
		if b.Announced.Events+b.Carded.Events+b.WrongCard.Events > b.Announced.Trials || b.Carded.Events < prev {
			t.Fatalf("band %.2f: %+v", band, b)
		}
		if band == rule.Threshold && b.Carded.Events+b.StrangerC.Events+b.WrongCard.Events != 0 {
			t.Fatalf("cards without a band: %+v", b)
		}
		prev = b.Carded.Events
		t.Logf("band %.2f: announced %.3f carded %.3f wrong %d stranger cards %.3f", band, b.Announced.Rate, b.Carded.Rate, b.WrongCard.Events, b.StrangerC.Rate)
	}
	if prev == 0 {
		t.Fatal("a band of 0.27 cards no genuine visit")
	}
}
