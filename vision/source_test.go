package vision_test

import (
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"concierge/internal/testenv"
	"concierge/internal/testenv/testengine"
	"concierge/vision"
)

// faceShot cuts one face of a demo photo with some room around it.
func faceShot(t testing.TB, photo string, i int) []byte {
	t.Helper()
	src := testenv.ReadPhoto(t, photo)
	faces, err := testengine.Engine(t).Detect(context.Background(), src)
	if err != nil || i >= len(faces) {
		t.Fatalf("%s: %d faces, %v", photo, len(faces), err)
	}
	b, err := vision.Reframe(src, faces[i].Box, 0.5, 1, 92)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeClip(t testing.TB, seconds float64, actors ...vision.Actor) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clip.avi")
	if err := vision.WriteClip(p, vision.Scene{Width: 640, Height: 360, FPS: 15, Seconds: seconds, Actors: actors}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClipRoundTrip(t *testing.T) {
	clip := writeClip(t, 2, vision.Actor{Photo: faceShot(t, "sample2.jpg", 0),
		Keys: []vision.Key{{T: 0, X: 100, Y: 180, Height: 120}, {T: 2, X: 500, Y: 180, Height: 200}}})
	src, err := vision.NewSource(vision.SourceConfig{Source: clip})
	if err != nil {
		t.Fatal(err)
	}
	var frames int
	var lastSeq int64
	err = src.Run(context.Background(), func(f vision.Frame) {
		frames++
		if f.Mat.Cols() != 640 || f.Mat.Rows() != 360 || f.Seq <= lastSeq {
			t.Errorf("frame %d: %dx%d seq %d", frames, f.Mat.Cols(), f.Mat.Rows(), f.Seq)
		}
		lastSeq = f.Seq
	})
	if err == nil {
		t.Fatal("a file without Loop or Reconnect must report its end")
	}
	// As fast as possible from a file: every frame, none dropped.
	if frames != 30 || src.Stats.Dropped.Load() != 0 {
		t.Fatalf("frames %d dropped %d, want 30 and 0", frames, src.Stats.Dropped.Load())
	}
}

// Skip passes over a file's first frames and keeps numbering the file's.
func TestSourceSkip(t *testing.T) {
	clip := writeClip(t, 2)
	for _, tc := range []struct {
		skip          int64
		frames, first int64
	}{{0, 30, 1}, {12, 18, 13}, {29, 1, 30}, {30, 0, 0}, {100, 0, 0}} {
		src, err := vision.NewSource(vision.SourceConfig{Source: clip, Skip: tc.skip})
		if err != nil {
			t.Fatal(err)
		}
		var frames, first int64
		src.Run(context.Background(), func(f vision.Frame) {
			if frames == 0 {
				first = f.Seq
			}
			frames++
		})
		if frames != tc.frames || first != tc.first || src.Stats.Frames.Load() != tc.frames {
			t.Errorf("skip %d: %d frames from %d (counted %d), want %d from %d", tc.skip, frames, first, src.Stats.Frames.Load(), tc.frames, tc.first)
		}
	}
	// A looping file skips again at every start, and its frame numbers and
	// times never go back.
	src, err := vision.NewSource(vision.SourceConfig{Source: clip, Skip: 12, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var seqs []int64
	var last vision.Frame
	src.Run(ctx, func(f vision.Frame) {
		if len(seqs) > 0 && (f.Seq <= last.Seq || !f.At.After(last.At)) {
			t.Errorf("frame %d at %v after frame %d at %v", f.Seq, f.At, last.Seq, last.At)
		}
		seqs = append(seqs, f.Seq)
		last = f
		if len(seqs) == 40 {
			cancel()
		}
	})
	if len(seqs) < 40 || seqs[0] != 13 || seqs[18] != 43 {
		t.Fatalf("looping with skip 12: frames %v, want 13..30 then 43..", seqs)
	}
}

// Place draws each frame, scaled, in the middle of a grey canvas.
func TestSourcePlace(t *testing.T) {
	clip := writeClip(t, 1, vision.Actor{Photo: faceShot(t, "sample2.jpg", 0),
		Keys: []vision.Key{{T: 0, X: 320, Y: 180, Height: 200}, {T: 1, X: 320, Y: 180, Height: 200}}})
	src, err := vision.NewSource(vision.SourceConfig{Source: clip, Place: &vision.Placement{Width: 1280, Height: 720, Scale: 0.25}})
	if err != nil {
		t.Fatal(err)
	}
	var frames int
	src.Run(context.Background(), func(f vision.Frame) {
		frames++
		if f.Mat.Cols() != 1280 || f.Mat.Rows() != 720 {
			t.Fatalf("frame %dx%d, want 1280x720", f.Mat.Cols(), f.Mat.Rows())
		}
		// The 640x360 frame shrinks to 160x90 in the middle: grey
		// outside it, the face shot's pixels inside.
		if v := f.Mat.GetVecbAt(10, 10); v[0] != 110 || v[1] != 110 || v[2] != 110 {
			t.Fatalf("corner %v, want grey", v)
		}
		if v := f.Mat.GetVecbAt(360, 640); v[0] == 110 && v[1] == 110 && v[2] == 110 {
			t.Fatalf("centre %v is the canvas, not the clip", v)
		}
		outside := f.Mat.Region(image.Rect(500, 300, 559, 420))
		defer outside.Close()
		if mean := outside.Mean(); mean.Val1 != 110 {
			t.Fatalf("the clip spills beyond its 160x90 box: %v", mean)
		}
	})
	if frames != 15 {
		t.Fatalf("%d frames, want 15", frames)
	}
	for _, p := range []vision.Placement{{Width: 1280, Height: 720, Scale: 0}, {Width: 1280, Height: 720, Scale: 1.5}, {Width: 8, Height: 720, Scale: 0.5}} {
		if _, err := vision.NewSource(vision.SourceConfig{Source: clip, Place: &p}); err == nil {
			t.Errorf("placement %+v accepted", p)
		}
	}
}

// A consumer slower than the camera sees the newest frames and the source
// counts the ones it skipped, instead of queueing them.
func TestSourceDropsStaleFrames(t *testing.T) {
	clip := writeClip(t, 2)
	src, _ := vision.NewSource(vision.SourceConfig{Source: clip, Realtime: true})
	var got atomic.Int64
	src.Run(context.Background(), func(f vision.Frame) {
		got.Add(1)
		time.Sleep(200 * time.Millisecond) // far slower than 15 fps
	})
	if got.Load()+src.Stats.Dropped.Load() != 30 || src.Stats.Dropped.Load() == 0 {
		t.Fatalf("consumed %d, dropped %d of 30", got.Load(), src.Stats.Dropped.Load())
	}
}

// An ended stream is reopened with backoff until the context ends.
func TestSourceReconnects(t *testing.T) {
	clip := writeClip(t, 0.5)
	src, _ := vision.NewSource(vision.SourceConfig{Source: clip, Reconnect: true, BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var frames atomic.Int64
	done := make(chan error)
	go func() { done <- src.Run(ctx, func(vision.Frame) { frames.Add(1) }) }()
	deadline := time.Now().Add(20 * time.Second)
	for src.Stats.Reconnects.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
	if src.Stats.Reconnects.Load() < 2 || frames.Load() < 14 {
		t.Fatalf("reconnects %d frames %d", src.Stats.Reconnects.Load(), frames.Load())
	}
}

func TestSourceMissing(t *testing.T) {
	src, _ := vision.NewSource(vision.SourceConfig{Source: filepath.Join(t.TempDir(), "none.mp4")})
	if err := src.Run(context.Background(), func(vision.Frame) {}); err == nil {
		t.Fatal("want an error for a missing file")
	}
	if _, err := os.Stat("none.mp4"); err == nil {
		t.Fatal("unexpected file")
	}
}

func TestMotionGate(t *testing.T) {
	clip := writeClip(t, 3, vision.Actor{Photo: faceShot(t, "sample2.jpg", 0),
		Keys: []vision.Key{{T: 1, X: 100, Y: 180, Height: 120}, {T: 2, X: 500, Y: 180, Height: 200}}})
	src, _ := vision.NewSource(vision.SourceConfig{Source: clip})
	gate := vision.NewMotionGate(0)
	defer gate.Close()
	moved := map[int]bool{}
	src.Run(context.Background(), func(f vision.Frame) {
		_, m := gate.Moved(f.Mat)
		moved[int(f.Seq)] = m
	})
	// Frames 2..15: empty lobby; 17..30: a person walking; the first frame
	// always counts.
	for seq, m := range moved {
		switch {
		case seq == 1 && !m, seq > 1 && seq < 15 && m, seq > 17 && seq <= 30 && !m:
			t.Errorf("frame %d: moved=%v", seq, m)
		}
	}
}

// With a stride of 3 the consumer gets one frame in three; the frames in
// between are decoded but passed over, and frame numbers and times still
// count every frame of the file.
func TestSourceStride(t *testing.T) {
	clip := writeClip(t, 2)
	src, _ := vision.NewSource(vision.SourceConfig{Source: clip})
	src.SetStride(3)
	var seqs []int64
	var ats []time.Duration
	var first time.Time
	src.Run(context.Background(), func(f vision.Frame) {
		if len(seqs) == 0 {
			first = f.At
		}
		seqs = append(seqs, f.Seq)
		ats = append(ats, f.At.Sub(first))
	})
	if fmt.Sprint(seqs) != "[3 6 9 12 15 18 21 24 27 30]" {
		t.Fatalf("handed over frames %v", seqs)
	}
	if ats[1] != 3*(time.Second/15) {
		t.Errorf("frame 6 is %v after frame 3, want 200ms", ats[1])
	}
	if st := &src.Stats; st.Frames.Load() != 30 || st.Passed.Load() != 20 || st.Dropped.Load() != 0 {
		t.Fatalf("frames %d passed %d dropped %d, want 30, 20, 0", st.Frames.Load(), st.Passed.Load(), st.Dropped.Load())
	}
}
