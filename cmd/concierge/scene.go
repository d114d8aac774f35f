package main

import (
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"

	"concierge"
	"concierge/enroll"
	"concierge/vision"
)

// demoPerson is someone in the demo's world: a face in one of the demo
// photos, enrolled as a customer or (with no id) a stranger.
type demoPerson struct {
	id, name, photo string
	face            int // index of the face in the photo, left to right
}

var (
	demoCustomers = []demoPerson{
		{"C1001", "王女士 Ms Wang", "sample2.jpg", 0},
		{"C1002", "李女士 Ms Li", "sample6.jpg", 2},
		{"C1003", "赵女士 Ms Zhao", "sample3.jpg", 1},
	}
	demoStrangers = []demoPerson{
		{photo: "sample4.jpg", face: 0},
		{photo: "sample5.jpg", face: 3},
	}
)

// demoShots are the kiosk-style enrollment shots cut from a photo: other
// framing, size and JPEG quality than the photo identified later.
var demoShots = []struct {
	margin, scale float64
	quality       int
}{{0.6, 1.0, 90}, {0.9, 0.75, 70}, {0.4, 1.3, 85}}

// demoWorld holds the demo's people: their source photos and face boxes.
type demoWorld struct {
	photos string
	srcs   map[string][]byte
	boxes  map[demoPerson]image.Rectangle
}

func loadDemoWorld(ctx context.Context, app *faceApp, photos string) (*demoWorld, error) {
	w := &demoWorld{photos: photos, srcs: map[string][]byte{}, boxes: map[demoPerson]image.Rectangle{}}
	// The people are named by dlib's detections, whatever engine enrolls them.
	dlib, err := app.dlib(app.svc.Logger)
	if err != nil {
		return nil, err
	}
	for _, p := range append(append([]demoPerson(nil), demoCustomers...), demoStrangers...) {
		src, err := w.read(p.photo)
		if err != nil {
			return nil, err
		}
		faces, err := dlib.Detect(ctx, src)
		if err != nil {
			return nil, fmt.Errorf("demo %s: %w", p.photo, err)
		}
		if p.face >= len(faces) {
			return nil, fmt.Errorf("demo %s: expected at least %d faces, found %d", p.photo, p.face+1, len(faces))
		}
		w.boxes[p] = faces[p.face].Box
	}
	return w, nil
}

func (w *demoWorld) read(name string) ([]byte, error) {
	if b, ok := w.srcs[name]; ok {
		return b, nil
	}
	b, err := os.ReadFile(filepath.Join(w.photos, name))
	if err != nil {
		return nil, concierge.Errorf(concierge.ENOTFOUND, "demo photo %s: %w (deploy/setup.sh fetches them)", name, err)
	}
	w.srcs[name] = b
	return b, nil
}

// enroll enrolls every demo customer from three shots each.
func (w *demoWorld) enroll(ctx context.Context, svc *enroll.Service) ([]enroll.Result, error) {
	var out []enroll.Result
	for _, c := range demoCustomers {
		var shots []enroll.Photo
		for i, s := range demoShots {
			b, err := vision.Reframe(w.srcs[c.photo], w.boxes[c], s.margin, s.scale, s.quality)
			if err != nil {
				return nil, err
			}
			shots = append(shots, enroll.Photo{Name: fmt.Sprintf("%s-shot%d.jpg", c.id, i+1), Data: b})
		}
		res, err := svc.Enroll(ctx, enroll.Request{
			CustomerID: c.id, DisplayName: c.name, Photos: shots,
			Consent: enroll.Consent{Reference: "DEMO-" + c.id, TextVersion: "v1", Channel: "demo"},
		})
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, nil
}

// person returns a head-and-shoulders cut of p for a clip.
func (w *demoWorld) person(p demoPerson) ([]byte, error) {
	return vision.Reframe(w.srcs[p.photo], w.boxes[p], 0.7, 1, 92)
}

// walkIn is a person entering: small and far at first, growing as they
// come to the door, standing a moment, then leaving to the side.
func walkIn(photo []byte, start float64, x int) vision.Actor {
	return vision.Actor{Photo: photo, Keys: []vision.Key{
		{T: start, X: x, Y: 300, Height: 120},
		{T: start + 1.5, X: x + 40, Y: 330, Height: 300},
		{T: start + 2.5, X: x + 60, Y: 340, Height: 320},
		{T: start + 3, X: x + 500, Y: 340, Height: 320},
	}}
}

// doorClip writes the demo's entrance clip: Ms Wang walks in, a stranger,
// Ms Li, a second stranger together with Ms Zhao, then Ms Wang again (inside
// her cooldown, so no second alert). 1280×720 at 15 fps, like an entrance
// camera's substream.
func (w *demoWorld) doorClip(path string) (seconds float64, err error) {
	cut := func(p demoPerson) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		b, err = w.person(p)
		return b
	}
	wang, li, zhao := cut(demoCustomers[0]), cut(demoCustomers[1]), cut(demoCustomers[2])
	s1, s2 := cut(demoStrangers[0]), cut(demoStrangers[1])
	if err != nil {
		return 0, err
	}
	seconds = 22
	err = vision.WriteClip(path, vision.Scene{Width: 1280, Height: 720, FPS: 15, Seconds: seconds, Actors: []vision.Actor{
		walkIn(wang, 1, 350),
		walkIn(s1, 5, 450),
		walkIn(li, 9, 300),
		walkIn(s2, 13, 150),
		walkIn(zhao, 13.3, 750),
		walkIn(wang, 18, 400),
	}})
	return seconds, err
}
