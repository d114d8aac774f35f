package checkin_test

import (
	"context"
	"fmt"
	"image"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/face"
)

// namesNobody returns descriptors of strangers that the base rule takes for
// no customer.
func (p *population) namesNobody(tb testing.TB, n int) []face.Embedding {
	tb.Helper()
	var out []face.Embedding
	for _, id := range p.strangers {
		for _, e := range p.set.faces[id] {
			if m, ok := p.gallery.Search(&e); !ok || !defaultRule().Accept(m) {
				out = append(out, e)
			}
			if len(out) == n {
				return out
			}
		}
	}
	tb.Fatalf("only %d stranger descriptors name nobody", len(out))
	return nil
}

// A track whose faces name nobody is embedded every MinEmbedInterval; once
// one names a customer, the confirming embedding comes from the next frame
// (ConfirmInterval), since it may decide an arrival.
func TestConfirmInterval(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 2)
	nobody := p.namesNobody(t, 1)
	cfg := testConfig()
	cfg.MaxEmbeddings = 3 // the cadence is pinned, not what the fused rule makes of it
	svc, _ := newService(t, cfg, p.gallery)
	// A face that does not grow, so no embedding is due to a quality gain.
	w := &walker{from: 0, to: 30, x: 300, y: 200, size: 100, dx: 2,
		probes: append(nobody, p.recognisable(id, defaultRule())[:2]...)}
	var frames []int
	for f := range 30 {
		det := []checkin.Detection{{Box: w.box(f), Quality: face.Quality{SizePx: 100, Sharpness: 120, Frontal: 0.9, Brightness: 120}}}
		err := svc.Observe(context.Background(), "door-1", t0.Add(time.Duration(f)*fps15), det, func(int) (face.Embedding, error) {
			e := w.probes[len(frames)%len(w.probes)]
			frames = append(frames, f)
			return e, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// 300 ms is 4.5 frames at 15 fps: the second embedding is at frame 5;
	// it names the customer, so the third is at frame 6.
	if fmt.Sprint(frames) != "[0 5 6]" {
		t.Fatalf("embedded at frames %v, want [0 5 6]", frames)
	}

	// Without the faster confirmation the cadence stays even.
	cfg.ConfirmInterval = cfg.MinEmbedInterval
	svc, _ = newService(t, cfg, p.gallery)
	frames = frames[:0]
	for f := range 30 {
		det := []checkin.Detection{{Box: w.box(f), Quality: face.Quality{SizePx: 100, Sharpness: 120, Frontal: 0.9, Brightness: 120}}}
		svc.Observe(context.Background(), "door-1", t0.Add(time.Duration(f)*fps15), det, func(int) (face.Embedding, error) {
			e := w.probes[len(frames)%len(w.probes)]
			frames = append(frames, f)
			return e, nil
		})
	}
	if fmt.Sprint(frames) != "[0 5 10]" {
		t.Fatalf("confirm_interval = min_embed_interval: embedded at frames %v, want [0 5 10]", frames)
	}
}

// Awaiting tells the camera when a frame may bring the confirming vote: a
// track seen in the last detected frame names a customer, is undecided,
// and ConfirmInterval has passed. Strangers, decided tracks and faces gone
// from view never make it detect out of turn.
func TestAwaiting(t *testing.T) {
	p := newPopulation(t, 24)
	id := p.customer(t, 0, 2)
	probes := p.recognisable(id, defaultRule())[:2]
	nobody := p.namesNobody(t, 1)[0]
	svc, rec := newService(t, testConfig(), p.gallery)
	ctx := context.Background()
	at := func(f int) time.Time { return t0.Add(time.Duration(f) * fps15) }
	det := func(f int) []checkin.Detection {
		return []checkin.Detection{{Box: image.Rect(300+2*f, 200, 400+2*f, 300),
			Quality: face.Quality{SizePx: 100, Sharpness: 120, Frontal: 0.9, Brightness: 120}}}
	}
	embedding := func(e face.Embedding) checkin.EmbedFunc {
		return func(int) (face.Embedding, error) { return e, nil }
	}
	observe := func(camera string, f int, dets []checkin.Detection, embed checkin.EmbedFunc) {
		t.Helper()
		if err := svc.Observe(ctx, camera, at(f), dets, embed); err != nil {
			t.Fatal(err)
		}
	}

	if svc.Awaiting("door-1", at(0)) {
		t.Fatal("awaiting on a camera never seen")
	}
	// A stranger naming nobody: the camera keeps its own pace.
	observe("side", 0, det(0), embedding(nobody))
	if svc.Awaiting("side", at(1)) {
		t.Fatal("awaiting a stranger's confirmation")
	}

	observe("door-1", 0, det(0), embedding(probes[0]))
	switch {
	case len(rec.got()) != 0:
		t.Fatal("decided on one vote")
	case svc.Awaiting("door-1", at(0).Add(30*time.Millisecond)):
		t.Fatal("awaiting before ConfirmInterval")
	case !svc.Awaiting("door-1", at(1)):
		t.Fatal("not awaiting the confirming vote")
	}
	// Frames the motion gate passes over (no detection) change nothing.
	observe("door-1", 1, nil, nil)
	if !svc.Awaiting("door-1", at(2)) {
		t.Fatal("a gated frame ended the wait")
	}
	// A detected frame without the face: they are out of view.
	observe("door-1", 2, []checkin.Detection{}, embedding(probes[1]))
	if svc.Awaiting("door-1", at(3)) {
		t.Fatal("awaiting a face that is no longer seen")
	}
	// Back in view: the confirming vote decides, and the wait is over.
	observe("door-1", 3, det(3), embedding(probes[1]))
	if got := rec.got(); len(got) != 1 || got[0].CustomerID != id {
		t.Fatalf("arrivals %+v", got)
	}
	if svc.Awaiting("door-1", at(4)) {
		t.Fatal("awaiting a decided track")
	}
}
