package eval

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"concierge/enroll"
	"concierge/face"
)

// idolsVisits is the return-visit simulation on the idols' dlib
// descriptors: few of them have more than 8 photos, so visits are of 3.
func idolsVisits(door DoorPolicy) VisitsConfig {
	cfg := DefaultVisits
	cfg.Seeds, cfg.Track, cfg.Visits, cfg.Door = 5, 3, 3, door
	cfg.Rule = enroll.Rule{Threshold: 0.30, Margin: 0.10, FaceSlack: 0.15} // dlib's ceiling, margin and slack
	return cfg
}

// TestVisitsIdols runs the simulation on real embeddings: it is
// deterministic, a door row never lets the threshold rise above the
// kiosk-only calibration, the cap holds, no stranger visit is announced,
// and learning from confirmed visits recognises later visits at least as
// often as learning nothing.
func TestVisitsIdols(t *testing.T) {
	set := idolSet(t)
	chosen, err := SimulateVisits(set, idolsVisits(DefaultVisits.Door))
	if err != nil {
		t.Fatal(err)
	}
	again, err := SimulateVisits(set, idolsVisits(DefaultVisits.Door))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(chosen.Sizes, again.Sizes) {
		t.Fatal("two runs of the same seeds differ")
	}
	none, err := SimulateVisits(set, idolsVisits(DoorPolicy{Mode: DoorNone}))
	if err != nil {
		t.Fatal(err)
	}
	if chosen.Customers != 89 || chosen.StrangerIDs != 45 {
		t.Fatalf("%d customers, %d strangers; want 89, 45", chosen.Customers, chosen.StrangerIDs)
	}
	for i, s := range chosen.Sizes {
		n := none.Sizes[i]
		if s.Threshold > n.Threshold || s.Band > n.Band {
			t.Errorf("%d customers: threshold %.3f band %.3f above the kiosk-only %.3f %.3f", s.Customers, s.Threshold, s.Band, n.Threshold, n.Band)
		}
		if s.DoorTemplates <= 0 || s.DoorTemplates > float64(DefaultVisits.Door.Cap) {
			t.Errorf("%d customers: %.2f door templates per customer, want in (0, %d]", s.Customers, s.DoorTemplates, DefaultVisits.Door.Cap)
		}
		if s.StrangerAlerts.Events != 0 || s.WrongAlerts.Events != 0 || s.StrangerAlerts.Trials < 300 {
			t.Errorf("%d customers: stranger alerts %+v, wrong alerts %+v", s.Customers, s.StrangerAlerts, s.WrongAlerts)
		}
		for k := 1; k < len(s.Visits); k++ {
			if s.Visits[k].Announced.Trials != n.Visits[k].Announced.Trials {
				t.Fatalf("visit %d: %d and %d trials", k+1, s.Visits[k].Announced.Trials, n.Visits[k].Announced.Trials)
			}
			if s.Visits[k].Announced.Events < n.Visits[k].Announced.Events {
				t.Errorf("%d customers, visit %d: %d announced learning, %d without", s.Customers, k+1, s.Visits[k].Announced.Events, n.Visits[k].Announced.Events)
			}
		}
	}
	// dlib recognises almost nobody at the bank's budget (docs/accuracy.md).
	s := chosen.Sizes[1]
	within(t, "threshold at 1,000", s.Threshold, 0.166, 0.001)
	within(t, "band at 1,000", s.Band, 0.200, 0.001)
	if v := s.Visits[0]; v.Announced.Events != 6 || v.Carded.Events != 29 || v.Announced.Trials != 439 {
		t.Errorf("visit 1 at 1,000: %d announced, %d carded of %d; want 6, 29 of 439", v.Announced.Events, v.Carded.Events, v.Announced.Trials)
	}
}

// TestDoorGalleryMatchesEnrollGallery: the simulation's door centroid
// (DoorMean, with and without a penalty) scores as enroll.Gallery does
// with door templates in their own group and the penalty as the group's
// offset, so the door factors measured here are those of the daemon's
// gallery.
func TestDoorGalleryMatchesEnrollGallery(t *testing.T) {
	for _, penalty := range []float64{0, DefaultVisits.Door.Penalty} {
		t.Run(fmt.Sprint("penalty ", penalty), func(t *testing.T) { doorGalleryMatches(t, penalty) })
	}
}

func doorGalleryMatches(t *testing.T, penalty float64) {
	set := idolSet(t)
	cfg := idolsVisits(DoorPolicy{Mode: DoorMean, Cap: 10, Penalty: penalty})
	labels, groups := set.byLabel()
	sp := splitVisits(labels, groups, 45, cfg, 1)
	g := newDoorGallery(set, sp, cfg.Door)
	gal := enroll.NewGallery("m")
	if err := gal.SetGroupOffset(enroll.DoorGroup, penalty); err != nil {
		t.Fatal(err)
	}
	var ts []enroll.Template
	for ci, idx := range sp.enroll {
		id := fmt.Sprint(ci)
		for _, e := range embeddings(set, idx) {
			ts = append(ts, enroll.Template{CustomerID: id, Model: "m", Embedding: e})
		}
		for _, v := range sp.visits[ci] {
			g.learn(ci, embeddings(set, v))
		}
		for _, e := range g.cust[ci].door {
			ts = append(ts, enroll.Template{CustomerID: id, Model: "m", Embedding: e, Source: enroll.SourceDoor, Group: enroll.DoorGroup})
		}
	}
	gal.Load(ts)
	ids := make([]string, len(g.cust))
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	n, doorWins := 0, 0
	for _, v := range append(slices.Clone(sp.strVisit), sp.visits[0]...) {
		for _, e := range embeddings(set, v) {
			want, _ := topMatch(g.scores(&e), ids)
			got, ok := gal.Search(&e)
			if !ok || got.CustomerID != want.CustomerID || math.Abs(got.Distance-want.Distance) > 1e-6 || math.Abs(got.Margin-want.Margin) > 1e-6 {
				t.Fatalf("probe %d: gallery %+v, simulation %+v", n, got, want)
			}
			ci, _ := strconv.Atoi(got.CustomerID)
			c := &g.cust[ci]
			if len(c.groups) > 1 && math.Sqrt(float64(face.SquaredDistance(&c.groups[1], &e)))+penalty < math.Sqrt(float64(face.SquaredDistance(&c.groups[0], &e))) {
				doorWins++
			}
			n++
		}
	}
	// The door rows, penalised, must decide some probes for the
	// comparison to cover the offset.
	if n < 100 || doorWins == 0 {
		t.Fatalf("%d probes compared, %d decided by a door row", n, doorWins)
	}
}
