package vision_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"concierge/internal/testenv"
	"concierge/vision"
)

// The per-frame costs of watching a lobby, in CPU time (getrusage: every
// thread of the process, FFmpeg's included), which other work on a shared
// machine disturbs far less than wall time:
//
//	go test ./vision -run XXX -bench 'Decode|MotionGate' -benchtime 1x
//
// Each iteration reads a whole clip; the figures are per frame.

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readClip reads every frame of a clip, converted to BGR (Read) or only
// decoded (a stride passing frames over), and returns the frame count.
func readClip(b *testing.B, clip string, stride int) int {
	src, err := vision.NewSource(vision.SourceConfig{Source: clip})
	if err != nil {
		b.Fatal(err)
	}
	src.SetStride(stride)
	src.Run(context.Background(), func(vision.Frame) {})
	return int(src.Stats.Frames.Load())
}

// BenchmarkDecode is the cost of decoding a 720p, 15 fps still lobby by
// codec and by how much sensor noise the encoder kept (its bit rate), and
// of the real H.264 clips of the shared data; "stride2" passes every other
// frame over, as a camera does once the lobby has been idle for a while.
func BenchmarkDecode(b *testing.B) {
	dir := b.TempDir()
	type clip struct{ name, path string }
	var clips []clip
	for _, c := range []struct {
		file  string
		noise float64
	}{{"still.avi", 0}, {"still.mp4", 0}, {"noise3.mp4", 3}, {"noise5.mp4", 5}, {"noise6.mp4", 6}} {
		p := filepath.Join(dir, c.file)
		if err := vision.WriteClip(p, vision.Scene{Width: 1280, Height: 720, FPS: 15, Seconds: 10, Noise: c.noise}); err != nil {
			b.Fatal(err)
		}
		clips = append(clips, clip{c.file, p})
	}
	for _, c := range clips {
		benchDecode(b, c.name, c.path, 15)
	}
	b.Run("real", func(b *testing.B) {
		dir := testenv.Shared(b, "data/video")
		for _, v := range []string{"d0.mp4", "d11.mp4"} {
			benchDecode(b, v, filepath.Join(dir, v), 25) // both 512×512 at 25 fps
		}
	})
}

func benchDecode(b *testing.B, name, path string, fps float64) {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, stride := range []int{1, 2} {
		b.Run(fmt.Sprintf("%s/stride%d", name, stride), func(b *testing.B) {
			readClip(b, path, stride) // the page cache, the decoder's first allocations
			frames, c0 := 0, cpuTime()
			for b.Loop() {
				frames += readClip(b, path, stride)
			}
			b.ReportMetric(float64((cpuTime()-c0).Microseconds())/1000/float64(frames), "cpu-ms/frame")
			b.ReportMetric(float64(st.Size())*8/1000/(float64(frames/b.N)/fps), "kbit/s")
		})
	}
}

// BenchmarkMotionGate is the gate alone on a 720p frame.
func BenchmarkMotionGate(b *testing.B) {
	frame := frame720(b)
	other := gocv.NewMat()
	defer other.Close()
	frame.CopyTo(&other)
	gate := vision.NewMotionGate(0)
	defer gate.Close()
	gate.Moved(frame)
	frames, c0 := 0, cpuTime()
	for b.Loop() {
		gate.Moved(other)
		frames++
	}
	b.ReportMetric(float64((cpuTime()-c0).Microseconds())/1000/float64(frames), "cpu-ms/frame")
}
