package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"concierge/enroll"
	"concierge/internal/testenv"
	"concierge/vision"
)

// framesOf keeps frames n0, n1, … of a clip as JPEG photos.
func framesOf(t *testing.T, clip string, at ...int64) []enroll.Photo {
	t.Helper()
	src, err := vision.NewSource(vision.SourceConfig{Source: clip})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]bool{}
	for _, n := range at {
		want[n] = true
	}
	var photos []enroll.Photo
	src.Run(context.Background(), func(f vision.Frame) {
		if !want[f.Seq] {
			return
		}
		b, err := vision.EncodeJPEG(f.Mat, 92)
		if err != nil {
			t.Error(err)
			return
		}
		photos = append(photos, enroll.Photo{Name: fmt.Sprintf("%s#%d", filepath.Base(clip), f.Seq), Data: b})
	})
	if len(photos) != len(at) {
		t.Fatalf("%s: kept %d of %d frames", clip, len(photos), len(at))
	}
	return photos
}

// Real footage (../shared/data/video: real people turning their heads and
// changing expression): a person enrolled from three frames of their clip's
// first second is announced exactly once over the whole clip; the people of
// other clips, never enrolled, are never announced.
func TestRealClips(t *testing.T) {
	dir := testenv.Shared(t, "data/video")
	testenv.Shared(t, "models/face_detection_yunet_2023mar.onnx")
	cfg := DefaultConfig()
	cfg.Branch = "t1"
	cfg.DB = filepath.Join(t.TempDir(), "c.db")
	cfg.Models.Dir = testenv.ModelsDir(t)
	cfg.Vision.Pool = 1
	cfg.resolveEngine()
	app, err := openFaceAppFor(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	enrolled := filepath.Join(dir, "d11.mp4")
	res, err := app.svc.Enroll(context.Background(), enroll.Request{CustomerID: "C11", DisplayName: "客户 Eleven",
		Photos: framesOf(t, enrolled, 1, 12, 24), Consent: enroll.Consent{Reference: "F-11", TextVersion: "v1"}})
	if err != nil || res.Templates < 2 {
		t.Fatalf("enroll from frames: %+v, %v", res, err)
	}
	for _, tc := range []struct {
		clip string
		want int
	}{{"d11.mp4", 1}, {"d18.mp4", 0}, {"d19.mp4", 0}, {"d20.mp4", 0}, {"d12.mp4", 0}} {
		t.Run(tc.clip, func(t *testing.T) {
			r, err := benchPipeline(context.Background(), app, cfg, tc.clip, filepath.Join(dir, tc.clip), false, 1)
			if err != nil {
				t.Fatal(err)
			}
			if int(r.alerts) != tc.want || (tc.want == 1 && !r.customers["C11"]) {
				t.Fatalf("%d alerts for %v over %d frames (%d embeddings), want %d", r.alerts, r.customers, r.frames, r.embeddings, tc.want)
			}
			t.Logf("%s: %d frames, %d embeddings, %d alerts", tc.clip, r.frames, r.embeddings, r.alerts)
		})
	}
}
