package enroll_test

import (
	"math"
	"testing"

	"concierge/enroll"
	"concierge/face"
)

// MatchesCustomer answers for one named customer, under the recognition
// threshold in force: the fused faces, not the closest customer, decide,
// and a customer without templates never matches.
func TestMatchesCustomer(t *testing.T) {
	g := enroll.NewGallery("m")
	g.Load([]enroll.Template{tmpl("A", vec(0, 1)), tmpl("B", vec(1, 1))})
	svc := &enroll.Service{Gallery: g, Rule: enroll.Rule{Threshold: 0.5}}
	near := face.Face{Embedding: vec(0, 0.8)} // 0.2 from A
	far := face.Face{Embedding: vec(1, 0.9)}  // B's, √1.81 from A

	if ok, d := svc.MatchesCustomer("A", []face.Face{near}); !ok || math.Abs(d-0.2) > 1e-6 {
		t.Errorf("near face: %v %v", ok, d)
	}
	if ok, _ := svc.MatchesCustomer("A", []face.Face{far}); ok {
		t.Error("B's face matches A")
	}
	// The faces are fused (unit vectors: mean put back on the sphere), as a
	// camera track's are: one near and one far face do not average in.
	a, b := vec(0, 1), vec(1, 1)
	if ok, d := svc.MatchesCustomer("A", []face.Face{{Embedding: a}, {Embedding: b}}); ok {
		t.Errorf("A's face fused with B's matches A at %v", d)
	}
	if ok, d := svc.MatchesCustomer("C", []face.Face{near}); ok || !math.IsInf(d, 1) {
		t.Errorf("unknown customer: %v %v", ok, d)
	}
	if ok, _ := svc.MatchesCustomer("A", nil); ok {
		t.Error("no face matches")
	}
	if d, ok := g.Distance(&near.Embedding, "B"); !ok || math.Abs(d-math.Hypot(0.8, 1)) > 1e-6 {
		t.Errorf("distance to B: %v %v", d, ok)
	}
	// A stricter rule in force refuses what the loose one accepts.
	svc.Rule.Threshold = 0.1
	if ok, _ := svc.MatchesCustomer("A", []face.Face{near}); ok {
		t.Error("matched beyond the threshold in force")
	}
}
