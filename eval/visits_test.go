package eval

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
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

// TestVisitsOthers: other people fill the gallery towards each size (at
// most half of them) and the rest come as strangers, every photo once;
// the set's own customers and visits are the same as without them, and
// every stranger alert is listed.
func TestVisitsOthers(t *testing.T) {
	all := idolSet(t)
	labels := all.Labels()
	mine := map[string]bool{}
	for _, l := range labels[:len(labels)/2] {
		mine[l] = true
	}
	set, others := &Set{Model: all.Model}, &Set{Model: all.Model}
	for _, s := range all.Samples {
		if mine[s.Label] {
			set.Samples = append(set.Samples, s)
		} else {
			others.Samples = append(others.Samples, s)
		}
	}
	cfg := idolsVisits(DefaultVisits.Door)
	cfg.Sizes = []int{10, 50, 1000}
	alone, err := SimulateVisits(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Others = others
	res, err := SimulateVisits(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	nOthers := len(others.Labels())
	if res.OtherIDs != nOthers || res.Customers != alone.Customers {
		t.Fatalf("%d others, %d customers; want %d, %d", res.OtherIDs, res.Customers, nOthers, alone.Customers)
	}
	photos := len(others.Samples)
	for i, s := range res.Sizes {
		want := max(res.Customers, min(s.Customers, res.Customers+nOthers/2))
		if s.Gallery != want || alone.Sizes[i].Gallery != res.Customers {
			t.Errorf("%d customers: gallery %d (alone %d); want %d (%d)", s.Customers, s.Gallery, alone.Sizes[i].Gallery, want, res.Customers)
		}
		// Strangers from the others: every photo of those not filling the
		// gallery, in visits of up to Track, in every seed.
		fill := want - res.Customers
		if s.OtherAlerts.Trials < (nOthers-fill)*cfg.Seeds || s.OtherAlerts.Trials > (photos-fill)*cfg.Seeds ||
			s.FullVisits > s.OtherAlerts.Trials || s.OtherCards.Trials != s.OtherAlerts.Trials {
			t.Errorf("%d customers: %d other strangers' visits (%d full) of %d people left", s.Customers, s.OtherAlerts.Trials, s.FullVisits, nOthers-fill)
		}
		if alone.Sizes[i].OtherAlerts.Trials != 0 {
			t.Errorf("without others: %d other visits", alone.Sizes[i].OtherAlerts.Trials)
		}
		if s.Threshold != alone.Sizes[i].Threshold || s.StrangerAlerts.Trials != alone.Sizes[i].StrangerAlerts.Trials {
			t.Errorf("%d customers: the calibration or the set's strangers changed with others", s.Customers)
		}
		for k, v := range s.Visits {
			if v.Announced.Trials != alone.Sizes[i].Visits[k].Announced.Trials {
				t.Errorf("%d customers, visit %d: %d trials, %d alone", s.Customers, k+1, v.Announced.Trials, alone.Sizes[i].Visits[k].Announced.Trials)
			}
		}
		if got := s.StrangerAlerts.Events + s.OtherAlerts.Events; got != len(s.Announced) {
			t.Errorf("%d customers: %d stranger alerts, %d listed", s.Customers, got, len(s.Announced))
		}
		for _, a := range s.Announced {
			if a.Distance > s.Threshold || a.Customer == "" || !mine[a.Stranger] && !strings.HasPrefix(a.Stranger, "other:") {
				t.Errorf("listed alert %+v", a)
			}
		}
	}
	if fewer, more := res.Sizes[0].OtherAlerts.Trials, res.Sizes[2].OtherAlerts.Trials; more >= fewer {
		t.Errorf("a larger gallery leaves fewer strangers: %d visits at 10, %d at 1,000", fewer, more)
	}

	others.Model = "another"
	if _, err := SimulateVisits(set, cfg); err == nil {
		t.Error("others of another model accepted")
	}
}
