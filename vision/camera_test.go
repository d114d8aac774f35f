package vision_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/vision"
)

// arrivals is the check-in service's notifier in these tests: it keeps the
// arrivals it is given.
type arrivals struct {
	mu   sync.Mutex
	list []checkin.Arrival
}

func (a *arrivals) Notify(_ context.Context, arr checkin.Arrival, _ []checkin.RiskFlag) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, arr)
	return nil
}

// enrolledService is a check-in service whose gallery holds the PaddleX
// MobileFaceNet embedding of the one face in photo, under customer id, with
// the rule the daemon ships for that engine (docs/accuracy.md).
func enrolledService(t *testing.T, photo []byte, id string) (*checkin.Service, *arrivals, vision.Embedder) {
	t.Helper()
	net := newMFN(t, vision.MFNPaddleX)
	img := decodeBytes(t, photo)
	dets, err := newYuNet(t).Detect(img, vision.DefaultYuNetScore)
	if err != nil || len(dets) != 1 {
		t.Fatalf("enrollment photo: %d faces, %v", len(dets), err)
	}
	emb := vision.AlignedEmbedder{Net: net, Flip: true}
	e, err := emb.EmbedDetection(context.Background(), img, dets[0])
	if err != nil {
		t.Fatal(err)
	}
	g := enroll.NewGallery(emb.Model())
	g.Load([]enroll.Template{{CustomerID: id, Embedding: e, Model: emb.Model()}})
	cfg := checkin.DefaultConfig()
	cfg.Threshold, cfg.Margin = 0.80, 0.08
	cfg.MinEmbedInterval = 130 * time.Millisecond
	cfg.Votes = 2
	svc, err := checkin.NewService(cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	rec := &arrivals{}
	svc.Notifier = rec
	return svc, rec, emb
}

// An empty lobby is watched on one frame in two, the others only decoded;
// the customer who then walks in is still seen on every frame from the
// first motion on, recognised, and the vote that decides comes from the
// frame right after the first, detected out of turn for it.
func TestCameraIdleStrideAndConfirmation(t *testing.T) {
	photo := faceShot(t, "sample2.jpg", 0)
	svc, rec, emb := enrolledService(t, photo, "C1")
	clip := filepath.Join(t.TempDir(), "lobby.mp4")
	err := vision.WriteClip(clip, vision.Scene{Width: 640, Height: 360, FPS: 15, Seconds: 8, Noise: 2, Actors: []vision.Actor{{
		Photo: photo, Keys: []vision.Key{{T: 4, X: 200, Y: 180, Height: 150}, {T: 6, X: 300, Y: 180, Height: 260}, {T: 7.5, X: 320, Y: 180, Height: 260}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	cam, err := vision.NewCamera(vision.CameraConfig{ID: "door", MinFacePx: 40, DetectInterval: 120 * time.Millisecond,
		Linger: 500 * time.Millisecond, IdleAfter: 1500 * time.Millisecond, Source: vision.SourceConfig{Source: clip}},
		newYuNet(t), emb, svc)
	if err != nil {
		t.Fatal(err)
	}
	cam.Run(context.Background())

	src, st := &cam.Source().Stats, &cam.Stats
	// Idle from 1.5 s after the first frame until the person appears at
	// 4 s: about 2.5 s, 37 frames, half of them passed over.
	if src.Frames.Load() != 120 || src.Passed.Load() < 15 || src.Passed.Load() > 20 ||
		st.Frames.Load()+src.Passed.Load() != 120 || st.Idle.Load() < 15 {
		t.Fatalf("frames %d, passed over %d, looked at %d (%d idle)", src.Frames.Load(), src.Passed.Load(), st.Frames.Load(), st.Idle.Load())
	}
	if len(rec.list) != 1 || rec.list[0].CustomerID != "C1" {
		t.Fatalf("arrivals %+v, want one for C1", rec.list)
	}
	a := rec.list[0]
	if d := a.At.Sub(a.FirstSeen); d < 60*time.Millisecond || d > 70*time.Millisecond {
		t.Errorf("decided %v after the first usable face, want one frame", d)
	}
	if st.Eager.Load() == 0 {
		t.Error("no detection out of turn for the confirming vote")
	}
}

func TestCameraConfig(t *testing.T) {
	_, err := vision.NewCamera(vision.CameraConfig{ID: "door", Linger: 2 * time.Second, IdleAfter: time.Second,
		Source: vision.SourceConfig{Source: "x.mp4"}}, nil, nil, nil)
	if err == nil {
		t.Fatal("accepted idle after shorter than linger")
	}
}
