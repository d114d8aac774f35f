package enroll_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"concierge/enroll"
	"concierge/face"
)

// vec returns an embedding that is zero except for value v at index i, so
// distances are easy to reason about.
func vec(i int, v float32) face.Embedding {
	var e face.Embedding
	e[i] = v
	return e
}

func tmpl(id string, e face.Embedding) enroll.Template {
	return enroll.Template{CustomerID: id, Embedding: e, Model: "m"}
}

func TestGallerySearch(t *testing.T) {
	g := enroll.NewGallery("m")
	g.Load([]enroll.Template{
		tmpl("A", vec(0, 1)), tmpl("A", vec(1, 1)), // A has two templates
		tmpl("B", vec(2, 1)),
		{CustomerID: "X", Embedding: vec(0, 1), Model: "other"}, // other model: ignored
	})
	if g.Customers() != 2 || g.Templates("A") != 2 || g.Templates("X") != 0 {
		t.Fatalf("customers %d, A %d, X %d", g.Customers(), g.Templates("A"), g.Templates("X"))
	}
	probe := vec(1, 0.9)
	// A's two unit templates average to (1/√2, 1/√2) on the sphere.
	toA := math.Hypot(1/math.Sqrt2, 0.9-1/math.Sqrt2)
	for _, tc := range []struct {
		name      string
		exclude   []string
		wantID    string
		wantDist  float64
		wantRunUp string
	}{
		{"centroid of templates", nil, "A", toA, "B"},
		{"exclude A", []string{"A"}, "B", math.Hypot(0.9, 1), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := g.Search(&probe, tc.exclude...)
			if !ok || m.CustomerID != tc.wantID || math.Abs(m.Distance-tc.wantDist) > 1e-6 || m.RunnerUp != tc.wantRunUp {
				t.Fatalf("got %+v ok=%v", m, ok)
			}
			if tc.wantRunUp == "" && !math.IsInf(m.Margin, 1) {
				t.Fatalf("margin without a runner-up = %v, want +Inf", m.Margin)
			}
			if tc.wantRunUp == "B" && math.Abs(m.Margin-(math.Hypot(0.9, 1)-toA)) > 1e-6 {
				t.Fatalf("margin = %v", m.Margin)
			}
		})
	}
	if n := g.Remove("A"); n != 2 {
		t.Fatalf("removed %d templates, want 2", n)
	}
	m, _ := g.Search(&probe)
	if m.CustomerID != "B" || g.Customers() != 1 {
		t.Fatalf("after remove: %+v, %d customers", m, g.Customers())
	}
	g.Remove("B")
	if _, ok := g.Search(&probe); ok {
		t.Fatal("empty gallery returned a match")
	}
}

// Removing a customer moves another into its place; both the moved and
// the added-to customers must keep scoring on their own templates.
func TestGalleryRemoveKeepsOthers(t *testing.T) {
	g := enroll.NewGallery("m")
	g.Add(tmpl("A", vec(0, 1)), tmpl("B", vec(1, 1)), tmpl("C", vec(2, 1)))
	if n := g.Remove("A"); n != 1 {
		t.Fatalf("removed %d", n)
	}
	g.Add(tmpl("B", vec(1, 1)), tmpl("D", vec(3, 1)))
	for i, want := range map[int]string{1: "B", 2: "C", 3: "D"} {
		p := vec(i, 1)
		m, ok := g.Search(&p)
		if !ok || m.CustomerID != want || m.Distance > 1e-6 {
			t.Errorf("probe %d: %+v, want %s at 0", i, m, want)
		}
	}
	if p := vec(0, 1); g.Templates("A") != 0 || g.Customers() != 3 || g.Templates("B") != 2 {
		t.Fatalf("after remove: A %d, B %d templates, %d customers", g.Templates("A"), g.Templates("B"), g.Customers())
	} else if m, _ := g.Search(&p); m.CustomerID == "A" {
		t.Fatal("removed customer still found")
	}
}

func TestGalleryNearest(t *testing.T) {
	g := enroll.NewGallery("m")
	g.Add(tmpl("A", vec(0, 1)), tmpl("B", vec(0, 2)), tmpl("C", vec(0, 4)))
	probe := vec(0, 0)
	got := g.Nearest(&probe, 2)
	if len(got) != 2 || got[0].CustomerID != "A" || got[1].CustomerID != "B" || got[0].Margin != 1 {
		t.Fatalf("nearest = %+v", got)
	}
}

func TestRuleAccept(t *testing.T) {
	r := enroll.Rule{Threshold: 0.4, Margin: 0.05}
	for _, tc := range []struct {
		name string
		m    enroll.Match
		want bool
	}{
		{"close and clear", enroll.Match{CustomerID: "A", Distance: 0.3, Margin: 0.2}, true},
		{"at threshold", enroll.Match{CustomerID: "A", Distance: 0.4, Margin: 0.05}, true},
		{"over threshold", enroll.Match{CustomerID: "A", Distance: 0.41, Margin: 0.2}, false},
		{"ambiguous", enroll.Match{CustomerID: "A", Distance: 0.3, Margin: 0.04}, false},
		{"only customer", enroll.Match{CustomerID: "A", Distance: 0.3, Margin: math.Inf(1)}, true},
		{"no customer", enroll.Match{Distance: 0.1, Margin: 1}, false},
	} {
		if got := r.Accept(tc.m); got != tc.want {
			t.Errorf("%s: Accept = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Searches race with enrollments and deletions in the daemon.
func TestGalleryConcurrent(t *testing.T) {
	g := enroll.NewGallery("m")
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				id := string(rune('A' + w))
				g.Add(tmpl(id, vec(i%face.Dim, 1)))
				p := vec(i%face.Dim, 1)
				g.Search(&p)
				if i%50 == 0 {
					g.Remove(id)
				}
			}
		}(w)
	}
	wg.Wait()
}

func BenchmarkSearch10kCustomers(b *testing.B) {
	g := enroll.NewGallery("m")
	var ts []enroll.Template
	for c := 0; c < 10000; c++ {
		for k := 0; k < 3; k++ {
			var e face.Embedding
			for i := range e {
				e[i] = float32((c*7+k*13+i*31)%97) / 97
			}
			ts = append(ts, tmpl(string(rune(c)), e))
		}
	}
	g.Load(ts)
	probe := ts[123].Embedding
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g.Search(&probe)
	}
}

// A customer is as near as their nearest group's centroid; the runner-up
// is another customer, never the same customer's other group.
func TestGalleryGroups(t *testing.T) {
	g := enroll.NewGallery("m")
	door := func(id string, e face.Embedding, group string) enroll.Template {
		t := tmpl(id, e)
		t.Source, t.Group = enroll.SourceDoor, group
		return t
	}
	g.Load([]enroll.Template{
		tmpl("A", vec(0, 1)), tmpl("A", vec(1, 1)), // enrollment centroid (1/√2, 1/√2)
		door("A", vec(2, 1), "door"),
		door("A", vec(3, 1), "door-2"),
		tmpl("B", vec(4, 1)),
	})
	if g.Customers() != 2 || g.Templates("A") != 4 {
		t.Fatalf("%d customers, A has %d templates", g.Customers(), g.Templates("A"))
	}
	p := vec(2, 0.9) // 0.1 from A's door centroid, farther from the rest
	m, ok := g.Search(&p)
	if !ok || m.CustomerID != "A" || math.Abs(m.Distance-0.1) > 1e-6 || m.RunnerUp != "B" ||
		math.Abs(m.Margin-(math.Hypot(0.9, 1)-0.1)) > 1e-6 {
		t.Fatalf("door probe: %+v", m)
	}
	if d, _ := g.Distance(&p, "A"); math.Abs(d-0.1) > 1e-6 {
		t.Fatalf("distance to A = %v, want the door centroid's 0.1", d)
	}
	if got := g.Nearest(&p, 5); len(got) != 2 || got[0].CustomerID != "A" || got[1].CustomerID != "B" {
		t.Fatalf("nearest = %+v", got)
	}
	// Without B there is no runner-up: A's enrollment centroid is A's.
	if m, _ := g.Search(&p, "B"); m.CustomerID != "A" || m.RunnerUp != "" || !math.IsInf(m.Margin, 1) {
		t.Fatalf("without B: %+v", m)
	}
	// Adding to a group moves that group's centroid only.
	g.Add(door("A", vec(5, 1), "door"))
	if m, _ := g.Search(&p); m.CustomerID != "A" || math.Abs(m.Distance-math.Hypot(0.9-1/math.Sqrt2, 1/math.Sqrt2)) > 1e-6 {
		t.Fatalf("after adding a door face: %+v", m)
	}
	// Set replaces all of A's rows at once.
	g.Set("A", []enroll.Template{tmpl("A", vec(6, 1)), tmpl("B", vec(2, 1)), {CustomerID: "A", Embedding: vec(2, 1), Model: "other"}})
	if g.Templates("A") != 1 || g.Templates("B") != 1 || g.Customers() != 2 {
		t.Fatalf("after Set: A %d, B %d templates, %d customers", g.Templates("A"), g.Templates("B"), g.Customers())
	}
	if m, _ := g.Search(&p); m.CustomerID != "A" || math.Abs(m.Distance-math.Hypot(0.9, 1)) > 1e-6 {
		t.Fatalf("after Set: %+v", m)
	}
	g.Set("A", nil)
	if g.Customers() != 1 || g.Templates("A") != 0 {
		t.Fatalf("Set with nothing left %d customers", g.Customers())
	}
	if n := g.Remove("B"); n != 1 || g.Customers() != 0 {
		t.Fatalf("removed %d, %d customers left", n, g.Customers())
	}
}

// A group's offset is added to its rows' distances: the customer's
// distance, the runner-up and the margin are the penalised ones, and a
// door row that is nearest loses to the enrollment's when its offset
// says so. It holds for rows added later and across reloads.
func TestGalleryGroupOffset(t *testing.T) {
	g := enroll.NewGallery("m")
	door := tmpl("A", vec(2, 1))
	door.Source, door.Group = enroll.SourceDoor, enroll.DoorGroup
	if err := g.SetGroupOffset(enroll.DoorGroup, 0.05); err != nil {
		t.Fatal(err)
	}
	g.Load([]enroll.Template{tmpl("A", vec(0, 1)), door, tmpl("B", vec(4, 1))})
	p := vec(2, 0.9) // 0.1 from A's door centroid
	toB := math.Hypot(0.9, 1)
	m, ok := g.Search(&p)
	if !ok || m.CustomerID != "A" || math.Abs(m.Distance-0.15) > 1e-6 || m.RunnerUp != "B" || math.Abs(m.Margin-(toB-0.15)) > 1e-6 {
		t.Fatalf("door probe, offset 0.05: %+v", m)
	}
	if d, _ := g.Distance(&p, "A"); math.Abs(d-0.15) > 1e-6 {
		t.Fatalf("distance to A = %v, want 0.15", d)
	}
	if got := g.Nearest(&p, 1); len(got) != 1 || math.Abs(got[0].Distance-0.15) > 1e-6 {
		t.Fatalf("nearest = %+v", got)
	}
	// An offset beyond the enrollment centroid's distance (hypot(1, 0.9)
	// too): the door row no longer decides, and A ties with B at B's
	// distance, A's index first.
	if err := g.SetGroupOffset(enroll.DoorGroup, 1.5); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Search(&p); m.CustomerID != "A" || math.Abs(m.Distance-toB) > 1e-6 || m.RunnerUp != "B" || m.Margin != 0 {
		t.Fatalf("offset 1.5: %+v", m)
	}
	// The enrollment group may carry an offset too; here it hands B's
	// probe to A's door row.
	if err := g.SetGroupOffset("", 0.2); err != nil {
		t.Fatal(err)
	}
	q := vec(4, 1)
	if m, _ := g.Search(&q); m.CustomerID != "B" || math.Abs(m.Distance-0.2) > 1e-6 {
		t.Fatalf("B's probe, enrollment offset 0.2: %+v", m)
	}
	if err := g.SetGroupOffset("", 0); err != nil {
		t.Fatal(err)
	}
	// Rows added after the offset was set carry it.
	c := tmpl("C", vec(6, 1))
	c.Group = enroll.DoorGroup
	g.Add(c)
	r := vec(6, 1)
	if d, _ := g.Distance(&r, "C"); math.Abs(d-1.5) > 1e-6 {
		t.Fatalf("a door row added later: C at %v, want 1.5", d)
	}
	for _, bad := range []float64{-0.01, math.NaN(), math.Inf(1)} {
		if err := g.SetGroupOffset(enroll.DoorGroup, bad); err == nil {
			t.Errorf("offset %v accepted", bad)
		}
	}
	if d, _ := g.Distance(&r, "C"); math.Abs(d-1.5) > 1e-6 {
		t.Fatalf("a refused offset changed the gallery: C at %v", d)
	}
}

// Search must return exactly what the plain float32 scan returns: the
// same best customer, distance, runner-up and margin, bit for bit, on
// genuine probes, strangers, ties and near-ties, groups with and without
// offsets, dlib-like embeddings off the unit sphere, and after removals,
// replacements and reloads.
func TestGallerySearchIsExact(t *testing.T) {
	t.Run("kernel", func(t *testing.T) { searchIsExact(t, 3000) })
	t.Run("portable kernel", func(t *testing.T) {
		defer enroll.UsePortableKernel()()
		searchIsExact(t, 1000)
	})
}

// The machine's kernel and the portable one compute the same sums.
func TestGalleryKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	g := enroll.NewGallery("m")
	for i := range 1003 { // a last block not full
		e := randomUnit(rng)
		if i%3 == 0 {
			for k := range e {
				e[k] *= 0.01 + 3*rng.Float32()
			}
		}
		g.Add(tmpl(fmt.Sprint(i), e))
	}
	for seed := range int64(20) {
		fast, portable := g.DotBlocks(seed)
		if !slices.Equal(fast, portable) {
			t.Fatalf("seed %d: the kernels disagree", seed)
		}
	}
}

func searchIsExact(t *testing.T, n int) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := enroll.NewGallery("m")
	var ids []string
	var people []face.Embedding
	var ts []enroll.Template
	person := func(id string, e face.Embedding, templates int, spread float64) {
		ids = append(ids, id)
		people = append(people, e)
		for range templates {
			ts = append(ts, tmpl(id, rotate(rng, e, spread)))
		}
	}
	for i := range 1500 {
		e := randomUnit(rng)
		person(fmt.Sprint("U", i), e, 1+i%3, 0.3+0.4*rng.Float64())
		if i%5 == 0 { // door faces of their own
			for k := range 1 + i%2 {
				d := tmpl(fmt.Sprint("U", i), rotate(rng, e, 0.6))
				d.Source, d.Group = enroll.SourceDoor, fmt.Sprint("door-", k)
				ts = append(ts, d)
			}
		}
	}
	for i := range 200 { // dlib-like: not unit vectors, not normalised
		e := randomUnit(rng)
		s := float32(0.4 + 0.8*rng.Float64())
		var raw [2]face.Embedding
		for k := range raw {
			raw[k] = rotate(rng, e, 0.4)
			for j := range raw[k] {
				raw[k][j] *= s
			}
			ts = append(ts, tmpl(fmt.Sprint("D", i), raw[k]))
		}
		ids, people = append(ids, fmt.Sprint("D", i)), append(people, raw[0])
	}
	for i := range 200 { // twins: exact ties and ties to a few ulps
		src := ts[rng.IntN(len(ts))]
		tw := tmpl(fmt.Sprint("T", i), src.Embedding)
		if i%2 == 1 {
			tw.Embedding[rng.IntN(face.Dim)] += 1e-7
		}
		ts = append(ts, tw)
		ids, people = append(ids, tw.CustomerID), append(people, tw.Embedding)
	}
	rng.Shuffle(len(ts), func(i, j int) { ts[i], ts[j] = ts[j], ts[i] })
	g.Load(ts)

	probes := func(n int) []face.Embedding {
		out := make([]face.Embedding, 0, n)
		for len(out) < n {
			i := rng.IntN(len(people))
			switch len(out) % 5 {
			case 0: // genuine
				out = append(out, rotate(rng, people[i], 0.5+0.4*rng.Float64()))
			case 1: // stranger
				out = append(out, randomUnit(rng))
			case 2: // a template itself: ties between twins
				out = append(out, ts[rng.IntN(len(ts))].Embedding)
			case 3: // between two people
				j := rng.IntN(len(people))
				var e face.Embedding
				for k := range e {
					e[k] = (people[i][k] + people[j][k]) / 2
				}
				out = append(out, e)
			default: // far out and off the sphere
				e := randomUnit(rng)
				for k := range e {
					e[k] *= 3
				}
				out = append(out, e)
			}
		}
		return out
	}
	check := func(stage string, ps []face.Embedding) {
		t.Helper()
		cents := g.Centroids()
		bad := 0
		for i := range ps {
			p := &ps[i]
			want, wok := g.ExactSearch(cents, p)
			got, ok := g.Search(p)
			if got != want || ok != wok {
				t.Errorf("%s probe %d: Search %+v, exact scan %+v", stage, i, got, want)
				bad++
			}
			// Excluding the best makes the runner-up the best.
			want, wok = g.ExactSearch(cents, p, want.CustomerID, "nobody")
			got, ok = g.Search(p, got.CustomerID, "nobody")
			if got != want || ok != wok {
				t.Errorf("%s probe %d excluding the best: Search %+v, exact scan %+v", stage, i, got, want)
				bad++
			}
			if bad > 10 {
				t.FailNow()
			}
		}
	}
	check("loaded", probes(n))

	// Offsets on groups: the scan's bounds are distances then, and a
	// door row that would win loses to the enrollment's, or to another
	// customer, by its offset. The plain scan adds them too; checked
	// against penalised centroids computed here from the templates.
	for group, off := range map[string]float64{"door-0": 0.05, "door-1": 0.3} {
		if err := g.SetGroupOffset(group, off); err != nil {
			t.Fatal(err)
		}
	}
	offsetProbes := probes(n)
	check("offsets", offsetProbes)
	type rowKey struct{ id, group string }
	rows := map[rowKey][]face.Embedding{}
	for _, tm := range ts {
		k := rowKey{tm.CustomerID, tm.Group}
		rows[k] = append(rows[k], tm.Embedding)
	}
	offsetOf := map[string]float64{"door-0": 0.05, "door-1": 0.3}
	for i := range min(len(offsetProbes), 150) {
		p := &offsetProbes[i]
		best := map[string]float64{}
		for k, es := range rows {
			c := face.Mean(es, nil)
			d := math.Sqrt(float64(face.SquaredDistance(&c, p))) + offsetOf[k.group]
			if b, ok := best[k.id]; !ok || d < b {
				best[k.id] = d
			}
		}
		want, second := "", ""
		for id, d := range best {
			switch {
			case want == "" || d < best[want] || d == best[want] && id < want:
				want, second = id, want
			case second == "" || d < best[second] || d == best[second] && id < second:
				second = id
			}
		}
		got, _ := g.Search(p)
		if math.Abs(got.Distance-best[want]) > 1e-6 || math.Abs(got.Margin-(best[second]-best[want])) > 1e-6 ||
			got.CustomerID != want && math.Abs(best[got.CustomerID]-best[want]) > 1e-6 {
			t.Fatalf("offsets probe %d: Search %+v; penalised centroids: %s at %v, %s at %v", i, got, want, best[want], second, best[second])
		}
		if d, _ := g.Distance(p, got.CustomerID); d != got.Distance {
			t.Fatalf("offsets probe %d: Distance %v, Search %v", i, d, got.Distance)
		}
	}

	// Removals move rows and customers; Set and Add change centroids.
	for i := range 300 {
		g.Remove(ids[(i*7)%len(ids)])
	}
	for i := range 200 {
		id := ids[(i*11+3)%len(ids)]
		e := randomUnit(rng)
		d := tmpl(id, rotate(rng, e, 0.5))
		d.Group = "door"
		g.Set(id, []enroll.Template{tmpl(id, e), d})
		if i == 100 { // rows of the group before and after the offset
			if err := g.SetGroupOffset("door", 0.1); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 100 {
		id := ids[(i*13+5)%len(ids)]
		g.Add(tmpl(id, rotate(rng, people[(i*13+5)%len(people)], 0.5)))
	}
	check("changed", probes(2*n/3))

	// A reload keeps the offsets; offset 0 scores a group as the
	// enrollment's again.
	g.Load(ts)
	check("reloaded", probes(n/3))
	for _, group := range []string{"door", "door-0", "door-1"} {
		if err := g.SetGroupOffset(group, 0); err != nil {
			t.Fatal(err)
		}
	}
	check("offsets off", probes(n/3))
}

// A search allocates nothing: its scratch is pooled.
func TestGallerySearchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race sync.Pool drops pooled scratch at random; the allocation count is checked without -race")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	g := enroll.NewGallery("m")
	for i := range 5000 {
		g.Add(tmpl(fmt.Sprint(i), randomUnit(rng)))
	}
	p := randomUnit(rng)
	g.Search(&p)
	if n := testing.AllocsPerRun(50, func() { g.Search(&p, "1") }); n > 0 {
		t.Fatalf("%v allocations a search", n)
	}
}
