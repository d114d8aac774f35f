package replay

import (
	"context"
	"slices"
	"sync"
	"time"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
	"concierge/vision"
)

// Trace is how near a clip's faces came to the customer it shows: what
// tells a miss on a far face (every face beyond the threshold) from a miss
// by the rule (faces near, the fused embedding not, or too few of them).
type Trace struct {
	// Faces is how many faces check-in embedded.
	Faces int `json:"faces"`
	// Nearest are the distances to the customer of the nearest of those
	// faces, nearest first (at most NearestFaces).
	Nearest []float64 `json:"nearest_faces"`
	// Fused is the distance to the customer of the nearest fused embedding
	// check-in searched (a track's faces so far, quality-weighted), of
	// FusedSearches; nil when it searched none, because no face named
	// anyone within the threshold plus the face slack.
	Fused         *float64 `json:"fused"`
	FusedSearches int      `json:"fused_searches"`
}

// NearestFaces is how many face distances a Trace keeps.
const NearestFaces = 3

// tracer stands between the cameras and check-in, and between check-in and
// the gallery, in a play that names the customer the clip shows. It notes
// the distance to that customer of every face check-in embeds and of every
// fused embedding it searches, and changes nothing: the same faces reach
// check-in, the same searches get the same answers. Only distances are
// kept, never an embedding.
type tracer struct {
	svc     *checkin.Service
	gallery *enroll.Gallery
	expect  string

	mu      sync.Mutex
	pending int // faces embedded whose search is still to come
	faces   []float64
	fused   []float64
}

var (
	_ vision.Observer = (*tracer)(nil)
	_ checkin.Matcher = (*tracer)(nil)
)

// Observe counts the faces check-in has embedded: check-in searches each
// face as soon as its embedding is back, and the fused embeddings after.
func (t *tracer) Observe(ctx context.Context, camera string, at time.Time, dets []checkin.Detection, embed checkin.EmbedFunc) error {
	if embed != nil {
		inner := embed
		embed = func(i int) (face.Embedding, error) {
			e, err := inner(i)
			if err == nil {
				t.mu.Lock()
				t.pending++
				t.mu.Unlock()
			}
			return e, err
		}
	}
	return t.svc.Observe(ctx, camera, at, dets, embed)
}

// Awaiting and EndCamera pass on to check-in, so that the camera detects
// out of turn and ends its tracks at the end of the clip exactly as it
// would without the tracer.
func (t *tracer) Awaiting(camera string, at time.Time) bool { return t.svc.Awaiting(camera, at) }

func (t *tracer) EndCamera(camera string, at time.Time) { t.svc.EndCamera(camera, at) }

func (t *tracer) Search(probe *face.Embedding, exclude ...string) (enroll.Match, bool) {
	d, ok := t.distance(probe)
	t.mu.Lock()
	isFace := t.pending > 0
	if isFace {
		t.pending--
	}
	if ok && isFace {
		t.faces = append(t.faces, d)
	} else if ok {
		t.fused = append(t.fused, d)
	}
	t.mu.Unlock()
	return t.gallery.Search(probe, exclude...)
}

// distance is the probe's distance to the expected customer, as the
// gallery scores it.
func (t *tracer) distance(probe *face.Embedding) (float64, bool) {
	for _, m := range t.gallery.Nearest(probe, t.gallery.Customers()) {
		if m.CustomerID == t.expect {
			return m.Distance, true
		}
	}
	return 0, false
}

func (t *tracer) result() *Trace {
	t.mu.Lock()
	defer t.mu.Unlock()
	faces := append([]float64{}, t.faces...)
	slices.Sort(faces)
	tr := &Trace{Faces: len(faces), Nearest: faces[:min(len(faces), NearestFaces)], FusedSearches: len(t.fused)}
	if len(t.fused) > 0 {
		f := slices.Min(t.fused)
		tr.Fused = &f
	}
	return tr
}
