package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
)

// Scoring is how a probe's distance to a customer follows from the
// distances to the customer's templates.
type Scoring string

const (
	// BestOf is the nearest template.
	BestOf Scoring = "min"
	// MeanOf2 averages the two nearest templates (the nearest one when
	// there is only one): one lucky template no longer decides alone.
	MeanOf2 Scoring = "mean2"
	// Centroid is enroll.Gallery's rule: the distance to the mean of the
	// templates (face.Mean), computed with the gallery's own arithmetic so
	// that the simulation decides on the distances production decides on.
	Centroid Scoring = "centroid"
)

// Scorings lists every scoring, for comparisons.
var Scorings = []Scoring{BestOf, MeanOf2, Centroid}

// OpenSetConfig shapes the simulated branch population.
type OpenSetConfig struct {
	// Enroll is the number of photos each enrolled person is enrolled
	// with; the person's other photos are probes.
	Enroll int `json:"enroll"`
	// Strangers is the fraction of identities held back from the gallery:
	// they walk in but were never enrolled.
	Strangers float64 `json:"strangers"`
	// Seeds is how many random splits are averaged, starting at Seed.
	Seeds int    `json:"seeds"`
	Seed  uint64 `json:"seed"`
	// Track is how many probes of one person a visit fuses.
	Track   int     `json:"track"`
	Scoring Scoring `json:"scoring"`
}

// DefaultOpenSet is the simulation the reports use unless told otherwise.
var DefaultOpenSet = OpenSetConfig{Enroll: 3, Strangers: 1.0 / 3, Seeds: 10, Seed: 1, Track: 5, Scoring: Centroid}

// Trials holds the simulated searches of every probe against the gallery
// of every seed, so that any rule can be evaluated without searching again.
type Trials struct {
	Config OpenSetConfig `json:"config"`
	// Per seed on average: enrolled customers, strangers, probes and tracks.
	Customers      float64 `json:"customers"`
	StrangerIDs    float64 `json:"stranger_identities"`
	GenuineProbes  float64 `json:"genuine_probes"`
	StrangerProbes float64 `json:"stranger_probes"`
	Tracks         float64 `json:"tracks"`
	runs           []run
}

// run is one seed's gallery and probes.
type run struct {
	ids    []string // customer label by index
	probes []probe
	tracks []track
}

type probe struct {
	owner  int       // customer index, or -1 for a stranger
	scores []float64 // distance to every customer, by customer index
	match  enroll.Match
	top    int // customer index of match.CustomerID
}

// track is one visit: probe indexes of a single person in the order the
// camera would embed them, and the track's fused embedding after each of
// them, because check-in decides again after every embedding.
type track struct {
	owner  int
	probes []int
	fused  []fused // fused[k] fuses probes[:k+1]
}

// fused is a track's fused embedding (the mean of its probes so far, as
// check-in fuses a track) seen by the gallery.
type fused struct {
	scores []float64    // distance to every customer
	match  enroll.Match // what the gallery returns for it
	top    int          // customer index of match.CustomerID
}

// Simulate splits the identities of set into customers and strangers for
// each seed, enrolls Enroll photos of every customer and searches every
// other photo against that gallery. A customer with no more than Enroll
// photos is enrolled with all of them and has no probe: still a gallery
// member a stranger can be mistaken for.
func Simulate(set *Set, cfg OpenSetConfig) (*Trials, error) {
	switch {
	case cfg.Enroll < 1:
		return nil, fmt.Errorf("open set: enroll %d photos: want at least 1", cfg.Enroll)
	case cfg.Strangers <= 0 || cfg.Strangers >= 1:
		return nil, fmt.Errorf("open set: stranger fraction %v: want in (0, 1)", cfg.Strangers)
	case cfg.Seeds < 1:
		return nil, fmt.Errorf("open set: %d seeds: want at least 1", cfg.Seeds)
	case cfg.Track < 1:
		return nil, fmt.Errorf("open set: track of %d probes: want at least 1", cfg.Track)
	case !slices.Contains(Scorings, cfg.Scoring):
		return nil, fmt.Errorf("open set: unknown scoring %q", cfg.Scoring)
	}
	labels, groups := set.byLabel()
	nStr := int(math.Round(float64(len(labels)) * cfg.Strangers))
	if nStr < 1 || len(labels)-nStr < 2 {
		return nil, fmt.Errorf("open set: %d identities cannot make at least 2 customers and 1 stranger", len(labels))
	}
	tr := &Trials{Config: cfg}
	for s := range cfg.Seeds {
		r := simulateRun(set, labels, groups, nStr, cfg, cfg.Seed+uint64(s))
		tr.runs = append(tr.runs, r)
		tr.Customers += float64(len(r.ids))
		tr.StrangerIDs += float64(nStr)
		for _, p := range r.probes {
			if p.owner >= 0 {
				tr.GenuineProbes++
			} else {
				tr.StrangerProbes++
			}
		}
		tr.Tracks += float64(len(r.tracks))
	}
	n := float64(cfg.Seeds)
	tr.Customers /= n
	tr.StrangerIDs /= n
	tr.GenuineProbes /= n
	tr.StrangerProbes /= n
	tr.Tracks /= n
	if tr.GenuineProbes == 0 {
		return nil, fmt.Errorf("open set: no identity has more than %d photos, so no enrolled person can be probed", cfg.Enroll)
	}
	return tr, nil
}

// seedStream separates this package's random streams from any other use
// of the same seed ("concierg" in ASCII).
const seedStream = 0x636f6e6369657267

func simulateRun(set *Set, labels []string, groups map[string][]int, nStr int, cfg OpenSetConfig, seed uint64) run {
	rng := rand.New(rand.NewPCG(seed, seedStream))
	order := slices.Clone(labels)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	strangers, customers := order[:nStr], order[nStr:]
	slices.Sort(strangers)
	slices.Sort(customers)

	r := run{ids: customers}
	templates := make([][]int, len(customers)) // sample indexes
	var probeOwner, probeSample []int
	people := map[int][]int{} // customer index, or −1−stranger index → probe indexes
	addProbe := func(person, owner, sample int) {
		people[person] = append(people[person], len(probeSample))
		probeOwner = append(probeOwner, owner)
		probeSample = append(probeSample, sample)
	}
	for ci, lab := range customers {
		idx := slices.Clone(groups[lab])
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		k := min(cfg.Enroll, len(idx))
		templates[ci] = idx[:k]
		for _, i := range idx[k:] {
			addProbe(ci, ci, i)
		}
	}
	for si, lab := range strangers {
		idx := slices.Clone(groups[lab])
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		for _, i := range idx {
			addProbe(-1-si, -1, i)
		}
	}

	score := scorer(cfg.Scoring, set, templates)
	r.probes = make([]probe, len(probeSample))
	for i, sample := range probeSample {
		p := probe{owner: probeOwner[i], scores: score(&set.Samples[sample].Embedding)}
		p.match, p.top = topMatch(p.scores, customers)
		r.probes[i] = p
	}

	// Deal each person's probes, in a seeded order, into visits of Track
	// probes, wrapping around: every probe is used, and a person with
	// fewer probes than a track repeats them, as a real track repeats
	// near-identical frames.
	persons := make([]int, 0, len(people))
	for p := range people {
		persons = append(persons, p)
	}
	slices.Sort(persons)
	for _, person := range persons {
		ps := people[person]
		rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		nTracks := (len(ps) + cfg.Track - 1) / cfg.Track
		for t := range nTracks {
			tk := track{owner: probeOwner[ps[0]], probes: make([]int, cfg.Track), fused: make([]fused, cfg.Track)}
			es := make([]face.Embedding, cfg.Track)
			for i := range cfg.Track {
				tk.probes[i] = ps[(t*cfg.Track+i)%len(ps)]
				es[i] = set.Samples[probeSample[tk.probes[i]]].Embedding
				// Photos carry no quality score: every probe weighs the same.
				mean := checkin.Fuse(es[:i+1], nil)
				f := fused{scores: score(&mean)}
				f.match, f.top = topMatch(f.scores, customers)
				tk.fused[i] = f
			}
			r.tracks = append(r.tracks, tk)
		}
	}
	return r
}

// scorer returns a function giving the distance of an embedding to every
// customer, whose templates are sample indexes.
func scorer(mode Scoring, set *Set, templates [][]int) func(e *face.Embedding) []float64 {
	switch mode {
	case BestOf, MeanOf2:
		return func(e *face.Embedding) []float64 {
			out := make([]float64, len(templates))
			for ci, ts := range templates {
				d1, d2 := float32(math.Inf(1)), float32(math.Inf(1))
				for _, t := range ts {
					switch d := face.SquaredDistance(&set.Samples[t].Embedding, e); {
					case d < d1:
						d1, d2 = d, d1
					case d < d2:
						d2 = d
					}
				}
				out[ci] = math.Sqrt(float64(d1))
				if mode == MeanOf2 && !math.IsInf(float64(d2), 1) {
					out[ci] = (out[ci] + math.Sqrt(float64(d2))) / 2
				}
			}
			return out
		}
	default:
		// The centroid as enroll.Gallery computes it: face.Mean of the
		// templates, the squared distance, then its square root.
		cents := make([]face.Embedding, len(templates))
		for ci, ts := range templates {
			es := make([]face.Embedding, len(ts))
			for i, t := range ts {
				es[i] = set.Samples[t].Embedding
			}
			cents[ci] = face.Mean(es, nil)
		}
		return func(e *face.Embedding) []float64 {
			out := make([]float64, len(cents))
			for ci := range cents {
				out[ci] = math.Sqrt(float64(face.SquaredDistance(&cents[ci], e)))
			}
			return out
		}
	}
}

// topMatch builds the Match that Gallery.Search would return from
// per-customer distances: nearest customer, runner-up and margin.
func topMatch(scores []float64, ids []string) (enroll.Match, int) {
	first, second := -1, -1
	for ci, d := range scores {
		switch {
		case first < 0 || d < scores[first]:
			second, first = first, ci
		case second < 0 || d < scores[second]:
			second = ci
		}
	}
	if first < 0 {
		return enroll.Match{}, -1
	}
	m := enroll.Match{CustomerID: ids[first], Distance: scores[first], Margin: math.Inf(1)}
	if second >= 0 {
		m.RunnerUp = ids[second]
		m.Margin = scores[second] - scores[first]
	}
	return m, first
}

// Rate is a proportion pooled over seeds, with its spread between seeds.
type Rate struct {
	Rate   float64 `json:"rate"`
	Std    float64 `json:"std"` // of the per-seed rates
	Events int     `json:"events"`
	Trials int     `json:"trials"`
}

// Decisions are the outcomes of one kind of decision (single probe or
// fused track) under a rule.
type Decisions struct {
	// Accept: an enrolled customer recognised as themselves.
	Accept Rate `json:"accept"`
	// WrongAccept: an enrolled customer taken for another customer.
	WrongAccept Rate `json:"wrong_accept"`
	// StrangerAccept: a never-enrolled person taken for a customer, the
	// false alert this product fears most.
	StrangerAccept Rate `json:"stranger_accept"`
}

// OpenSetResult is the open-set behaviour of one rule.
type OpenSetResult struct {
	Rule  enroll.Rule `json:"rule"`
	Votes int         `json:"votes"`
	Track int         `json:"track"`
	// Single decides on each probe alone; Fused on each track of Track
	// probes, as the daemon does.
	Single Decisions `json:"single"`
	Fused  Decisions `json:"fused"`
}

type counter struct{ events, trials []int }

func (c *counter) add(seed int, event bool) {
	for len(c.trials) <= seed {
		c.events, c.trials = append(c.events, 0), append(c.trials, 0)
	}
	c.trials[seed]++
	if event {
		c.events[seed]++
	}
}

// addN counts trials outcomes of seed, events of them events.
func (c *counter) addN(seed, events, trials int) {
	for len(c.trials) <= seed {
		c.events, c.trials = append(c.events, 0), append(c.trials, 0)
	}
	c.trials[seed] += trials
	c.events[seed] += events
}

func (c *counter) rate() Rate {
	var r Rate
	var per []float64
	for s := range c.trials {
		r.Events += c.events[s]
		r.Trials += c.trials[s]
		if c.trials[s] > 0 {
			per = append(per, float64(c.events[s])/float64(c.trials[s]))
		}
	}
	r.Rate = ratio(r.Events, r.Trials)
	if len(per) > 0 {
		_, r.Std = meanStd(per)
	}
	return r
}

// Evaluate applies the rule to every probe and, as check-in decides a
// track (see decide), to every track.
func (tr *Trials) Evaluate(rule enroll.Rule, votes int) OpenSetResult {
	res := OpenSetResult{Rule: rule, Votes: votes, Track: tr.Config.Track}
	var sAcc, sWrong, sStr, fAcc, fWrong, fStr counter
	tracks := checkin.Rule{Match: rule, Votes: votes}
	for s, r := range tr.runs {
		// A probe alone is a track of one face, decided under the rule
		// itself; within a longer track it votes under the face rule.
		for _, p := range r.probes {
			ok := rule.Accept(p.match)
			if p.owner >= 0 {
				sAcc.add(s, ok && p.top == p.owner)
				sWrong.add(s, ok && p.top != p.owner)
			} else {
				sStr.add(s, ok)
			}
		}
		for _, t := range r.tracks {
			c, ok := decide(r, t, tracks)
			if t.owner >= 0 {
				fAcc.add(s, ok && c == t.owner)
				fWrong.add(s, ok && c != t.owner)
			} else {
				fStr.add(s, ok)
			}
		}
	}
	res.Single = Decisions{Accept: sAcc.rate(), WrongAccept: sWrong.rate(), StrangerAccept: sStr.rate()}
	res.Fused = Decisions{Accept: fAcc.rate(), WrongAccept: fWrong.rate(), StrangerAccept: fStr.rate()}
	return res
}

// decide returns the customer a track names under check-in's own rule
// (checkin.Rule.Decide), applied again after every probe as the daemon
// applies it after every embedding, each time with the fused embedding of
// the probes so far.
func decide(r run, t track, rule checkin.Rule) (int, bool) {
	faces := make([]enroll.Match, 0, len(t.probes))
	for k, pi := range t.probes {
		faces = append(faces, r.probes[pi].match)
		f := t.fused[k]
		switch d := rule.Decide(faces, func() (enroll.Match, bool) { return f.match, f.top >= 0 }, nil); d.Verdict {
		case checkin.Conflict:
			return -1, false // two customers in one track
		case checkin.Arrives:
			return f.top, true
		}
	}
	return -1, false
}

// ImpostorScores returns, sorted, the distance of every probe to every
// customer who is not that person: the per-comparison impostor
// distribution at the gallery's scoring. It is what a stranger faces once
// per enrolled customer, so it extrapolates to larger galleries.
func (tr *Trials) ImpostorScores() []float64 {
	var out []float64
	for _, r := range tr.runs {
		for _, p := range r.probes {
			for c, d := range p.scores {
				if c != p.owner {
					out = append(out, d)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// GenuineScores returns, sorted, the distance of every enrolled person's
// probe to their own templates.
func (tr *Trials) GenuineScores() []float64 {
	var out []float64
	for _, r := range tr.runs {
		for _, p := range r.probes {
			if p.owner >= 0 {
				out = append(out, p.scores[p.owner])
			}
		}
	}
	slices.Sort(out)
	return out
}

// FusedImpostorScores returns, sorted, for every track and every customer
// who is not that person, the smallest threshold at which the track would
// name that customer in a gallery holding only them, a face voting up to
// slack beyond the threshold (enroll.Rule.FaceSlack): over the probes in
// order, the smallest of the larger of the votes-th smallest probe
// distance so far less slack and the fused embedding's distance at that
// probe, since check-in decides again after every embedding. This is the
// fused counterpart of ImpostorScores. With an infinite slack the tracks
// are decided on their fused embeddings alone, which bounds the rate of
// every vote count and slack from above.
func (tr *Trials) FusedImpostorScores(votes int, slack float64) []float64 {
	votes = max(votes, 1)
	var out []float64
	ds := make([]float64, 0, tr.Config.Track)
	for _, r := range tr.runs {
		for _, t := range r.tracks {
			for c := range r.ids {
				if c == t.owner {
					continue
				}
				best := math.Inf(1)
				ds = ds[:0]
				for k, pi := range t.probes {
					ds = append(ds, r.probes[pi].scores[c])
					if len(ds) < votes {
						continue
					}
					slices.Sort(ds)
					best = math.Min(best, math.Max(ds[votes-1]-slack, t.fused[k].scores[c]))
				}
				out = append(out, best)
			}
		}
	}
	slices.Sort(out)
	return out
}
