package enroll_test

import (
	"math"
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
