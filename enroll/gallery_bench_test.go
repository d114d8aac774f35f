package enroll_test

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"concierge/enroll"
	"concierge/face"
	"concierge/internal/testenv"
)

// population generates customers the way a branch box holds them: an
// identity per customer, three enrollment templates around it, genuine
// probes at the distances real faces of the customer have, and strangers.
type population struct {
	rng *rand.Rand
	// identity returns a new person's face; near a face at a genuine
	// distance from it.
	identity func(rng *rand.Rand) face.Embedding
	near     func(rng *rand.Rand, e face.Embedding) face.Embedding
	// door gives every customer a door centroid too (DoorGroup, the
	// mean of two faces), for a gallery that learned from visits.
	door bool
}

// unitPopulation is MobileFaceNet-like: unit vectors, templates and
// genuine probes 0.5–0.9 from the person (the same-person distances of the
// calibrated engines), strangers fresh random unit vectors (about √2 from
// everybody, the nearest of 100,000 customers about 1.2).
func unitPopulation(seed uint64) *population {
	return &population{
		rng:      rand.New(rand.NewPCG(seed, 1)),
		identity: randomUnit,
		near: func(rng *rand.Rand, e face.Embedding) face.Embedding {
			return rotate(rng, e, 0.5+0.4*rng.Float64())
		},
	}
}

func randomUnit(rng *rand.Rand) face.Embedding {
	var e face.Embedding
	for k := range e {
		e[k] = float32(rng.NormFloat64())
	}
	e.Normalize()
	return e
}

// rotate returns the unit vector at distance d from the unit vector e, in
// a random direction.
func rotate(rng *rand.Rand, e face.Embedding, d float64) face.Embedding {
	u := randomUnit(rng)
	var dot float64
	for k := range e {
		dot += float64(e[k]) * float64(u[k])
	}
	for k := range u {
		u[k] -= float32(dot) * e[k]
	}
	u.Normalize()
	theta := 2 * math.Asin(d/2)
	var out face.Embedding
	for k := range out {
		out[k] = float32(math.Cos(theta))*e[k] + float32(math.Sin(theta))*u[k]
	}
	out.Normalize()
	return out
}

// idolsPopulation is seeded from the real dlib descriptors in ../shared:
// a customer is a blend of two real faces of different people plus noise
// of the descriptors' own spread per dimension, so that customers lie
// where real faces lie (dlib's are not unit vectors, and far from
// isotropic). Templates and probes add noise of 0.35 of that spread
// (genuine distances about 0.4–0.5, dlib's threshold being 0.6).
func idolsPopulation(tb testing.TB, seed uint64) *population {
	faces := readDescriptors(tb)
	var mean, sd [face.Dim]float64
	for _, f := range faces {
		for k, v := range f {
			mean[k] += float64(v) / float64(len(faces))
		}
	}
	for _, f := range faces {
		for k, v := range f {
			d := float64(v) - mean[k]
			sd[k] += d * d / float64(len(faces))
		}
	}
	for k := range sd {
		sd[k] = math.Sqrt(sd[k])
	}
	noise := func(rng *rand.Rand, e face.Embedding, f float64) face.Embedding {
		for k := range e {
			e[k] += float32(f * sd[k] * rng.NormFloat64())
		}
		return e
	}
	return &population{
		rng: rand.New(rand.NewPCG(seed, 2)),
		identity: func(rng *rand.Rand) face.Embedding {
			a, b := faces[rng.IntN(len(faces))], faces[rng.IntN(len(faces))]
			w := float32(0.25 + 0.5*rng.Float64())
			var e face.Embedding
			for k := range e {
				e[k] = w*a[k] + (1-w)*b[k]
			}
			return noise(rng, e, 0.5)
		},
		near: func(rng *rand.Rand, e face.Embedding) face.Embedding { return noise(rng, e, 0.35) },
	}
}

func readDescriptors(tb testing.TB) []face.Embedding {
	path := testenv.Shared(tb, "data/idols-descriptors.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var file struct {
		Faces []struct {
			Descriptor string `json:"descriptor"`
		} `json:"faces"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		tb.Fatal(err)
	}
	out := make([]face.Embedding, 0, len(file.Faces))
	for i, f := range file.Faces {
		b, err := base64.StdEncoding.DecodeString(f.Descriptor)
		if err != nil || len(b) != 4*face.Dim {
			tb.Fatalf("%s: face %d: bad descriptor", path, i)
		}
		var e face.Embedding
		for k := range e {
			e[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
		}
		out = append(out, e)
	}
	return out
}

func customerID(i int) string { return fmt.Sprintf("C%07d", i) }

// templates returns customer i's three enrollment templates.
func (p *population) templates(i int, id face.Embedding) []enroll.Template {
	ts := make([]enroll.Template, 3)
	for k := range ts {
		ts[k] = enroll.Template{CustomerID: customerID(i), Model: "m", Embedding: p.near(p.rng, id), Source: enroll.SourceEnrollment}
	}
	for range 2 * btoi(p.door) {
		ts = append(ts, enroll.Template{CustomerID: customerID(i), Model: "m", Embedding: p.near(p.rng, id),
			Source: enroll.SourceDoor, Group: enroll.DoorGroup})
	}
	return ts
}

// fill adds n customers in chunks (a million customers' templates at once
// would need 2 GB) and returns a genuine probe for each of the first
// genuine customers.
func (p *population) fill(g *enroll.Gallery, n, genuine int) []face.Embedding {
	var probes []face.Embedding
	chunk := make([]enroll.Template, 0, 3*10000)
	for i := range n {
		id := p.identity(p.rng)
		chunk = append(chunk, p.templates(i, id)...)
		if i < genuine {
			probes = append(probes, p.near(p.rng, id))
		}
		if len(chunk) == cap(chunk) || i == n-1 {
			g.Add(chunk...)
			chunk = chunk[:0]
		}
	}
	return probes
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkGalleryMemory reports the heap a gallery of 100,000 customers
// (three templates each, one row each) holds once loaded, the target being
// 150 MB: go test -run '^$' -bench GalleryMemory -benchtime 1x ./enroll/
func BenchmarkGalleryMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(sizeName(n), func(b *testing.B) {
			p := unitPopulation(1)
			ts := make([]enroll.Template, 0, 3*n)
			for i := range n {
				ts = append(ts, p.templates(i, p.identity(p.rng))...)
			}
			var held float64
			for b.Loop() {
				before := heapInUse()
				g := enroll.NewGallery("m")
				g.Load(ts)
				after := heapInUse()
				held = float64(after) - float64(before)
				if g.Customers() != n {
					b.Fatalf("%d customers", g.Customers())
				}
				runtime.KeepAlive(g)
			}
			runtime.KeepAlive(ts)
			b.ReportMetric(held/1e6, "heap-MB")
			b.ReportMetric(held/float64(n), "B/customer")
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// benchGalleries keeps each size's gallery between the runs the testing
// package makes of a benchmark.
var benchGalleries = map[string]*benchGallery{}

type benchGallery struct {
	g      *enroll.Gallery
	probes []face.Embedding // genuine and stranger probes, alternating
	cents  []float32        // for the exact scan; nil at 1M (512 MB)
}

// BenchmarkGallerySearch measures 1:N search latency (p50-ms, p99-ms of
// the single searches) and how often it agrees with the plain exact scan
// (recall@1: the same best customer; runner-up: the same second; exact:
// the whole Match equal) for half genuine, half stranger probes. cpu-p50-ms
// and cpu-p99-ms are the searching thread's CPU time, which other work on
// the machine does not inflate as it does the wall time:
//
//	go test -run '^$' -bench 'GallerySearch/unit/(10k|100k)$' -benchtime 2000x ./enroll/
//	go test -run '^$' -bench 'GallerySearch/unit/1M' -benchtime 200x ./enroll/  # 1M: about 1.5 GB, only when asked
//	go test -run '^$' -bench 'GallerySearch/idols' -benchtime 2000x ./enroll/   # needs ../shared
//	go test -run '^$' -bench 'GallerySearch/portable' -benchtime 2000x ./enroll/ # without AVX2
//
// "door" is "unit" with a door centroid per customer scored 0.05 farther
// (Gallery.SetGroupOffset), as the daemon's gallery once every customer
// learned from visits: twice the rows, and the offset's bounds.
func BenchmarkGallerySearch(b *testing.B) {
	for _, kind := range []string{"unit", "idols", "portable", "door"} {
		b.Run(kind, func(b *testing.B) {
			if kind == "portable" { // unit data, the kernel of machines without AVX2
				defer enroll.UsePortableKernel()()
			}
			for _, n := range []int{10_000, 100_000, 1_000_000} {
				b.Run(sizeName(n), func(b *testing.B) {
					if n >= 1_000_000 && !strings.Contains(flag.Lookup("test.bench").Value.String(), "1M") {
						b.Skip("1M customers take about 1.5 GB: ask with -bench 'GallerySearch/unit/1M'")
					}
					benchSearch(b, kind, n)
				})
			}
		})
	}
}

func benchSearch(b *testing.B, kind string, n int) {
	key := kind + sizeName(n)
	bg := benchGalleries[key]
	if bg == nil {
		var p *population
		if kind == "idols" {
			p = idolsPopulation(b, 7)
		} else {
			p = unitPopulation(7)
		}
		p.door = kind == "door"
		bg = &benchGallery{g: enroll.NewGallery("m")}
		if err := bg.g.SetGroupOffset(enroll.DoorGroup, 0.05); err != nil {
			b.Fatal(err)
		}
		genuine := p.fill(bg.g, n, 500)
		for i, e := range genuine {
			bg.probes = append(bg.probes, e, p.identity(p.rng))
			_ = i
		}
		if n < 1_000_000 {
			bg.cents = bg.g.Centroids()
		}
		for k := range benchGalleries {
			delete(benchGalleries, k) // one size at a time
		}
		benchGalleries[key] = bg
	}
	g := bg.g
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	durs := make([]time.Duration, 0, b.N)
	cpus := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := &bg.probes[i%len(bg.probes)]
		c0, _ := threadCPU()
		t0 := time.Now()
		g.Search(p)
		durs = append(durs, time.Since(t0))
		if c1, ok := threadCPU(); ok {
			cpus = append(cpus, c1-c0)
		}
	}
	b.StopTimer()
	// Wall time is the target's measure; on a machine shared with other
	// work its tail is the run queue's. The thread's CPU time is not.
	report := func(ds []time.Duration, name string) {
		if len(ds) == 0 {
			return
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2])/1e6, name+"p50-ms")
		b.ReportMetric(float64(ds[len(ds)*99/100])/1e6, name+"p99-ms")
	}
	report(durs, "")
	report(cpus, "cpu-")

	// Agreement with the exact scan, on a sample at 1M (0.5 s a probe).
	checks := len(bg.probes)
	if bg.cents == nil {
		checks = 40
	}
	var top1, runnerUp, exact int
	for i := range checks {
		p := &bg.probes[i]
		got, _ := g.Search(p)
		want, _ := g.ExactSearch(bg.cents, p)
		if got.CustomerID == want.CustomerID {
			top1++
		}
		if got.RunnerUp == want.RunnerUp {
			runnerUp++
		}
		if got == want {
			exact++
		}
	}
	b.ReportMetric(float64(top1)/float64(checks), "recall@1")
	b.ReportMetric(float64(runnerUp)/float64(checks), "runner-up")
	b.ReportMetric(float64(exact)/float64(checks), "exact")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
