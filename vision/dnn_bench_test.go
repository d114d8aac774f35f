package vision_test

import (
	"context"
	"image"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"concierge/internal/testenv"
	"concierge/models"
	"concierge/vision"
)

// Run with: go test ./vision -run XXX -bench . -benchtime 20x
//
// Every benchmark makes one untimed call first: OpenCV allocates a net's
// buffers on its first forward pass, which a service pays once at start.

// frame720 is sample1 cut to 16:9 (all its faces kept) and scaled to
// 1280×720, the frame an entrance camera delivers.
func frame720(b *testing.B) gocv.Mat {
	b.Helper()
	img := photoMat(b, "sample1.jpg")
	cut := img.Region(image.Rect(0, 100, 1920, 1180))
	defer cut.Close()
	frame := gocv.NewMat()
	b.Cleanup(func() { frame.Close() })
	gocv.Resize(cut, &frame, image.Pt(1280, 720), 0, 0, gocv.InterpolationArea)
	return frame
}

// BenchmarkYuNet640 is one camera frame through letterbox, net, decoding and
// NMS: the per-frame cost of detection.
func BenchmarkYuNet640(b *testing.B) {
	y := newYuNet(b)
	frame := frame720(b)
	dets, err := y.Detect(frame, vision.DefaultYuNetScore)
	if err != nil || len(dets) != 3 {
		b.Fatalf("warm-up: %d faces, %v", len(dets), err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := y.Detect(frame, vision.DefaultYuNetScore); err != nil {
			b.Fatal(err)
		}
	}
}

// benchAlignEmbed is the per-face cost once detected: alignment and the
// embedding, with and without the flipped second pass.
func benchAlignEmbed(b *testing.B, kind vision.MFNKind) {
	y := newYuNet(b)
	m := newMFN(b, kind)
	img := photoMat(b, "sample6.jpg")
	dets, err := y.Detect(img, vision.DefaultYuNetScore)
	if err != nil || len(dets) == 0 {
		b.Fatalf("detect: %d faces, %v", len(dets), err)
	}
	lm := dets[0].Landmarks
	for _, flip := range []bool{false, true} {
		name := "noflip"
		if flip {
			name = "flip"
		}
		b.Run(name, func(b *testing.B) {
			embed := func() {
				a, err := vision.Align(img, lm)
				if err != nil {
					b.Fatal(err)
				}
				defer a.Close()
				if _, err := m.Embed(a, flip); err != nil {
					b.Fatal(err)
				}
			}
			embed()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				embed()
			}
		})
	}
}

func BenchmarkAlignEmbedPaddleX(b *testing.B) { benchAlignEmbed(b, vision.MFNPaddleX) }
func BenchmarkAlignEmbedFoamliu(b *testing.B) { benchAlignEmbed(b, vision.MFNFoamliu) }

// BenchmarkDNNEnginePhoto is DNNEngine.Detect on the photo
// BenchmarkDetectPhoto gives the dlib engine: decode, detect, align and
// embed every face (PaddleX with flip), so the two engines compare per photo.
func BenchmarkDNNEnginePhoto(b *testing.B) {
	e, err := vision.NewDNNEngine(filepath.Dir(testenv.Shared(b, "models/"+models.YuNet)), 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	data := testenv.ReadPhoto(b, "sample1.jpg")
	if faces, err := e.Detect(context.Background(), data); err != nil || len(faces) != 3 {
		b.Fatalf("warm-up: %d faces, %v", len(faces), err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Detect(context.Background(), data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefine is the extra cost of finding a small face's landmarks
// again at full resolution before it is embedded: one YuNet pass on a crop
// three times the face, for a face of a door camera: sample1 shrunk so
// that its faces are about 60 px, in the corner of a 1280×720 frame.
func BenchmarkRefine(b *testing.B) {
	y := newYuNet(b)
	img := photoMat(b, "sample1.jpg")
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(img, &small, image.Point{}, 0.3, 0.3, gocv.InterpolationArea)
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 90, 90, 0), 720, 1280, gocv.MatTypeCV8UC3)
	defer frame.Close()
	dst := frame.Region(image.Rect(0, 0, small.Cols(), small.Rows()))
	small.CopyTo(&dst)
	dst.Close()
	dets, err := y.Detect(frame, vision.DefaultYuNetScore)
	if err != nil || len(dets) == 0 {
		b.Fatalf("detect: %d faces, %v", len(dets), err)
	}
	if _, ok, err := y.Refine(frame, dets[0], 0.3); !ok || err != nil {
		b.Fatalf("warm-up: refined %v, %v", ok, err)
	}
	b.Logf("face %d px in the frame, %d px in the detector's input", dets[0].Box.Dx(), dets[0].Box.Dx()/2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := y.Refine(frame, dets[0], 0.3); err != nil {
			b.Fatal(err)
		}
	}
}
