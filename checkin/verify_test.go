package checkin_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/face"
	"concierge/internal/testenv/testdb"
)

// cardRecorder is a CardNotifier that keeps what it is given.
type cardRecorder struct {
	mu    sync.Mutex
	cards []checkin.Card
}

func (r *cardRecorder) NotifyCard(_ context.Context, c checkin.Card) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cards = append(r.cards, c)
	return nil
}

func (r *cardRecorder) got() []checkin.Card {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cards)
}

// verifyBand is the band's outer edge in the tests: a little looser than
// the dlib default threshold 0.40.
const verifyBand = 0.48

// inBand returns a customer's held-out descriptors that name the customer
// with the alert margin, beyond the alert threshold but within the band:
// faces that today produce nothing.
func (p *population) inBand(id string) []face.Embedding {
	rule := defaultRule()
	var out []face.Embedding
	for _, e := range p.heldOut(id) {
		m, ok := p.gallery.Search(&e)
		if ok && m.CustomerID == id && m.Margin >= rule.Margin && m.Distance > rule.Threshold && m.Distance <= verifyBand {
			out = append(out, e)
		}
	}
	return out
}

func (p *population) bandCustomer(tb testing.TB, n int) string {
	tb.Helper()
	for _, id := range p.customers {
		if len(p.inBand(id)) >= n {
			return id
		}
	}
	tb.Fatalf("no customer with %d held-out descriptors in the band", n)
	return ""
}

func newVerifyService(tb testing.TB, p *population) (*checkin.Service, *recorder, *cardRecorder) {
	tb.Helper()
	cfg := testConfig()
	cfg.Branch = "b001"
	svc, rec := newService(tb, cfg, p.gallery)
	cards := &cardRecorder{}
	svc.Cards = cards
	svc.Band = func() float64 { return verifyBand }
	return svc, rec, cards
}

// TestVerifyCard: a customer whose real descriptors all lie beyond the
// alert threshold but within the band is not announced; one card is, with
// the masked name, the fused distance and the live face of the track, and
// only faces within the band are ever rendered.
func TestVerifyCard(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.bandCustomer(t, 2)
	svc, rec, cards := newVerifyService(t, p)
	svc.Directory = directory{id: "王小明"}
	svc.Mask = func(name string) string { return string([]rune(name)[:1]) + "女士" }
	var far []face.Embedding // a stranger's faces that are outside the band
	for _, s := range p.strangers {
		far = far[:0]
		for _, e := range p.set.faces[s] {
			if m, ok := p.gallery.Search(&e); !ok || m.Distance > verifyBand || m.Margin < defaultRule().Margin {
				far = append(far, e)
			}
		}
		if len(far) >= 2 {
			break
		}
	}
	if len(far) < 2 {
		t.Fatal("no stranger with 2 faces outside the band")
	}
	sc := &scene{camera: "door-1", start: t0, thumbnails: true, walkers: []*walker{
		approach(0, 300, p.inBand(id)[:2]),
		{from: 0, to: 45, x: 700, y: 100, size: 120, probes: far},
	}}
	sc.play(t, svc, 45)
	svc.Tick(sc.at(45).Add(time.Second))

	if got := rec.got(); len(got) != 0 {
		t.Fatalf("arrivals %+v, want none", got)
	}
	got := cards.got()
	if len(got) != 1 {
		t.Fatalf("%d cards, want 1: %+v", len(got), got)
	}
	c := got[0]
	if c.CustomerID != id || c.Branch != "b001" || c.Camera != "door-1" || c.DisplayName != "王女士" || c.ID == "" {
		t.Fatalf("card %+v", c)
	}
	if c.Distance > verifyBand || c.Margin < defaultRule().Margin || c.Votes < 1 {
		t.Fatalf("card distance %.3f margin %.3f votes %d", c.Distance, c.Margin, c.Votes)
	}
	if !strings.HasPrefix(string(c.Thumbnail), "walker 0 ") {
		t.Fatalf("card thumbnail %q", c.Thumbnail)
	}
	for _, th := range sc.taken {
		if !strings.HasPrefix(th, "walker 0 ") {
			t.Fatalf("a face outside the band was rendered: %q", sc.taken)
		}
	}
	if st := svc.Stats.Snapshot(); st.Cards != 1 || st.Arrivals != 0 || st.TracksDropped != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, tracks, embs, _ := held(t, svc); tracks != 0 || embs != 0 {
		t.Fatalf("held tracks %d embeddings %d", tracks, embs)
	}

	// The cooldown applies as for arrivals: the same visit seen again by
	// another track makes no second card.
	sc2 := &scene{camera: "door-2", start: sc.at(60), walkers: []*walker{approach(0, 300, p.inBand(id)[:2])}}
	sc2.play(t, svc, 45)
	svc.Tick(sc2.at(45).Add(time.Second))
	if got := cards.got(); len(got) != 1 {
		t.Fatalf("%d cards within the cooldown, want 1", len(got))
	}
}

// TestVerifyBandOff: without a band, or with the band at the alert
// threshold, the same track produces nothing and no face is rendered.
func TestVerifyBandOff(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.bandCustomer(t, 2)
	for _, band := range []func() float64{nil, func() float64 { return 0 }, func() float64 { return defaultRule().Threshold - 0.2 }} {
		svc, rec, cards := newVerifyService(t, p)
		svc.Band = band
		sc := &scene{camera: "door-1", start: t0, thumbnails: true, walkers: []*walker{approach(0, 300, p.inBand(id)[:2])}}
		sc.play(t, svc, 45)
		svc.Tick(sc.at(45).Add(time.Second))
		if len(rec.got()) != 0 || len(cards.got()) != 0 || len(sc.taken) != 0 {
			t.Fatalf("arrivals %d cards %d thumbnails %q", len(rec.got()), len(cards.got()), sc.taken)
		}
	}
}

// TestVerifyNotAfterArrival: an announced customer gets no card, and a
// customer announced on one camera gets none from another in the cooldown.
func TestVerifyNotAfterArrival(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 3)
	svc, rec, cards := newVerifyService(t, p)
	sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, p.recognisable(id, defaultRule())[:3])}}
	sc.play(t, svc, 45)
	if band := p.inBand(id); len(band) > 0 {
		sc2 := &scene{camera: "door-2", start: sc.at(50), walkers: []*walker{approach(0, 300, band)}}
		sc2.play(t, svc, 45)
	}
	svc.Tick(t0.Add(time.Hour))
	if len(rec.got()) != 1 || len(cards.got()) != 0 {
		t.Fatalf("arrivals %d cards %d, want 1 and 0", len(rec.got()), len(cards.got()))
	}
}

// TestVerifyStrangers: the band on real descriptors of people who are not
// enrolled. A card may name a look-alike, but every card must be within
// the band and no stranger may be announced.
func TestVerifyStrangers(t *testing.T) {
	p := newPopulation(t, 24)
	svc, rec, cards := newVerifyService(t, p)
	for i, id := range p.strangers {
		sc := &scene{camera: "door-1", start: t0.Add(time.Duration(i) * time.Hour), walkers: []*walker{approach(0, 300, p.set.faces[id])}}
		sc.play(t, svc, 45)
		svc.Tick(sc.at(45).Add(time.Second))
	}
	if len(rec.got()) != 0 {
		t.Fatalf("arrivals for strangers: %+v", rec.got())
	}
	for _, c := range cards.got() {
		if c.Distance > verifyBand {
			t.Fatalf("card beyond the band: %+v", c)
		}
	}
	t.Logf("%d cards for %d strangers at band %.2f", len(cards.got()), len(p.strangers), verifyBand)
}

// TestConfirmCard: a confirmed card becomes an arrival with the card's id
// and the member of staff, recorded in the visit log, with the risk flags
// looked up afresh; and it needs a member of staff.
func TestConfirmCard(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.bandCustomer(t, 2)
	svc, rec, cards := newVerifyService(t, p)
	db := testdb.Open(t)
	svc.VisitLog = db
	vip := &checkin.Tier{Scheme: "icbc-stars", Level: "star5", VIP: true}
	svc.Tiers = tiers{id: {tier: vip, risk: []checkin.RiskFlag{{Kind: "aml", Reason: "R1"}}}}
	sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, p.inBand(id)[:2])}}
	sc.play(t, svc, 45)
	svc.Tick(sc.at(45).Add(time.Second))
	got := cards.got()
	if len(got) != 1 {
		t.Fatalf("%d cards", len(got))
	}
	if err := svc.ConfirmCard(context.Background(), got[0], ""); err == nil {
		t.Fatal("confirmed without a member of staff")
	}
	if err := svc.ConfirmCard(context.Background(), got[0], "李经理"); err != nil {
		t.Fatal(err)
	}
	as := rec.got()
	if len(as) != 1 || as[0].ID != got[0].ID || as[0].VerifiedBy != "李经理" || as[0].CustomerID != id || as[0].Tier != vip {
		t.Fatalf("arrivals %+v", as)
	}
	if len(rec.risks[0]) != 1 {
		t.Fatalf("risk flags %+v", rec.risks[0])
	}
	visits, err := db.Visits(context.Background(), id, t0)
	if err != nil || len(visits) != 1 || visits[0].ID != got[0].ID {
		t.Fatalf("visits %+v, %v", visits, err)
	}
}
