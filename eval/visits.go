package eval

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
)

// DoorMode is how a customer's door templates (faces of visits staff
// confirmed) are scored next to the enrollment's centroid. A customer's
// distance is always the nearest of their groups.
type DoorMode string

const (
	// DoorNone learns nothing: the enrollment centroid alone.
	DoorNone DoorMode = "none"
	// DoorMerge adds the door faces to the enrollment's templates: one
	// centroid of everything.
	DoorMerge DoorMode = "merge"
	// DoorMean keeps the enrollment centroid and one door centroid, the
	// mean of every door face (the rough simulation).
	DoorMean DoorMode = "mean"
	// DoorFaces makes every door face its own group.
	DoorFaces DoorMode = "faces"
	// DoorVisit stores one template per confirmed visit, the visit's fused
	// embedding (the mean of its faces, which the daemon decided on), each
	// its own group.
	DoorVisit DoorMode = "visit"
)

// DoorModes lists every mode, for comparisons.
var DoorModes = []DoorMode{DoorNone, DoorMerge, DoorMean, DoorFaces, DoorVisit}

// DoorPolicy is what a confirmed visit adds to the gallery and how it is
// scored.
type DoorPolicy struct {
	Mode DoorMode `json:"mode"`
	// Cap is the most door templates a customer keeps; the oldest is
	// replaced. 0: no limit.
	Cap int `json:"cap"`
	// PerVisit is the most faces one visit adds (DoorMerge, DoorMean,
	// DoorFaces); 0: all of them.
	PerVisit int `json:"per_visit"`
	// Dedupe skips a face (or a visit's mean) within this distance of one
	// of the customer's templates: a near-duplicate adds no knowledge, only
	// chances for strangers.
	Dedupe float64 `json:"dedupe"`
	// Penalty is added to a door group's distance: a stricter threshold for
	// door rows than for the enrollment.
	Penalty float64 `json:"penalty"`
}

func (p DoorPolicy) String() string {
	s := string(p.Mode)
	if p.Mode == DoorNone {
		return s
	}
	if p.Cap > 0 {
		s += fmt.Sprintf(" cap %d", p.Cap)
	}
	if p.PerVisit > 0 {
		s += fmt.Sprintf(" per-visit %d", p.PerVisit)
	}
	if p.Dedupe > 0 {
		s += fmt.Sprintf(" dedupe %.2f", p.Dedupe)
	}
	if p.Penalty > 0 {
		s += fmt.Sprintf(" penalty %.2f", p.Penalty)
	}
	return s
}

// VisitsConfig shapes the simulation of customers coming back.
type VisitsConfig struct {
	Enroll    int     `json:"enroll"`    // photos each customer is enrolled with
	Strangers float64 `json:"strangers"` // fraction of identities never enrolled
	Seeds     int     `json:"seeds"`
	Seed      uint64  `json:"seed"`
	Track     int     `json:"track"`  // faces per visit
	Visits    int     `json:"visits"` // visits reported per person (1..Visits)
	Door      DoorPolicy
	// Rule is the engine's rule: its margin and face slack apply, its
	// threshold is the ceiling the calibrated threshold never exceeds.
	Rule  enroll.Rule `json:"rule"`
	Votes int         `json:"votes"`
	// Target is the confident false-alert budget per stranger visit and
	// VerifyTarget the card budget (match.false_alert_target,
	// match.verify_target).
	Target       float64 `json:"target"`
	VerifyTarget float64 `json:"verify_target"`
	Sizes        []int   `json:"sizes"`
	// Others are photos of people outside the set (another labelled set,
	// embedded with the same model). At each size the simulated gallery is
	// filled up to that many customers with them (at most half of them),
	// enrolled as the customers are, and the rest come in as strangers,
	// all their photos in visits of up to Track: a real gallery of the
	// size instead of one reached by the calibration alone, and stranger
	// visits by the thousand. Nil: only the set's own people.
	Others *Set `json:"-"`
}

// DefaultVisits is the simulation docs/accuracy.md reports.
var DefaultVisits = VisitsConfig{Enroll: 3, Strangers: 1.0 / 3, Seeds: 20, Seed: 1, Track: 5, Visits: 5,
	Door: DoorPolicy{Mode: DoorMean, Cap: 10, Penalty: 0.05}, Votes: 1, Target: 1e-4, VerifyTarget: 1e-2, Sizes: []int{100, 1000, 10000}}

// VisitStat is what happened on the k-th visit of the customers who made
// at least k visits.
type VisitStat struct {
	Visit     int  `json:"visit"`
	Announced Rate `json:"announced"`
	Carded    Rate `json:"carded"`
}

// VisitsSize is the simulation at one gallery size's calibrated rule.
type VisitsSize struct {
	Customers int `json:"customers"`
	// Gallery is how many customers the simulated gallery held: the set's
	// own, and with Others as many of them as filled it towards Customers.
	Gallery   int     `json:"gallery"`
	Threshold float64 `json:"threshold"`
	Band      float64 `json:"band"`
	// Unlearned and BandUnlearned are how much farther both lie for a
	// customer who holds no door row (enroll.Rule.Unlearned).
	Unlearned     float64 `json:"unlearned,omitempty"`
	BandUnlearned float64 `json:"band_unlearned,omitempty"`
	// Expected false alerts and cards per stranger visit at this size, from
	// the tails measured with door templates in the gallery.
	ExpectedAlerts float64     `json:"expected_alerts"`
	ExpectedCards  float64     `json:"expected_cards"`
	Visits         []VisitStat `json:"visits"`
	// Genuine visits announced or carded as another customer.
	WrongAlerts Rate `json:"wrong_alerts"`
	WrongCards  Rate `json:"wrong_cards"`
	// Stranger visits against the simulated gallery after every customer's
	// visits were learned.
	StrangerAlerts Rate `json:"stranger_alerts"`
	StrangerCards  Rate `json:"stranger_cards"`
	// The same for the Others who were not in the gallery; FullVisits of
	// their visits had Track photos (the others fewer: people with few
	// photos).
	OtherAlerts Rate `json:"other_alerts"`
	OtherCards  Rate `json:"other_cards"`
	FullVisits  int  `json:"other_full_visits"`
	// Announced lists every stranger visit announced as a customer, so
	// that each can be looked at (label noise of the other set, a look-alike).
	Announced []StrangerAlert `json:"announced,omitempty"`
	// DoorTemplates is the mean number of door templates a customer holds
	// at the end.
	DoorTemplates float64 `json:"door_templates"`
}

// VisitsResult is the simulation of one door policy.
type VisitsResult struct {
	Config VisitsConfig `json:"config"`
	// Tails measured on strangers against galleries in which every
	// customer's every visit was learned (the most door templates the
	// policy allows): the calibration the daemon needs.
	Tail      enroll.Tail `json:"tail"`
	TrackTail enroll.Tail `json:"track_tail"`
	// The same without door templates; the thresholds hold the target for
	// the larger of the four rates.
	KioskTail      enroll.Tail `json:"kiosk_tail"`
	KioskTrackTail enroll.Tail `json:"kiosk_track_tail"`
	// DoorFactor is how many times the door rows multiply the impostor
	// rate of the kiosk-only gallery, measured where the tails are fitted
	// (the larger of faces and visits): the kiosk-only calibration holds
	// the budget with door rows when its target is divided by it.
	DoorFactor float64 `json:"door_factor"`
	// Comparisons behind the two tails.
	Comparisons      int `json:"comparisons"`
	TrackComparisons int `json:"track_comparisons"`
	// Customers and stranger identities per seed, and the identities in
	// Others.
	Customers   int           `json:"customers"`
	StrangerIDs int           `json:"stranger_identities"`
	OtherIDs    int           `json:"other_identities,omitempty"`
	Sizes       []VisitsSize  `json:"sizes"`
	split       []visitsSplit // per seed
}

// visitsSplit is one seed's people: customers' enrollment photos and
// visits, strangers' visits, as sample indexes.
type visitsSplit struct {
	enroll   [][]int   // by customer
	visits   [][][]int // by customer: visits in order, Track distinct photos each
	strVisit [][]int   // stranger visits
	others   [][]int   // by identity of Others, in a seeded order: photos shuffled
}

// SimulateVisits runs the return-visit simulation: customers enrolled with
// Enroll photos come back in visits of Track distinct photos, in rounds
// (everyone's first visit, then everyone's second…); a visit announced or
// carded for its own customer is confirmed by staff and adds door
// templates under the policy, any other outcome adds nothing. Strangers'
// visits are decided against the gallery after all the learning. The
// thresholds are calibrated for each size on tails measured with door
// templates in the gallery.
func SimulateVisits(set *Set, cfg VisitsConfig) (*VisitsResult, error) {
	switch {
	case cfg.Enroll < 1 || cfg.Track < 1 || cfg.Seeds < 1 || cfg.Visits < 1:
		return nil, fmt.Errorf("visits: enroll %d, track %d, seeds %d, visits %d: want at least 1 each", cfg.Enroll, cfg.Track, cfg.Seeds, cfg.Visits)
	case cfg.Strangers <= 0 || cfg.Strangers >= 1:
		return nil, fmt.Errorf("visits: stranger fraction %v: want in (0, 1)", cfg.Strangers)
	case !slices.Contains(DoorModes, cfg.Door.Mode):
		return nil, fmt.Errorf("visits: unknown door mode %q", cfg.Door.Mode)
	case cfg.Rule.Threshold <= 0 || cfg.Target <= 0:
		return nil, fmt.Errorf("visits: needs the engine's ceiling and a target")
	}
	labels, groups := set.byLabel()
	nStr := int(math.Round(float64(len(labels)) * cfg.Strangers))
	if nStr < 1 || len(labels)-nStr < 2 {
		return nil, fmt.Errorf("visits: %d identities cannot make at least 2 customers and 1 stranger", len(labels))
	}
	res := &VisitsResult{Config: cfg, Customers: len(labels) - nStr, StrangerIDs: nStr}
	var others [][]int
	if cfg.Others != nil {
		var err error
		if set, others, err = withOthers(set, cfg.Others); err != nil {
			return nil, err
		}
		res.OtherIDs = len(others)
	}
	for s := range cfg.Seeds {
		sp := splitVisits(labels, groups, nStr, cfg, cfg.Seed+uint64(s))
		sp.others = shuffleOthers(others, cfg.Seed+uint64(s))
		res.split = append(res.split, sp)
	}

	// Calibration: every genuine visit learned, strangers and customers
	// compared with every customer who is not them. The kiosk-only tails
	// are measured too: a door row can only bring a stranger nearer, so
	// the rate with door templates is never below the rate without, and
	// where the fitted lines say otherwise (they are extrapolated far
	// below what was measured) the lower threshold is kept.
	door, dSingle, dTracks, err := res.calibrate(set, cfg.Door)
	if err != nil {
		return nil, err
	}
	kiosk, kSingle, kTracks, err := res.calibrate(set, DoorPolicy{Mode: DoorNone})
	if err != nil {
		return nil, err
	}
	res.Tail, res.TrackTail = door.Tail, door.Track
	res.KioskTail, res.KioskTrackTail = kiosk.Tail, kiosk.Track
	// The door rows' cost as a factor on the kiosk-only rate, measured
	// where the rates are measured (the fitted part of the tails): the
	// target is divided by it, so the kiosk tail, calibrated as before,
	// holds the budget with the door rows in the gallery even where the
	// two fitted lines cross.
	res.DoorFactor = max(doorFactor(kSingle, dSingle), doorFactor(kTracks, dTracks))
	kiosk.Target = cfg.Target / res.DoorFactor
	door.Target = cfg.Target
	door.Ceiling, kiosk.Ceiling = cfg.Rule.Threshold, cfg.Rule.Threshold
	// A customer who holds no door row costs a stranger's visit only the
	// kiosk-only rate: they are calibrated without the factor
	// (enroll.Rule.Unlearned), as the daemon does.
	plain := kiosk
	plain.Target = cfg.Target
	for _, n := range cfg.Sizes {
		rule := cfg.Rule
		rule.Threshold = min(door.Threshold(n), kiosk.Threshold(n))
		band := max(rule.Threshold, min(door.Band(cfg.VerifyTarget, n), kiosk.Band(cfg.VerifyTarget/res.DoorFactor, n)))
		var bandUnlearned float64
		if cfg.Door.Mode != DoorNone {
			th := plain.Threshold(n)
			rule.Unlearned = max(0, th-rule.Threshold)
			bandUnlearned = max(0, max(th, plain.Band(cfg.VerifyTarget, n))-band)
		}
		vs := res.run(set, rule, band, bandUnlearned, n)
		vs.Customers = n
		vs.ExpectedAlerts = max(door.Expected(rule.Threshold, n), res.DoorFactor*kiosk.Expected(rule.Threshold, n))
		if band > rule.Threshold {
			vs.ExpectedCards = max(door.Expected(band, n), res.DoorFactor*kiosk.Expected(band, n))
		}
		res.Sizes = append(res.Sizes, vs)
	}
	return res, nil
}

// calibrate fits the impostor tails of faces and of visits (decided on
// their fused embedding after every face, as the daemon's track tail)
// against galleries in which every customer learned every one of their
// visits under policy: the most door templates the policy allows.
func (res *VisitsResult) calibrate(set *Set, policy DoorPolicy) (o enroll.OpenSet, single, tracks []float64, err error) {
	for _, sp := range res.split {
		g := newDoorGallery(set, sp, policy)
		for ci, vs := range sp.visits {
			for _, v := range vs {
				g.learn(ci, embeddings(set, v))
			}
		}
		add := func(owner int, v []int) {
			es := embeddings(set, v)
			best := make([]float64, len(g.cust))
			for i := range best {
				best[i] = math.Inf(1)
			}
			for k := range es {
				fs := g.scores(ptr(checkin.Fuse(es[:k+1], nil)))
				ps := g.scores(&es[k])
				for ci := range g.cust {
					if ci == owner {
						continue
					}
					single = append(single, ps[ci])
					best[ci] = math.Min(best[ci], fs[ci])
				}
			}
			for ci, d := range best {
				if ci != owner {
					tracks = append(tracks, d)
				}
			}
		}
		for ci, vs := range sp.visits {
			for _, v := range vs {
				add(ci, v)
			}
		}
		for _, v := range sp.strVisit {
			add(-1, v)
		}
	}
	slices.Sort(single)
	slices.Sort(tracks)
	st, err := FitTail(single)
	if err != nil {
		return o, nil, nil, fmt.Errorf("visits: faces: %w", err)
	}
	tt, err := FitTail(tracks)
	if err != nil {
		return o, nil, nil, fmt.Errorf("visits: visits: %w", err)
	}
	res.Comparisons, res.TrackComparisons = len(single), len(tracks)
	o = enroll.OpenSet{Tail: enroll.Tail{Alpha: st.Alpha, Beta: st.Beta}, Track: enroll.Tail{Alpha: tt.Alpha, Beta: tt.Beta}}
	return o, single, tracks, nil
}

// doorFactor is the largest ratio of the door gallery's impostor count to
// the kiosk-only gallery's at the same distance, over the lower tail where
// the kiosk-only count is at least minTailEvents and up to 5 % of the
// comparisons (the part the tails are fitted on). Both come from the same
// comparisons, so counts compare directly. At least 1.
func doorFactor(kiosk, door []float64) float64 {
	f := 1.0
	hi := int(0.05 * float64(len(kiosk)))
	for j := minTailEvents; j <= hi; j++ {
		t := kiosk[j-1]
		f = math.Max(f, float64(countAtMost(door, t))/float64(countAtMost(kiosk, t)))
	}
	return f
}

func ptr(e face.Embedding) *face.Embedding { return &e }

func embeddings(set *Set, idx []int) []face.Embedding {
	out := make([]face.Embedding, len(idx))
	for i, j := range idx {
		out[i] = set.Samples[j].Embedding
	}
	return out
}

func splitVisits(labels []string, groups map[string][]int, nStr int, cfg VisitsConfig, seed uint64) visitsSplit {
	rng := rand.New(rand.NewPCG(seed, seedStream))
	order := slices.Clone(labels)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	strangers, customers := order[:nStr], order[nStr:]
	slices.Sort(strangers)
	slices.Sort(customers)
	deal := func(idx []int) [][]int {
		var out [][]int
		for len(idx) >= cfg.Track {
			out = append(out, idx[:cfg.Track:cfg.Track])
			idx = idx[cfg.Track:]
		}
		return out
	}
	var sp visitsSplit
	for _, lab := range customers {
		idx := slices.Clone(groups[lab])
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		k := min(cfg.Enroll, len(idx))
		sp.enroll = append(sp.enroll, idx[:k])
		// Visits never repeat a photo: a repeated photo would meet itself
		// as a door template.
		sp.visits = append(sp.visits, deal(idx[k:]))
	}
	for _, lab := range strangers {
		idx := slices.Clone(groups[lab])
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		sp.strVisit = append(sp.strVisit, deal(idx)...)
	}
	return sp
}

// run decides every visit under rule and band, learning as staff confirm,
// with the gallery filled towards n customers from the Others. Seeds run
// in parallel; each tallies its own counts.
func (res *VisitsResult) run(set *Set, rule enroll.Rule, band, bandUnlearned float64, n int) VisitsSize {
	cfg := res.Config
	out := VisitsSize{Threshold: rule.Threshold, Band: band, Unlearned: rule.Unlearned, BandUnlearned: bandUnlearned}
	tallies := make([]seedTally, len(res.split))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for s := range res.split {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tallies[s] = res.runSeed(set, res.split[s], rule, band, bandUnlearned, n)
		})
	}
	wg.Wait()
	ann := make([]counter, cfg.Visits)
	card := make([]counter, cfg.Visits)
	var wrongA, wrongC, strA, strC, othA, othC counter
	var doors, custs int
	for s, t := range tallies {
		for k := range cfg.Visits {
			ann[k].addN(s, t.ann[k], t.visits[k])
			card[k].addN(s, t.card[k], t.visits[k])
		}
		wrongA.addN(s, t.wrongA, t.genuine)
		wrongC.addN(s, t.wrongC, t.genuine)
		strA.addN(s, t.strA, t.strangers)
		strC.addN(s, t.strC, t.strangers)
		othA.addN(s, t.othA, t.others)
		othC.addN(s, t.othC, t.others)
		out.FullVisits += t.full
		doors += t.doors
		custs += t.customers
		out.Gallery = t.gallery
		for _, a := range t.announced {
			a.Seed = s
			out.Announced = append(out.Announced, a)
		}
	}
	for k := range cfg.Visits {
		out.Visits = append(out.Visits, VisitStat{Visit: k + 1, Announced: ann[k].rate(), Carded: card[k].rate()})
	}
	out.WrongAlerts, out.WrongCards = wrongA.rate(), wrongC.rate()
	out.StrangerAlerts, out.StrangerCards = strA.rate(), strC.rate()
	if len(res.split) > 0 && len(res.split[0].others) > 0 {
		out.OtherAlerts, out.OtherCards = othA.rate(), othC.rate()
	}
	out.DoorTemplates = float64(doors) / float64(max(custs, 1))
	return out
}

// StrangerAlert is a stranger's visit announced as a customer: the
// stranger's label and faces, whom they were taken for, and the fused
// distance the alert was decided on.
type StrangerAlert struct {
	Seed     int      `json:"seed"`
	Stranger string   `json:"stranger"`
	Sources  []string `json:"sources"`
	Customer string   `json:"customer"`
	Distance float64  `json:"distance"`
}

// seedTally is one seed's counts: per visit k, genuine visits made,
// announced and carded for their customer.
type seedTally struct {
	visits, ann, card         []int
	genuine, wrongA, wrongC   int
	strangers, strA, strC     int
	others, othA, othC, full  int
	doors, customers, gallery int
	announced                 []StrangerAlert
}

func (res *VisitsResult) runSeed(set *Set, sp visitsSplit, rule enroll.Rule, band, bandUnlearned float64, n int) seedTally {
	cfg := res.Config
	t := seedTally{visits: make([]int, cfg.Visits), ann: make([]int, cfg.Visits), card: make([]int, cfg.Visits)}
	fill := min(max(0, n-len(sp.enroll)), len(sp.others)/2)
	g := newDoorGallery(set, sp, cfg.Door)
	g.fill(set, sp.others[:fill], cfg.Enroll)
	t.gallery = len(g.cust)
	labels := make([]string, len(g.cust))
	for ci, idx := range sp.enroll {
		labels[ci] = set.Samples[idx[0]].Label
	}
	for i, idx := range sp.others[:fill] {
		labels[len(sp.enroll)+i] = set.Samples[idx[0]].Label
	}
	stranger := func(v []int, who int) {
		a := StrangerAlert{Stranger: set.Samples[v[0]].Label, Customer: labels[who]}
		for _, j := range v {
			a.Sources = append(a.Sources, set.Samples[j].Source)
		}
		es := embeddings(set, v)
		a.Distance = math.Inf(1)
		for k := range es {
			a.Distance = math.Min(a.Distance, g.scores(ptr(checkin.Fuse(es[:k+1], nil)))[who])
		}
		t.announced = append(t.announced, a)
	}
	rounds := 0
	for _, vs := range sp.visits {
		rounds = max(rounds, len(vs))
	}
	for k := range rounds {
		for ci, vs := range sp.visits {
			if k >= len(vs) {
				continue
			}
			es := embeddings(set, vs[k])
			who, announced := g.visit(es, rule, band, bandUnlearned, cfg.Votes)
			if k < cfg.Visits {
				t.visits[k]++
				t.ann[k] += b2i(announced && who == ci)
				t.card[k] += b2i(!announced && who == ci)
			}
			t.genuine++
			t.wrongA += b2i(announced && who >= 0 && who != ci)
			t.wrongC += b2i(!announced && who >= 0 && who != ci)
			if who == ci {
				g.learn(ci, es)
			}
		}
	}
	for _, v := range sp.strVisit {
		who, announced := g.visit(embeddings(set, v), rule, band, bandUnlearned, cfg.Votes)
		t.strangers++
		t.strA += b2i(announced && who >= 0)
		t.strC += b2i(!announced && who >= 0)
		if announced && who >= 0 {
			stranger(v, who)
		}
	}
	for _, idx := range sp.others[fill:] {
		for len(idx) > 0 {
			v := idx[:min(cfg.Track, len(idx))]
			idx = idx[len(v):]
			who, announced := g.visit(embeddings(set, v), rule, band, bandUnlearned, cfg.Votes)
			t.others++
			t.full += b2i(len(v) == cfg.Track)
			t.othA += b2i(announced && who >= 0)
			t.othC += b2i(!announced && who >= 0)
			if announced && who >= 0 {
				stranger(v, who)
			}
		}
	}
	for ci := range sp.enroll {
		t.doors += len(g.cust[ci].door)
		t.customers++
	}
	return t
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// withOthers returns set followed by the samples of others, relabelled
// so that no label meets one of set's, and the indexes of each of
// others' identities in it.
func withOthers(set, others *Set) (*Set, [][]int, error) {
	if others.Model != set.Model {
		return nil, nil, fmt.Errorf("visits: the other people's faces are of model %q, the set's of %q", others.Model, set.Model)
	}
	all := &Set{Model: set.Model, Images: set.Images, Samples: slices.Clone(set.Samples)}
	labels, groups := others.byLabel()
	out := make([][]int, 0, len(labels))
	for _, lab := range labels {
		var idx []int
		for _, j := range groups[lab] {
			x := others.Samples[j]
			x.Label = "other:" + x.Label
			idx = append(idx, len(all.Samples))
			all.Samples = append(all.Samples, x)
		}
		out = append(out, idx)
	}
	return all, out, nil
}

// shuffleOthers orders the other identities, and each one's photos, for
// one seed: the first fill the gallery.
func shuffleOthers(others [][]int, seed uint64) [][]int {
	if len(others) == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, seedStream+1))
	out := make([][]int, len(others))
	for i, idx := range others {
		out[i] = slices.Clone(idx)
		rng.Shuffle(len(idx), func(a, b int) { out[i][a], out[i][b] = out[i][b], out[i][a] })
	}
	rng.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
	return out
}

// doorGallery is one seed's customers with the door templates they have
// learned, scored under the policy.
type doorGallery struct {
	policy DoorPolicy
	cust   []doorCustomer
}

type doorCustomer struct {
	kiosk []face.Embedding
	door  []face.Embedding // oldest first
	// groups are the centroids scored, and which of them are door rows.
	groups []face.Embedding
	isDoor []bool
}

func newDoorGallery(set *Set, sp visitsSplit, p DoorPolicy) *doorGallery {
	g := &doorGallery{policy: p, cust: make([]doorCustomer, len(sp.enroll))}
	for ci, idx := range sp.enroll {
		g.cust[ci].kiosk = embeddings(set, idx)
		g.regroup(ci)
	}
	return g
}

// fill enrolls the other people in ids (their first enroll photos) as
// customers who never come back.
func (g *doorGallery) fill(set *Set, ids [][]int, enroll int) {
	for _, idx := range ids {
		g.cust = append(g.cust, doorCustomer{kiosk: embeddings(set, idx[:min(enroll, len(idx))])})
		g.regroup(len(g.cust) - 1)
	}
}

func (g *doorGallery) regroup(ci int) {
	c := &g.cust[ci]
	c.groups, c.isDoor = c.groups[:0], c.isDoor[:0]
	switch g.policy.Mode {
	case DoorMerge:
		c.groups = append(c.groups, face.Mean(append(slices.Clone(c.kiosk), c.door...), nil))
		c.isDoor = append(c.isDoor, false)
		return
	default:
		c.groups = append(c.groups, face.Mean(c.kiosk, nil))
		c.isDoor = append(c.isDoor, false)
	}
	if len(c.door) == 0 {
		return
	}
	switch g.policy.Mode {
	case DoorMean:
		c.groups = append(c.groups, face.Mean(c.door, nil))
		c.isDoor = append(c.isDoor, true)
	case DoorFaces, DoorVisit:
		for _, d := range c.door {
			c.groups = append(c.groups, d)
			c.isDoor = append(c.isDoor, true)
		}
	}
}

// learn adds what a confirmed visit of customer ci teaches.
func (g *doorGallery) learn(ci int, es []face.Embedding) {
	p := g.policy
	if p.Mode == DoorNone {
		return
	}
	c := &g.cust[ci]
	cands := es
	if p.Mode == DoorVisit {
		cands = []face.Embedding{face.Mean(es, nil)}
	}
	added := 0
	for _, e := range cands {
		if p.PerVisit > 0 && added >= p.PerVisit {
			break
		}
		if p.Dedupe > 0 && g.near(c, &e, p.Dedupe) {
			continue
		}
		c.door = append(c.door, e)
		added++
		if p.Cap > 0 && len(c.door) > p.Cap {
			c.door = slices.Delete(c.door, 0, 1)
		}
	}
	if added > 0 {
		g.regroup(ci)
	}
}

func (g *doorGallery) near(c *doorCustomer, e *face.Embedding, within float64) bool {
	w := float32(within * within)
	for _, ts := range [][]face.Embedding{c.kiosk, c.door} {
		for i := range ts {
			if face.SquaredDistance(&ts[i], e) <= w {
				return true
			}
		}
	}
	return false
}

// scores is the distance of e to every customer: the nearest of their
// groups, door groups with the policy's penalty.
func (g *doorGallery) scores(e *face.Embedding) []float64 {
	out := make([]float64, len(g.cust))
	for ci := range g.cust {
		c := &g.cust[ci]
		best := math.Inf(1)
		for k := range c.groups {
			d := math.Sqrt(float64(face.SquaredDistance(&c.groups[k], e)))
			if c.isDoor[k] {
				d += g.policy.Penalty
			}
			best = math.Min(best, d)
		}
		out[ci] = best
	}
	return out
}

// decide is check-in's decision on a visit of faces es: the customer it is
// announced for (announced true), carded for (false), or -1. It builds the
// run and track the open-set simulation decides on, so that both decide
// with check-in's own rule (decide, bandCard: checkin.Rule).
func (g *doorGallery) visit(es []face.Embedding, rule enroll.Rule, band, bandUnlearned float64, votes int) (int, bool) {
	ids := make([]string, len(g.cust))
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	r := run{ids: ids, probes: make([]probe, len(es))}
	t := track{probes: make([]int, len(es)), fused: make([]fused, len(es))}
	for k := range es {
		p := probe{scores: g.scores(&es[k])}
		p.match, p.top = topMatch(p.scores, ids)
		p.match.Learned = g.learned(p.top)
		r.probes[k] = p
		t.probes[k] = k
		f := fused{scores: g.scores(ptr(checkin.Fuse(es[:k+1], nil)))}
		f.match, f.top = topMatch(f.scores, ids)
		f.match.Learned = g.learned(f.top)
		t.fused[k] = f
	}
	tracks := checkin.Rule{Match: rule, Votes: votes}
	if c, ok := decide(r, t, tracks); ok {
		return c, true
	}
	if band > rule.Threshold {
		cards := tracks
		cards.Match.Unlearned = bandUnlearned
		if c := bandCard(r, t, cards, band); c >= 0 {
			return c, false
		}
	}
	return -1, false
}

// learned reports whether customer ci holds door templates, as
// enroll.Match.Learned does for the daemon's gallery.
func (g *doorGallery) learned(ci int) bool {
	return ci >= 0 && len(g.cust[ci].door) > 0
}

// WriteText prints the simulation.
func (res *VisitsResult) WriteText(w io.Writer) error {
	cfg := res.Config
	fmt.Fprintf(w, "Return visits, door policy %s, cards for %g per stranger visit: %d seeds, %d customers and %d strangers each, enrolled with %d photos, visits of %d photos\n",
		cfg.Door, cfg.VerifyTarget, cfg.Seeds, res.Customers, res.StrangerIDs, cfg.Enroll, cfg.Track)
	others := res.OtherIDs > 0
	if others {
		fmt.Fprintf(w, "%d other people fill each gallery towards its size (at most half of them); the rest come as strangers, all their photos in visits of up to %d\n",
			res.OtherIDs, cfg.Track)
	}
	fmt.Fprintf(w, "tails with door templates in the gallery: faces %.3f + %.3f t (%d comparisons), visits %.3f + %.3f t (%d); door factor %.2f on the kiosk-only rate\n",
		res.Tail.Alpha, res.Tail.Beta, res.Comparisons, res.TrackTail.Alpha, res.TrackTail.Beta, res.TrackComparisons, res.DoorFactor)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "customers\tgallery\tthreshold\tband")
	for k := 1; k <= cfg.Visits; k++ {
		fmt.Fprintf(tw, "\tvisit %d announced / carded", k)
	}
	fmt.Fprintf(tw, "\twrong alerts / cards\tstranger alerts\tstranger cards")
	if others {
		fmt.Fprintf(tw, "\tother strangers' alerts\tcards (full visits)")
	}
	fmt.Fprintf(tw, "\texpected alerts / cards per 100 stranger visits\tdoor templates\n")
	for _, s := range res.Sizes {
		fmt.Fprintf(tw, "%d\t%d\t%.3f\t%.3f", s.Customers, s.Gallery, s.Threshold, s.Band)
		for _, v := range s.Visits {
			fmt.Fprintf(tw, "\t%s / %s (n %d)", pct(v.Announced.Rate), pct(v.Carded.Rate), v.Announced.Trials)
		}
		fmt.Fprintf(tw, "\t%d / %d\t%d/%d\t%d/%d", s.WrongAlerts.Events, s.WrongCards.Events,
			s.StrangerAlerts.Events, s.StrangerAlerts.Trials, s.StrangerCards.Events, s.StrangerCards.Trials)
		if others {
			fmt.Fprintf(tw, "\t%d/%d\t%d/%d (%d)", s.OtherAlerts.Events, s.OtherAlerts.Trials, s.OtherCards.Events, s.OtherCards.Trials, s.FullVisits)
		}
		fmt.Fprintf(tw, "\t%.3g / %.3g\t%.2f\n", 100*s.ExpectedAlerts, 100*s.ExpectedCards, s.DoorTemplates)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range res.Sizes {
		for _, a := range s.Announced {
			fmt.Fprintf(w, "at %d customers, seed %d: stranger %s announced as %s (fused distance %.3f; %s)\n",
				s.Customers, a.Seed, a.Stranger, a.Customer, a.Distance, strings.Join(a.Sources, ", "))
		}
	}
	if f, o, ok := res.DoorCalibration(); ok {
		fmt.Fprintf(w, "for the engine's calibration file (the daemon with match.door_templates up to %d; eval visits --calibrate FILE writes them):\n  door_factor: %g\n  door_offset: %g\n",
			cfg.Door.Cap, f, o)
	} else if cfg.Door.Mode != DoorNone {
		fmt.Fprintf(w, "the daemon's gallery cannot score this policy: no calibration values\n")
	}
	return nil
}
