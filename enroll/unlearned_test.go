package enroll_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"concierge/enroll"
)

// TestUnlearnedCustomers: while learning (a door factor in the
// calibration) the threshold and band hold the budget with every door row
// counted, and a customer who holds no door row is held to the kiosk-only
// calibration instead: Recognition and Verification say how much farther
// (Rule.Unlearned), the gallery says whose match is of a customer with a
// door row (Match.Learned), and Accept applies the one to the other, for
// a face as for a track. Without a door factor nothing changes.
func TestUnlearnedCustomers(t *testing.T) {
	base := enroll.OpenSet{Tail: enroll.Tail{Alpha: -12.104, Beta: 10.884}, Track: enroll.Tail{Alpha: -11.215, Beta: 10.838},
		Target: 1e-4, Ceiling: 0.76}
	door := base
	door.DoorFactor = 1.271
	rng := rand.New(rand.NewPCG(3, 4))
	g := enroll.NewGallery("m")
	n := 1000
	for i := range n {
		g.Add(tmpl(fmt.Sprint(i), randomUnit(rng)))
	}
	learned := randomUnit(rng)
	dt := tmpl("0", learned)
	dt.Group = enroll.DoorGroup
	g.Add(dt)

	svc := &enroll.Service{Gallery: g, Rule: enroll.Rule{Threshold: 0.76, Margin: 0.08, FaceSlack: 0.2}, OpenSet: door, VerifyTarget: 0.02}
	r := svc.Recognition()
	v, ok := svc.Verification()
	if !ok {
		t.Fatal("no band")
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12 || want <= 0 {
			t.Errorf("%s: %.6f, want %.6f (> 0)", what, got, want)
		}
	}
	near("threshold", r.Threshold, door.Threshold(n))
	near("unlearned", r.Unlearned, base.Threshold(n)-door.Threshold(n))
	near("band", v.Threshold, door.Band(0.02, n))
	near("band unlearned", v.Unlearned, base.Band(0.02, n)-door.Band(0.02, n))
	if th, b := svc.Unlearned(); th != r.Unlearned || b != v.Unlearned {
		t.Errorf("Unlearned() %v, %v; want %v, %v", th, b, r.Unlearned, v.Unlearned)
	}

	m, ok := g.Search(&learned)
	if !ok || m.CustomerID != "0" || !m.Learned {
		t.Fatalf("the customer with a door row: %+v", m)
	}
	if p := randomUnit(rng); true {
		if m, _ := g.Search(&p); m.CustomerID != "0" && m.Learned {
			t.Errorf("a customer without a door row matched as learned: %+v", m)
		}
	}
	for _, rule := range []enroll.Rule{r, r.Face(), v} {
		between := enroll.Match{CustomerID: "7", Distance: rule.Threshold + rule.Unlearned/2, Margin: 1}
		if !rule.Accept(between) {
			t.Errorf("threshold %.4f: %.4f refused for a customer without door rows", rule.Threshold, between.Distance)
		}
		between.Learned = true
		if rule.Accept(between) {
			t.Errorf("threshold %.4f: %.4f accepted for a customer with door rows", rule.Threshold, between.Distance)
		}
		beyond := enroll.Match{CustomerID: "7", Distance: rule.Threshold + rule.Unlearned + 1e-9, Margin: 1}
		if rule.Accept(beyond) {
			t.Errorf("threshold %.4f: %.4f accepted beyond the kiosk-only threshold", rule.Threshold, beyond.Distance)
		}
	}

	svc.OpenSet = base
	if r := svc.Recognition(); r.Unlearned != 0 || r.Threshold != base.Threshold(n) {
		t.Errorf("without learning: %+v", r)
	}
	if v, _ := svc.Verification(); v.Unlearned != 0 {
		t.Errorf("without learning, band: %+v", v)
	}
}
