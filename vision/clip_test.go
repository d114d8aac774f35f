package vision_test

import (
	"context"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"concierge/vision"
)

// firstFrames decodes the first n frames of a clip.
func firstFrames(t *testing.T, clip string, n int) []gocv.Mat {
	t.Helper()
	src, err := vision.NewSource(vision.SourceConfig{Source: clip})
	if err != nil {
		t.Fatal(err)
	}
	var out []gocv.Mat
	src.Run(context.Background(), func(f vision.Frame) {
		if len(out) < n {
			out = append(out, f.Mat.Clone())
		}
	})
	t.Cleanup(func() {
		for _, m := range out {
			m.Close()
		}
	})
	return out
}

// meanAbsDiff is the mean absolute difference of two frames' pixels.
func meanAbsDiff(a, b gocv.Mat) float64 {
	d := gocv.NewMat()
	defer d.Close()
	gocv.AbsDiff(a, b, &d)
	s := d.Mean()
	return (s.Val1 + s.Val2 + s.Val3) / 3
}

// The extension picks the codec: MJPEG for .avi, H.264 for .mp4 and .mkv.
// The sensor noise is seeded, so a scene renders the same twice, and it
// really changes from frame to frame.
func TestWriteClipCodecsAndNoise(t *testing.T) {
	dir := t.TempDir()
	scene := vision.Scene{Width: 640, Height: 360, FPS: 15, Seconds: 1, Noise: 6}
	for _, name := range []string{"a.avi", "a.mp4", "b.mp4", "a.mkv"} {
		if err := vision.WriteClip(filepath.Join(dir, name), scene); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"a.avi", "a.mp4", "a.mkv"} {
		fs := firstFrames(t, filepath.Join(dir, name), 2)
		if len(fs) != 2 || fs[0].Cols() != 640 || fs[0].Rows() != 360 {
			t.Fatalf("%s: %d frames", name, len(fs))
		}
		// σ 6 noise gives a mean difference of about 6.8 between frames;
		// the codecs quantise much of it away (x264 at its default quality
		// keeps next to nothing of σ 3), but not all.
		d := meanAbsDiff(fs[0], fs[1])
		if d < 0.5 {
			t.Errorf("%s: frames 1 and 2 differ by %.2f on average: no noise", name, d)
		}
		t.Logf("%s: frames 1 and 2 differ by %.2f on average", name, d)
	}
	a, b := firstFrames(t, filepath.Join(dir, "a.mp4"), 1), firstFrames(t, filepath.Join(dir, "b.mp4"), 1)
	if d := meanAbsDiff(a[0], b[0]); d != 0 {
		t.Errorf("the same scene rendered twice differs by %.3f", d)
	}
	for _, bad := range []struct {
		name  string
		scene vision.Scene
	}{
		{"clip.mov", scene},
		{"clip.mp4", vision.Scene{Width: 640, Height: 360, FPS: 15, Seconds: 1, Noise: -1}},
		{"clip.mp4", vision.Scene{Width: 0, Height: 360, FPS: 15, Seconds: 1}},
	} {
		if err := vision.WriteClip(filepath.Join(dir, bad.name), bad.scene); err == nil {
			t.Errorf("%s %+v: no error", bad.name, bad.scene)
		}
	}
}

// The gate samples a 720p frame sparsely before averaging it: a camera's
// sensor noise must still not count as motion, in MJPEG or H.264, while a
// person walking in does.
func TestMotionGateIgnoresSensorNoise(t *testing.T) {
	photo := faceShot(t, "sample2.jpg", 0)
	for _, name := range []string{"noisy.avi", "noisy.mp4"} {
		t.Run(name, func(t *testing.T) {
			clip := filepath.Join(t.TempDir(), name)
			err := vision.WriteClip(clip, vision.Scene{Width: 1280, Height: 720, FPS: 15, Seconds: 3, Noise: 4, Actors: []vision.Actor{{
				Photo: photo, Keys: []vision.Key{{T: 2, X: 200, Y: 360, Height: 240}, {T: 3, X: 800, Y: 360, Height: 400}},
			}}})
			if err != nil {
				t.Fatal(err)
			}
			src, _ := vision.NewSource(vision.SourceConfig{Source: clip})
			gate := vision.NewMotionGate(0)
			defer gate.Close()
			moved := map[int64]bool{}
			src.Run(context.Background(), func(f vision.Frame) {
				_, moved[f.Seq] = gate.Moved(f.Mat)
			})
			if len(moved) != 45 {
				t.Fatalf("%d frames", len(moved))
			}
			// Frame 1 always counts; 2..30 are the empty lobby; from 31
			// on the person walks across.
			for seq := int64(2); seq <= 30; seq++ {
				if moved[seq] {
					t.Errorf("frame %d of the empty lobby counted as motion", seq)
				}
			}
			for seq := int64(32); seq <= 45; seq++ {
				if !moved[seq] {
					t.Errorf("frame %d: the person walking was not motion", seq)
				}
			}
		})
	}
}
