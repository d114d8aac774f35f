//go:build matprofile

package vision_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"concierge/vision"
)

// TestNoMatLeakCamera renders a clip with sensor noise, then runs a camera
// on it (source with its idle stride, motion gate, detection, embeddings
// for the check-in service) and checks that every Mat created on the way is
// closed.
//
//	go test ./vision -tags matprofile -run TestNoMatLeak
func TestNoMatLeakCamera(t *testing.T) {
	photo := faceShot(t, "sample2.jpg", 0)
	svc, rec, emb := enrolledService(t, photo, "C1")
	det := newYuNet(t)
	start := gocv.MatProfile.Count()
	clip := filepath.Join(t.TempDir(), "lobby.mp4")
	err := vision.WriteClip(clip, vision.Scene{Width: 640, Height: 360, FPS: 15, Seconds: 6, Noise: 3, Actors: []vision.Actor{{
		Photo: photo, Keys: []vision.Key{{T: 3, X: 200, Y: 180, Height: 200}, {T: 5, X: 300, Y: 180, Height: 260}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	cam, err := vision.NewCamera(vision.CameraConfig{ID: "door", MinFacePx: 40, DetectInterval: 120 * time.Millisecond,
		Linger: 500 * time.Millisecond, IdleAfter: time.Second, Source: vision.SourceConfig{Source: clip}}, det, emb, svc)
	if err != nil {
		t.Fatal(err)
	}
	cam.Run(context.Background())
	if cam.Source().Stats.Passed.Load() == 0 || cam.Stats.Embeddings.Load() == 0 || len(rec.list) != 1 {
		t.Fatalf("the run did not exercise the pipeline: passed %d, embeddings %d, arrivals %d",
			cam.Source().Stats.Passed.Load(), cam.Stats.Embeddings.Load(), len(rec.list))
	}
	if n := gocv.MatProfile.Count(); n != start {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("%d Mats live after the run, %d before it:\n%s", n, start, b.String())
	}
}
