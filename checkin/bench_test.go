package checkin_test

import (
	"context"
	"image"
	"log/slog"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
)

// BenchmarkObserve measures one frame of a 15 fps door camera with two
// people in view, against a gallery of all 1286 real descriptors. People
// walk in pairs for 3 s each; every pair is two new tracks, so the frames
// include the embeddings, searches and decisions of a busy entrance, with
// the embedding itself precomputed (it is the caller's cost).
func BenchmarkObserve(b *testing.B) {
	set := loadIdols(b)
	g := enroll.NewGallery(model)
	var ts []enroll.Template
	var people [][]face.Embedding
	for _, id := range set.ids {
		for _, e := range set.faces[id] {
			ts = append(ts, enroll.Template{CustomerID: id, Embedding: e, Model: model})
		}
		people = append(people, set.faces[id])
	}
	g.Load(ts)
	if len(ts) != 1286 {
		b.Fatalf("%d descriptors, want 1286", len(ts))
	}
	svc, err := checkin.NewService(testConfig(), g)
	if err != nil {
		b.Fatal(err)
	}
	svc.Notifier = &recorder{}
	svc.Logger = slog.New(slog.DiscardHandler)
	ctx := context.Background()

	const visit = 45 // frames per pair of people
	dets := make([]checkin.Detection, 2)
	var owner [2][]face.Embedding
	var calls [2]int
	embed := func(i int) (face.Embedding, error) {
		e := owner[i][calls[i]%len(owner[i])]
		calls[i]++
		return e, nil
	}
	f := 0
	for b.Loop() {
		pair, n := f/visit, f%visit
		if n == 0 {
			for i := range 2 {
				owner[i] = people[(2*pair+i)%len(people)]
				calls[i] = 0
			}
		}
		// Alternate sides of the door so a new pair never links to the
		// tracks of the previous one.
		x := 100 + 900*(pair%2)
		for i := range dets {
			s := 80 + 2*n
			x0, y0 := x+400*i+3*n, 200+n
			dets[i] = checkin.Detection{
				Box:     image.Rect(x0, y0, x0+s, y0+s),
				Quality: face.Quality{SizePx: s, Sharpness: 120, Frontal: 0.9, Brightness: 120},
				Score:   0.9,
			}
		}
		if err := svc.Observe(ctx, "door-1", t0.Add(fps15*time.Duration(f)), dets, embed); err != nil {
			b.Fatal(err)
		}
		f++
	}
	st := svc.Stats.Snapshot()
	b.ReportMetric(float64(st.Embeddings)/float64(f), "embeds/frame")
	b.ReportMetric(float64(st.Arrivals+st.Suppressed)/float64(st.TracksStarted), "decided/track")
}
