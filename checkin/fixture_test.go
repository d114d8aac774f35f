package checkin_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
	"concierge/internal/testenv"
)

// model names the gallery's embedding model; the descriptors are dlib's.
const model = "dlib"

// idols holds the real dlib descriptors of /work/shared/data: identities
// with several faces each.
type idols struct {
	ids   []string // identities with at least one face, sorted
	faces map[string][]face.Embedding
}

var (
	idolsOnce sync.Once
	idolsSet  *idols
	idolsErr  error
)

// loadIdols reads idols-descriptors.json once per test binary.
func loadIdols(tb testing.TB) *idols {
	tb.Helper()
	path := testenv.Shared(tb, "data/idols-descriptors.json")
	idolsOnce.Do(func() { idolsSet, idolsErr = readIdols(path) })
	if idolsErr != nil {
		tb.Fatal(idolsErr)
	}
	return idolsSet
}

func readIdols(path string) (*idols, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var file struct {
		Faces []struct {
			Descriptor string `json:"descriptor"`
			IdolID     string `json:"idol_id"`
		} `json:"faces"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	set := &idols{faces: map[string][]face.Embedding{}}
	for i, f := range file.Faces {
		b, err := base64.StdEncoding.DecodeString(f.Descriptor)
		if err != nil || len(b) != 4*face.Dim {
			return nil, fmt.Errorf("%s: face %d: bad descriptor", path, i)
		}
		var e face.Embedding
		for k := range e {
			e[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
		}
		if _, ok := set.faces[f.IdolID]; !ok {
			set.ids = append(set.ids, f.IdolID)
		}
		set.faces[f.IdolID] = append(set.faces[f.IdolID], e)
	}
	slices.Sort(set.ids)
	return set, nil
}

// population splits the identities into enrolled customers, each enrolled
// with their first two descriptors, and strangers, who are never enrolled.
// The remaining descriptors of a customer are held out: they are what the
// camera "sees" of them.
type population struct {
	set       *idols
	gallery   *enroll.Gallery
	customers []string
	strangers []string
}

const enrolledPerCustomer = 2

// newPopulation enrolls every identity but the last nStrangers.
func newPopulation(tb testing.TB, nStrangers int) *population {
	set := loadIdols(tb)
	p := &population{set: set, gallery: enroll.NewGallery(model)}
	var ts []enroll.Template
	for i, id := range set.ids {
		if i >= len(set.ids)-nStrangers || len(set.faces[id]) < enrolledPerCustomer+2 {
			p.strangers = append(p.strangers, id)
			continue
		}
		p.customers = append(p.customers, id)
		for _, e := range set.faces[id][:enrolledPerCustomer] {
			ts = append(ts, enroll.Template{CustomerID: id, Embedding: e, Model: model})
		}
	}
	p.gallery.Load(ts)
	return p
}

// heldOut returns the descriptors of a customer that are not enrolled.
func (p *population) heldOut(id string) []face.Embedding {
	return p.set.faces[id][enrolledPerCustomer:]
}

// recognisable returns a customer's held-out descriptors that the rule
// accepts as that customer, closest first.
func (p *population) recognisable(id string, rule enroll.Rule) []face.Embedding {
	type scored struct {
		e face.Embedding
		d float64
	}
	var out []scored
	for _, e := range p.heldOut(id) {
		if m, ok := p.gallery.Search(&e); ok && m.CustomerID == id && rule.Accept(m) {
			out = append(out, scored{e, m.Distance})
		}
	}
	slices.SortFunc(out, func(a, b scored) int { return cmp.Compare(a.d, b.d) })
	es := make([]face.Embedding, len(out))
	for i := range out {
		es[i] = out[i].e
	}
	return es
}

// recognisableCustomers returns the customers with at least n held-out
// descriptors the rule accepts as them.
func (p *population) recognisableCustomers(rule enroll.Rule, n int) []string {
	var out []string
	for _, id := range p.customers {
		if len(p.recognisable(id, rule)) >= n {
			out = append(out, id)
		}
	}
	return out
}

var t0 = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

// fps15 is the frame interval of a 15 fps camera.
const fps15 = time.Second / 15

// walker is one person in a synthetic scene: a face box that moves and
// grows as the person walks towards the door camera, seen from frame from
// to frame to (exclusive), embedding to the probes in turn.
type walker struct {
	from, to   int
	x, y, size float64 // box at frame from
	dx, dy     float64 // pixels per frame
	grow       float64 // pixels per frame
	sharpness  float64 // 0 means 120
	jitter     int     // detector noise: up to this many pixels each way
	missFrom   int     // the detector misses the face in frames [missFrom, missTo)
	missTo     int
	probes     []face.Embedding
}

func (w *walker) box(f int) image.Rectangle {
	n := float64(f - w.from)
	s := w.size + w.grow*n
	x, y := w.x+w.dx*n, w.y+w.dy*n
	if w.jitter > 0 {
		// Deterministic noise, different on each side of the box.
		j := func(k int) float64 { return float64((f*k)%(2*w.jitter+1) - w.jitter) }
		return image.Rect(int(x+j(7)), int(y+j(11)), int(x+s+j(13)), int(y+s+j(17)))
	}
	return image.Rect(int(x), int(y), int(x+s), int(y+s))
}

// scene plays walkers to a service as frames of one camera and reports the
// embed calls per walker.
type scene struct {
	camera  string
	start   time.Time
	walkers []*walker
	// thumbnails offers every face a thumbnail "walker W frame F" and
	// lists the ones taken.
	thumbnails bool
	taken      []string
}

// play observes frames [0, n) and returns the embed calls per walker. It
// reports errors with Errorf, so it may run outside the test goroutine.
func (sc *scene) play(tb testing.TB, svc *checkin.Service, n int) []int {
	tb.Helper()
	calls := make([]int, len(sc.walkers))
	ctx := context.Background()
	var dets []checkin.Detection
	var owner []int
	for f := 0; f < n; f++ {
		dets, owner = dets[:0], owner[:0]
		for wi, w := range sc.walkers {
			if f < w.from || f >= w.to || (f >= w.missFrom && f < w.missTo) {
				continue
			}
			sharp := w.sharpness
			if sharp == 0 {
				sharp = 120
			}
			b := w.box(f)
			d := checkin.Detection{
				Box:     b,
				Quality: face.Quality{SizePx: min(b.Dx(), b.Dy()), Sharpness: sharp, Frontal: 0.9, Brightness: 120},
				Score:   0.95,
			}
			if sc.thumbnails {
				name := fmt.Sprintf("walker %d frame %d", wi, f)
				d.Thumbnail = func() ([]byte, error) {
					sc.taken = append(sc.taken, name)
					return []byte(name), nil
				}
			}
			dets = append(dets, d)
			owner = append(owner, wi)
		}
		embed := func(i int) (face.Embedding, error) {
			wi := owner[i]
			w := sc.walkers[wi]
			e := w.probes[calls[wi]%len(w.probes)]
			calls[wi]++
			return e, nil
		}
		if err := svc.Observe(ctx, sc.camera, sc.at(f), dets, embed); err != nil {
			tb.Errorf("%s frame %d: %v", sc.camera, f, err)
			return calls
		}
	}
	return calls
}

func (sc *scene) at(f int) time.Time { return sc.start.Add(time.Duration(f) * fps15) }

// recorder is a Notifier that keeps what it is given.
type recorder struct {
	mu       sync.Mutex
	arrivals []checkin.Arrival
	risks    [][]checkin.RiskFlag
	err      error
}

func (r *recorder) Notify(ctx context.Context, a checkin.Arrival, risk []checkin.RiskFlag) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.arrivals = append(r.arrivals, a)
	r.risks = append(r.risks, risk)
	return nil
}

func (r *recorder) got() []checkin.Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.arrivals)
}

// testConfig is the rule these tests were written for: two votes, and a
// track's embeddings 300 ms apart, to exercise the vote count and the
// spacing that the shipped defaults (one vote, 130 ms) hardly reach.
func testConfig() checkin.Config {
	c := checkin.DefaultConfig()
	c.Votes = 2
	c.MinEmbedInterval = 300 * time.Millisecond
	return c
}

func newService(tb testing.TB, cfg checkin.Config, m checkin.Matcher) (*checkin.Service, *recorder) {
	tb.Helper()
	svc, err := checkin.NewService(cfg, m)
	if err != nil {
		tb.Fatal(err)
	}
	rec := &recorder{}
	svc.Notifier = rec
	svc.Logger = slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return svc, rec
}
