package checkin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"concierge"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
	"concierge/internal/testenv/testdb"
)

func defaultRule() enroll.Rule {
	c := testConfig()
	return enroll.Rule{Threshold: c.Threshold, Margin: c.Margin}
}

// approach is a customer walking towards the camera for 3 s: the face grows
// from 80 to 170 px while drifting right.
func approach(from int, x float64, probes []face.Embedding) *walker {
	return &walker{from: from, to: from + 45, x: x, y: 200, size: 80, dx: 3, dy: 1, grow: 2, probes: probes}
}

// customer picks the i-th customer with at least n recognisable held-out
// descriptors.
func (p *population) customer(tb testing.TB, i, n int) string {
	tb.Helper()
	ids := p.recognisableCustomers(defaultRule(), n)
	if len(ids) <= i {
		tb.Fatalf("only %d customers with %d recognisable descriptors", len(ids), n)
	}
	return ids[i]
}

type directory map[string]string

func (d directory) DisplayName(_ context.Context, id string) (string, error) {
	if n, ok := d[id]; ok {
		return n, nil
	}
	return "", concierge.Errorf(concierge.ENOTFOUND, "no customer %s", id)
}

type tiers map[string]struct {
	tier *checkin.Tier
	risk []checkin.RiskFlag
}

func (t tiers) Lookup(id string, _ time.Time) (*checkin.Tier, []checkin.RiskFlag) {
	e := t[id]
	return e.tier, e.risk
}

func held(tb testing.TB, svc *checkin.Service) (cameras, tracks, embeddings, cooldowns int) {
	tb.Helper()
	return svc.HeldForTest()
}

func TestArrivalOfEnrolledCustomer(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 2)
	cfg := testConfig()
	cfg.Branch = "b001"
	svc, rec := newService(t, cfg, p.gallery)
	db := testdb.Open(t)
	svc.VisitLog = db
	var logs bytes.Buffer
	svc.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc.Directory = directory{id: "王小明"}
	svc.Mask = func(name string) string { return string([]rune(name)[:1]) + "**" }
	vip := &checkin.Tier{Scheme: "icbc-stars", Level: "star5", LevelName: "五星", VIP: true}
	svc.Tiers = tiers{id: {tier: vip, risk: []checkin.RiskFlag{{Kind: "aml", Reason: "R12"}}}}

	sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(10, 300, p.recognisable(id, defaultRule())[:2])}}
	calls := sc.play(t, svc, 60)

	got := rec.got()
	if len(got) != 1 {
		t.Fatalf("%d arrivals, want 1", len(got))
	}
	a := got[0]
	if a.CustomerID != id || a.Branch != "b001" || a.Camera != "door-1" || a.DisplayName != "王**" || a.Tier != vip {
		t.Fatalf("arrival %+v", a)
	}
	if a.Votes < cfg.Votes || a.Distance > cfg.Threshold || a.Margin <= 0 {
		t.Fatalf("votes %d distance %.3f margin %.3f", a.Votes, a.Distance, a.Margin)
	}
	// The first face is usable, so latency runs from frame 10, and the
	// second vote, confirming the first, comes from the next frame.
	if !a.FirstSeen.Equal(sc.at(10)) || !a.At.Equal(sc.at(11)) {
		t.Fatalf("first seen %v, decided %v", a.FirstSeen, a.At)
	}
	u, err := ulid.ParseStrict(a.ID)
	if err != nil || u.Time() != uint64(a.At.UnixMilli()) {
		t.Fatalf("id %q: %v, time %d want %d", a.ID, err, u.Time(), a.At.UnixMilli())
	}
	if len(rec.risks[0]) != 1 || rec.risks[0][0].Kind != "aml" {
		t.Fatalf("risk flags %+v", rec.risks[0])
	}
	// Once decided, the track stops embedding.
	if calls[0] != a.Votes {
		t.Fatalf("%d embed calls, want %d (the votes)", calls[0], a.Votes)
	}

	// Logs carry the customer id, never the name.
	if !strings.Contains(logs.String(), id) || strings.Contains(logs.String(), "王") {
		t.Fatalf("logs:\n%s", logs.String())
	}

	visits, err := db.Visits(context.Background(), id, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(visits) != 1 || visits[0].ID != a.ID || !visits[0].At.Equal(a.At) || visits[0].Tier.Level != "star5" {
		t.Fatalf("visits %+v", visits)
	}

	svc.Tick(sc.at(60).Add(cfg.TrackTimeout))
	if _, tracks, embs, cools := held(t, svc); tracks != 0 || embs != 0 || cools != 1 {
		t.Fatalf("held tracks %d embeddings %d cooldowns %d", tracks, embs, cools)
	}
	st := svc.Stats.Snapshot()
	if st.TracksStarted != 1 || st.TracksEnded != 1 || st.TracksDropped != 0 || st.Arrivals != 1 || st.Embeddings != int64(calls[0]) {
		t.Fatalf("stats %+v", st)
	}
}

// TestStrangers plays every identity that is not enrolled, with all of its
// real descriptors: none may become an arrival, and nothing of them may
// remain once their track ends.
func TestStrangers(t *testing.T) {
	p := newPopulation(t, 24)
	svc, rec := newService(t, testConfig(), p.gallery)
	for i, id := range p.strangers {
		sc := &scene{camera: "door-1", start: t0.Add(time.Duration(i) * time.Minute), walkers: []*walker{approach(0, 300, p.set.faces[id])}}
		sc.play(t, svc, 45)
		svc.Tick(sc.at(45).Add(time.Second))
		if _, tracks, embs, cools := held(t, svc); tracks != 0 || embs != 0 || cools != 0 {
			t.Fatalf("stranger %d: held tracks %d embeddings %d cooldowns %d", i, tracks, embs, cools)
		}
	}
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("%d arrivals for strangers: %+v", len(got), got)
	}
	st := svc.Stats.Snapshot()
	if st.TracksStarted != int64(len(p.strangers)) || st.TracksDropped != st.TracksStarted || st.Embeddings == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOpenSetLeaveOneOut plays every customer's held-out descriptors twice:
// once enrolled (a genuine track) and once with the customer removed from
// the gallery (an impostor track: the closest other customer must not be
// announced). It pins the rates docs/checkin.md quotes.
func TestOpenSetLeaveOneOut(t *testing.T) {
	p := newPopulation(t, 24)
	var genuine, wrong, impostor int
	for _, id := range p.customers {
		svc, rec := newService(t, testConfig(), p.gallery)
		sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, p.heldOut(id))}}
		sc.play(t, svc, 45)
		for _, a := range rec.got() {
			if a.CustomerID == id {
				genuine++
			} else {
				wrong++
			}
		}

		var rest []enroll.Template
		for _, other := range p.customers {
			if other != id {
				for _, e := range p.set.faces[other][:enrolledPerCustomer] {
					rest = append(rest, enroll.Template{CustomerID: other, Embedding: e, Model: model})
				}
			}
		}
		g := enroll.NewGallery(model)
		g.Load(rest)
		svc, rec = newService(t, testConfig(), g)
		sc.play(t, svc, 45)
		impostor += len(rec.got())
	}
	n := len(p.customers)
	t.Logf("%d customers: genuine tracks recognised %d, wrong customer %d, impostor tracks announced %d", n, genuine, wrong, impostor)
	if wrong != 0 || impostor > n/100 || genuine < n/10 {
		t.Fatalf("genuine %d wrong %d impostor %d of %d", genuine, wrong, impostor, n)
	}
}

func TestCooldown(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 2)
	probes := p.recognisable(id, defaultRule())[:2]
	twoHours := &checkin.Tier{Level: "star6", Service: &checkin.ServiceLevel{Cooldown: 2 * time.Hour}}
	type visit struct {
		camera string
		at     time.Duration // after t0
	}
	for _, tc := range []struct {
		name  string
		tier  *checkin.Tier
		seq   []visit
		wants int
	}{
		{"again within 30 min", nil, []visit{{"door-1", 0}, {"door-1", 10 * time.Minute}}, 1},
		{"again after 30 min", nil, []visit{{"door-1", 0}, {"door-1", 31 * time.Minute}}, 2},
		{"other camera, same branch", nil, []visit{{"door-1", 0}, {"door-2", 5 * time.Minute}}, 1},
		// The window counts from the last recognition: a customer still in
		// the lobby is not announced again.
		{"window slides while seen", nil, []visit{{"door-1", 0}, {"door-1", 20 * time.Minute}, {"door-1", 45 * time.Minute}}, 1},
		{"after the slid window", nil, []visit{{"door-1", 0}, {"door-1", 20 * time.Minute}, {"door-1", 51 * time.Minute}}, 2},
		{"tier cooldown 2h", twoHours, []visit{{"door-1", 0}, {"door-1", 31 * time.Minute}}, 1},
		{"tier cooldown 2h over", twoHours, []visit{{"door-1", 0}, {"door-1", 2*time.Hour + time.Minute}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, rec := newService(t, testConfig(), p.gallery)
			svc.Tiers = tiers{id: {tier: tc.tier}}
			for i, v := range tc.seq {
				start := t0.Add(v.at)
				sc := &scene{camera: v.camera, start: start, walkers: []*walker{approach(0, 300, probes)}}
				sc.play(t, svc, 45)
				svc.Tick(sc.at(45).Add(time.Second))
				if st := svc.Stats.Snapshot(); st.Arrivals+st.Suppressed != int64(i+1) {
					t.Fatalf("visit %d: arrivals %d + suppressed %d", i, st.Arrivals, st.Suppressed)
				}
			}
			if got := rec.got(); len(got) != tc.wants {
				t.Fatalf("%d arrivals, want %d", len(got), tc.wants)
			}
			if want := 30 * time.Minute; tc.tier != nil {
				want = tc.tier.Service.Cooldown
				if got := svc.Cooldown(id, t0); got != want {
					t.Fatalf("Cooldown = %v, want %v", got, want)
				}
			}
		})
	}
	t.Run("tick forgets expired cooldowns", func(t *testing.T) {
		svc, _ := newService(t, testConfig(), p.gallery)
		sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, probes)}}
		sc.play(t, svc, 45)
		svc.Tick(t0.Add(29 * time.Minute))
		if _, _, _, cools := held(t, svc); cools != 1 {
			t.Fatalf("%d cooldowns within the window", cools)
		}
		svc.Tick(t0.Add(31 * time.Minute))
		if _, _, _, cools := held(t, svc); cools != 0 {
			t.Fatalf("%d cooldowns after the window", cools)
		}
	})
}

func TestTwoPeopleInOneFrame(t *testing.T) {
	p := newPopulation(t, 24)
	a, b := p.customer(t, 0, 2), p.customer(t, 1, 2)
	svc, rec := newService(t, testConfig(), p.gallery)
	// Side by side, walking in together.
	sc := &scene{camera: "door-1", start: t0, walkers: []*walker{
		approach(0, 200, p.recognisable(a, defaultRule())[:2]),
		approach(0, 700, p.recognisable(b, defaultRule())[:2]),
	}}
	sc.play(t, svc, 45)
	got := rec.got()
	if len(got) != 2 || got[0].CustomerID == got[1].CustomerID {
		t.Fatalf("arrivals %+v", got)
	}
	for _, arr := range got {
		if arr.CustomerID != a && arr.CustomerID != b {
			t.Fatalf("arrival of %s", arr.CustomerID)
		}
	}
	if st := svc.Stats.Snapshot(); st.TracksStarted != 2 {
		t.Fatalf("%d tracks, want 2", st.TracksStarted)
	}
}

func TestLongStay(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 2)
	stranger := p.strangers[0]
	cfg := testConfig()
	svc, rec := newService(t, cfg, p.gallery)
	const frames = 10 * 60 * 15 // ten minutes at 15 fps
	// A customer and a stranger stand in view for ten minutes; boxes
	// jitter like a detector's.
	sc := &scene{camera: "door-1", start: t0, walkers: []*walker{
		{from: 0, to: frames, x: 300, y: 200, size: 120, probes: p.recognisable(id, defaultRule())[:2]},
		{from: 0, to: frames, x: 900, y: 220, size: 110, probes: p.set.faces[stranger]},
	}}
	for _, w := range sc.walkers {
		w.jitter = 3
	}
	calls := sc.play(t, svc, frames)
	if got := rec.got(); len(got) != 1 || got[0].CustomerID != id {
		t.Fatalf("arrivals %+v", got)
	}
	for i, n := range calls {
		if n > cfg.MaxEmbeddings {
			t.Errorf("walker %d: %d embeddings over %d frames, max %d", i, n, frames, cfg.MaxEmbeddings)
		}
	}
	if calls[1] != cfg.MaxEmbeddings {
		t.Errorf("stranger embedded %d times, want the whole budget of %d", calls[1], cfg.MaxEmbeddings)
	}
	if st := svc.Stats.Snapshot(); st.TracksStarted != 2 {
		t.Fatalf("%d tracks for two people standing still", st.TracksStarted)
	}
	// The stranger's track spent its budget without a decision: its
	// embeddings are gone although the person is still in view.
	if _, tracks, embs, _ := held(t, svc); tracks != 2 || embs != 0 {
		t.Fatalf("held tracks %d embeddings %d", tracks, embs)
	}
}

func TestTrackEndLeavesNoState(t *testing.T) {
	p := newPopulation(t, 24)
	stranger := p.set.faces[p.strangers[1]]
	cfg := testConfig()
	for _, tc := range []struct {
		name string
		end  func(svc *checkin.Service, last time.Time)
		cams int
	}{
		{"timeout on the next frame", func(svc *checkin.Service, last time.Time) {
			if err := svc.Observe(context.Background(), "door-1", last.Add(cfg.TrackTimeout), nil, nil); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"tick", func(svc *checkin.Service, last time.Time) { svc.Tick(last.Add(cfg.TrackTimeout)) }, 1},
		{"end of stream", func(svc *checkin.Service, last time.Time) { svc.EndCamera("door-1", last) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, rec := newService(t, cfg, p.gallery)
			// Two embeddings so far, the person still in view.
			sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, stranger)}}
			sc.play(t, svc, 8)
			if _, tracks, embs, _ := held(t, svc); tracks != 1 || embs != 2 {
				t.Fatalf("while in view: tracks %d embeddings %d", tracks, embs)
			}
			svc.Tick(sc.at(7).Add(cfg.TrackTimeout - time.Millisecond))
			if _, tracks, _, _ := held(t, svc); tracks != 1 {
				t.Fatalf("track ended before its timeout")
			}
			tc.end(svc, sc.at(7))
			cams, tracks, embs, cools := held(t, svc)
			if cams != tc.cams || tracks != 0 || embs != 0 || cools != 0 || len(rec.got()) != 0 {
				t.Fatalf("held cameras %d tracks %d embeddings %d cooldowns %d", cams, tracks, embs, cools)
			}
			if st := svc.Stats.Snapshot(); st.TracksEnded != 1 || st.TracksDropped != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestConflict(t *testing.T) {
	p := newPopulation(t, 24)
	a, b := p.customer(t, 0, 2), p.customer(t, 1, 2)
	pa, pb := p.recognisable(a, defaultRule()), p.recognisable(b, defaultRule())
	// One track whose faces are alternately two customers, as when the
	// tracker swaps two people crossing: neither may be announced.
	svc, rec := newService(t, testConfig(), p.gallery)
	sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, []face.Embedding{pa[0], pb[0], pa[1], pb[1]})}}
	calls := sc.play(t, svc, 45)
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("arrivals %+v", got)
	}
	if st := svc.Stats.Snapshot(); st.Conflicts != 1 || calls[0] != 2 {
		t.Fatalf("conflicts %d after %d embeddings", st.Conflicts, calls[0])
	}
	if _, _, embs, _ := held(t, svc); embs != 0 {
		t.Fatalf("a conflicted track keeps %d embeddings", embs)
	}
}

// TestFusedEvidence is a track whose faces are mostly an unenrolled person,
// with two frames of customer C, as when the tracker merges two people: C
// has the votes, but the fused embedding of the track is not C's.
func TestFusedEvidence(t *testing.T) {
	p := newPopulation(t, 24)
	rule := defaultRule()
	id := p.customer(t, 0, 2)
	var probes []face.Embedding
	for _, e := range p.set.faces[p.strangers[0]] {
		if m, ok := p.gallery.Search(&e); ok && !rule.Accept(m) && len(probes) < 3 {
			probes = append(probes, e) // names nobody: no conflict, no vote
		}
	}
	probes = append(probes, p.recognisable(id, rule)[:2]...)
	svc, rec := newService(t, testConfig(), p.gallery)
	sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, probes)}}
	calls := sc.play(t, svc, 45)
	if calls[0] != len(probes) {
		t.Fatalf("%d embeddings, want %d", calls[0], len(probes))
	}
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("arrivals %+v", got)
	}
}

func TestStrictness(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 3)
	probes := p.recognisable(id, defaultRule())
	for _, tc := range []struct {
		name      string
		extra     int
		delta     float64
		wantVotes int // 0: no arrival
	}{
		{"none", 0, 0, 2},
		{"one more vote", 1, 0, 3},
		{"more votes than embeddings", 4, 0, 0},
		{"threshold below every probe", 0, -(defaultRule().Threshold - 0.05), 0},
		{"loosening is ignored", -1, 0.5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, rec := newService(t, testConfig(), p.gallery)
			var asked []string
			var mu sync.Mutex
			svc.Strictness = func(c string, at time.Time) (int, float64) {
				mu.Lock()
				asked = append(asked, c)
				mu.Unlock()
				if c == id {
					return tc.extra, tc.delta
				}
				return 0, 0
			}
			sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, probes[:3])}}
			sc.play(t, svc, 45)
			got := rec.got()
			switch {
			case tc.wantVotes == 0 && len(got) != 0:
				t.Fatalf("arrivals %+v", got)
			case tc.wantVotes > 0 && (len(got) != 1 || got[0].Votes != tc.wantVotes):
				t.Fatalf("arrivals %+v, want one with %d votes", got, tc.wantVotes)
			case len(asked) == 0 || asked[0] != id:
				t.Fatalf("hook asked about %v", asked)
			}
		})
	}
}

// TestThumbnail: only the face that decides an arrival is rendered, never a
// stranger's, and the picture travels with the arrival.
func TestThumbnail(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 3)
	svc, rec := newService(t, testConfig(), p.gallery)
	sc := &scene{camera: "door-1", start: t0, thumbnails: true, walkers: []*walker{
		approach(0, 300, p.recognisable(id, defaultRule())[:3]),
		{from: 0, to: 45, x: 700, y: 100, size: 120, probes: p.set.faces[p.strangers[0]]},
	}}
	sc.play(t, svc, 45)
	got := rec.got()
	if len(got) != 1 || len(sc.taken) != 1 || !strings.HasPrefix(sc.taken[0], "walker 0 ") || string(got[0].Thumbnail) != sc.taken[0] {
		t.Fatalf("arrivals %+v, thumbnails taken %q", got, sc.taken)
	}
}

// TestCalibrated: the gallery-size threshold can only tighten the rule.
func TestCalibrated(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 3)
	probes := p.recognisable(id, defaultRule())[:3]
	nearest := math.Inf(1)
	for _, e := range probes {
		m, _ := p.gallery.Search(&e)
		nearest = min(nearest, m.Distance)
	}
	for _, tc := range []struct {
		name       string
		calibrated func() float64
		arrive     bool
	}{
		{"not set", nil, true},
		{"looser than the configured threshold is ignored", func() float64 { return 2 }, true},
		{"below every probe", func() float64 { return nearest - 0.01 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, rec := newService(t, testConfig(), p.gallery)
			svc.Calibrated = tc.calibrated
			sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, probes)}}
			sc.play(t, svc, 45)
			if got := rec.got(); (len(got) == 1) != tc.arrive || len(got) > 1 {
				t.Fatalf("arrivals %+v, want arrival %v", got, tc.arrive)
			}
		})
	}
}

func TestTracking(t *testing.T) {
	p := newPopulation(t, 24)
	probes := p.set.faces[p.strangers[2]]
	for _, tc := range []struct {
		name       string
		walkers    []*walker
		frames     int
		wantTracks int64
	}{
		// 40 px per frame for a 100 px face: consecutive boxes overlap
		// with IoU 0.43 at first, then less as it speeds past prediction.
		{"fast walker", []*walker{{from: 0, to: 30, x: 0, y: 100, size: 100, dx: 40, probes: probes}}, 30, 1},
		// 80 px per frame: consecutive boxes barely overlap, so the first
		// link is by centre distance, the next ones by motion prediction.
		{"very fast walker", []*walker{{from: 0, to: 15, x: 0, y: 100, size: 100, dx: 80, probes: probes}}, 15, 1},
		{"jump across the frame is someone else", []*walker{
			{from: 0, to: 10, x: 0, y: 100, size: 100, probes: probes},
			{from: 10, to: 20, x: 600, y: 100, size: 100, probes: probes},
		}, 20, 2},
		// Walking 30 px per frame past a pillar: missed for 6 frames, the
		// face reappears 1.8 face widths from where it was last seen,
		// where the motion prediction expects it.
		{"missed frames while moving", []*walker{{from: 0, to: 30, x: 0, y: 100, size: 100, dx: 30, missFrom: 10, missTo: 16, probes: probes}}, 30, 1},
		{"growing face", []*walker{{from: 0, to: 60, x: 300, y: 100, size: 60, grow: 4, dy: 2, probes: probes}}, 60, 1},
		{"faces below MinFacePx are ignored", []*walker{{from: 0, to: 30, x: 300, y: 100, size: 40, probes: probes}}, 30, 0},
		{"crossing paths", []*walker{
			{from: 0, to: 40, x: 100, y: 100, size: 100, dx: 15, probes: probes},
			{from: 0, to: 40, x: 700, y: 100, size: 100, dx: -15, probes: probes},
		}, 40, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, _ := newService(t, testConfig(), p.gallery)
			sc := &scene{camera: "door-1", start: t0, walkers: tc.walkers}
			sc.play(t, svc, tc.frames)
			if st := svc.Stats.Snapshot(); st.TracksStarted != tc.wantTracks {
				t.Fatalf("%d tracks, want %d", st.TracksStarted, tc.wantTracks)
			}
		})
	}
	t.Run("gaps", func(t *testing.T) {
		cfg := testConfig()
		for _, tc := range []struct {
			gap        time.Duration
			wantTracks int64
		}{
			{500 * time.Millisecond, 1},
			{cfg.TrackTimeout - time.Millisecond, 1},
			{cfg.TrackTimeout, 2},
		} {
			svc, _ := newService(t, cfg, p.gallery)
			det := []checkin.Detection{{Box: image.Rect(300, 100, 420, 220), Quality: face.Quality{SizePx: 120}}}
			ctx := context.Background()
			for _, at := range []time.Time{t0, t0.Add(tc.gap)} {
				if err := svc.Observe(ctx, "door-1", at, det, nil); err != nil {
					t.Fatal(err)
				}
			}
			if st := svc.Stats.Snapshot(); st.TracksStarted != tc.wantTracks {
				t.Errorf("gap %v: %d tracks, want %d", tc.gap, st.TracksStarted, tc.wantTracks)
			}
		}
	})
}

func TestBestFrames(t *testing.T) {
	p := newPopulation(t, 24)
	cfg := testConfig()
	cfg.MinQuality = 0.25
	cfg.MinEmbedInterval = time.Hour // only quality gains trigger re-embedding here
	svc, _ := newService(t, cfg, p.gallery)
	ctx := context.Background()
	// A 100 px frontal face scores 0.5*(0.4+0.6*sharpness/150): blurred
	// (0.20), usable (0.26), no better, barely better (0.32), clearly
	// better (0.33), no better (0.34), much better (0.50).
	sharp := []float64{0, 0, 30, 30, 30, 60, 65, 70, 150, 150}
	var embedded []int
	for f, s := range sharp {
		det := []checkin.Detection{{Box: image.Rect(300, 100, 400, 200), Quality: face.Quality{SizePx: 100, Sharpness: s, Frontal: 1, Brightness: 128}}}
		err := svc.Observe(ctx, "door-1", t0.Add(time.Duration(f)*fps15), det, func(i int) (face.Embedding, error) {
			embedded = append(embedded, f)
			// Far from everyone: the track stays undecided.
			return face.Embedding{}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(embedded) != "[2 6 8]" {
		t.Fatalf("embedded frames %v, want [2 6 8]", embedded)
	}
}

func TestDeliveryFailures(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 2)
	probes := p.recognisable(id, defaultRule())[:2]
	t.Run("notifier error", func(t *testing.T) {
		svc, rec := newService(t, testConfig(), p.gallery)
		rec.err = errors.New("nats: no responders")
		db := testdb.Open(t)
		svc.VisitLog = db
		sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, probes)}}
		sc.play(t, svc, 45) // fails the test if Observe returns an error
		st := svc.Stats.Snapshot()
		if st.Arrivals != 1 || st.NotifyErrors != 1 {
			t.Fatalf("stats %+v", st)
		}
		if v, err := db.Visits(context.Background(), "", t0); err != nil || len(v) != 1 {
			t.Fatalf("visits %v, %v", v, err)
		}
	})
	t.Run("notifier hangs", func(t *testing.T) {
		cfg := testConfig()
		cfg.DeliverTimeout = 50 * time.Millisecond
		svc, _ := newService(t, cfg, p.gallery)
		svc.Notifier = hanging{}
		sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, probes)}}
		start := time.Now()
		sc.play(t, svc, 45)
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("camera loop blocked for %v", el)
		}
		if st := svc.Stats.Snapshot(); st.NotifyErrors != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// hanging is a notifier whose server never answers.
type hanging struct{}

func (hanging) Notify(ctx context.Context, _ checkin.Arrival, _ []checkin.RiskFlag) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestObserveErrors(t *testing.T) {
	p := newPopulation(t, 24)
	svc, _ := newService(t, testConfig(), p.gallery)
	det := []checkin.Detection{{Box: image.Rect(300, 100, 420, 220), Quality: face.Quality{SizePx: 120, Sharpness: 100, Frontal: 1, Brightness: 128}}}
	boom := errors.New("dlib: bad alloc")
	err := svc.Observe(context.Background(), "door-1", t0, det, func(int) (face.Embedding, error) { return face.Embedding{}, boom })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "embed face 0") {
		t.Fatalf("err = %v", err)
	}
	if st := svc.Stats.Snapshot(); st.EmbedErrors != 1 || st.Embeddings != 0 {
		t.Fatalf("stats %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := svc.Observe(ctx, "door-1", t0.Add(fps15), det, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	if err := svc.Observe(context.Background(), "", t0, nil, nil); concierge.ErrorCode(err) != concierge.EINVALID {
		t.Fatalf("empty camera: %v", err)
	}
	// A clock stepping back resets the camera's tracks instead of failing.
	if err := svc.Observe(context.Background(), "door-1", t0.Add(-time.Minute), det, nil); err != nil {
		t.Fatal(err)
	}
	if st := svc.Stats.Snapshot(); st.TracksStarted != 2 || st.TracksEnded != 1 {
		t.Fatalf("stats after clock step %+v", st)
	}
}

// TestCamerasConcurrently runs four cameras at once that all see the same
// customer: the branch gets one arrival, and the race detector watches the
// shared state.
func TestCamerasConcurrently(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 2)
	probes := p.recognisable(id, defaultRule())[:2]
	svc, rec := newService(t, testConfig(), p.gallery)
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			sc := &scene{camera: fmt.Sprintf("door-%d", c), start: t0, walkers: []*walker{approach(0, 300, probes)}}
			sc.play(t, svc, 45)
			svc.EndCamera(sc.camera, sc.at(45))
		})
	}
	wg.Wait()
	if got := rec.got(); len(got) != 1 {
		t.Fatalf("%d arrivals, want 1", len(got))
	}
	if st := svc.Stats.Snapshot(); st.Suppressed != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := checkin.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*checkin.Config)
	}{
		{"threshold", func(c *checkin.Config) { c.Threshold = 0 }},
		{"margin", func(c *checkin.Config) { c.Margin = -0.1 }},
		{"face_slack", func(c *checkin.Config) { c.FaceSlack = -0.1 }},
		{"votes", func(c *checkin.Config) { c.Votes = 0 }},
		{"max_embeddings", func(c *checkin.Config) { c.MaxEmbeddings = 1 }},
		{"min_quality", func(c *checkin.Config) { c.MinQuality = 1.5 }},
		{"quality_gain", func(c *checkin.Config) { c.QualityGain = 0.5 }},
		{"confirm_interval", func(c *checkin.Config) { c.ConfirmInterval = -time.Millisecond }},
		{"track_timeout", func(c *checkin.Config) { c.TrackTimeout = 0 }},
		{"min_iou", func(c *checkin.Config) { c.MinIoU = 0 }},
		{"cooldown", func(c *checkin.Config) { c.Cooldown = -time.Second }},
		{"deliver_timeout", func(c *checkin.Config) { c.DeliverTimeout = 0 }},
	} {
		c := testConfig()
		tc.edit(&c)
		err := c.Validate()
		if concierge.ErrorCode(err) != concierge.EINVALID || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
		if _, err := checkin.NewService(c, enroll.NewGallery(model)); err == nil {
			t.Errorf("%s: NewService accepted a bad config", tc.field)
		}
	}
	if _, err := checkin.NewService(testConfig(), nil); err == nil {
		t.Error("NewService accepted no matcher")
	}
}

// TestFaceSlack is a customer none of whose faces is close enough alone,
// while the mean of them is: with FaceSlack the faces vote and the fused
// embedding decides; without it nobody is named.
func TestFaceSlack(t *testing.T) {
	p := newPopulation(t, 24)
	const th, slack, margin = 0.34, 0.12, 0.02
	var id string
	var probes []face.Embedding
	for _, c := range p.customers {
		var far []face.Embedding
		for _, e := range p.heldOut(c) {
			if m, ok := p.gallery.Search(&e); ok && m.CustomerID == c && m.Distance > th && m.Distance <= th+slack && m.Margin >= margin {
				far = append(far, e)
			}
		}
		if len(far) < 3 {
			continue
		}
		far = far[:min(len(far), 5)]
		mean := face.Mean(far, nil)
		if m, ok := p.gallery.Search(&mean); ok && m.CustomerID == c && m.Distance <= th-0.02 && m.Margin >= margin+0.02 {
			id, probes = c, far
			break
		}
	}
	if id == "" {
		t.Fatal("no customer whose faces are all beyond the threshold and whose mean is within it")
	}
	for _, tc := range []struct {
		slack float64
		want  int
	}{{0, 0}, {slack, 1}} {
		cfg := testConfig()
		cfg.Threshold, cfg.Margin, cfg.FaceSlack, cfg.Votes = th, margin, tc.slack, 1
		svc, rec := newService(t, cfg, p.gallery)
		sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, probes)}}
		sc.play(t, svc, 45)
		got := rec.got()
		if len(got) != tc.want || (tc.want == 1 && got[0].CustomerID != id) {
			t.Fatalf("face slack %v: arrivals %+v, want %d of %s", tc.slack, got, tc.want, id)
		}
		if tc.want == 1 && got[0].Distance > th {
			t.Fatalf("arrival at fused distance %v over the threshold %v", got[0].Distance, th)
		}
	}
}

// TestUnlearned: a customer who holds no door row is held to the looser
// kiosk-only threshold (Service.Unlearned); once they hold one, the
// threshold calibrated with the door rows applies to them.
func TestUnlearned(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 3)
	probes := p.recognisable(id, defaultRule())[:3]
	nearest := math.Inf(1)
	for _, e := range probes {
		m, _ := p.gallery.Search(&e)
		nearest = min(nearest, m.Distance)
	}
	play := func(unlearned float64) int {
		t.Helper()
		svc, rec := newService(t, testConfig(), p.gallery)
		svc.Calibrated = func() float64 { return nearest - 0.01 }
		svc.Unlearned = func() (float64, float64) { return unlearned, 0 }
		sc := &scene{camera: "door-1", start: t0, walkers: []*walker{approach(0, 300, probes)}}
		sc.play(t, svc, 45)
		return len(rec.got())
	}
	if n := play(0); n != 0 {
		t.Fatalf("%d arrivals below every probe", n)
	}
	if n := play(1); n != 1 {
		t.Fatalf("%d arrivals of a customer without door rows under the kiosk-only threshold, want 1", n)
	}
	// A door row far from the probes: the customer's distance is still
	// the enrollment's, but they have learned, and the stricter threshold
	// is theirs.
	far := p.set.faces[p.strangers[0]][0]
	p.gallery.Add(enroll.Template{CustomerID: id, Embedding: far, Model: p.gallery.Model(), Group: enroll.DoorGroup})
	if m, _ := p.gallery.Search(&probes[0]); m.CustomerID != id || !m.Learned {
		t.Fatalf("after a door row: %+v", m)
	}
	if n := play(1); n != 0 {
		t.Fatalf("%d arrivals of a customer with a door row below their threshold", n)
	}
}
