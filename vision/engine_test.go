package vision_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"sync"
	"testing"

	"concierge/face"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testengine"
	"concierge/vision"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testengine.Close()
	os.Exit(code)
}

// The counts are what dlib's HOG detector finds in the face-api demo photos;
// sample1 includes one false detection (a round badge), which is why
// enrollment insists on one usable face and checks quality.
func TestDetectCounts(t *testing.T) {
	e := testengine.Engine(t)
	for _, tc := range []struct {
		photo string
		faces int
	}{
		{"sample1.jpg", 4}, {"sample2.jpg", 1}, {"sample3.jpg", 3},
		{"sample4.jpg", 3}, {"sample5.jpg", 5}, {"sample6.jpg", 4},
	} {
		t.Run(tc.photo, func(t *testing.T) {
			faces, err := e.Detect(context.Background(), testenv.ReadPhoto(t, tc.photo))
			if err != nil {
				t.Fatal(err)
			}
			if len(faces) != tc.faces {
				t.Fatalf("found %d faces, want %d", len(faces), tc.faces)
			}
			for _, f := range faces {
				if f.Model != vision.ModelDlib || f.Quality.SizePx < 80 || f.Quality.Sharpness <= 0 {
					t.Errorf("face %v: model %q quality %+v", f.Box, f.Model, f.Quality)
				}
				lm := f.Landmarks
				if !lm.LeftEye.In(f.Box.Inset(-f.Box.Dx()/4)) || lm.LeftEye.X >= lm.RightEye.X || lm.Nose.Y <= lm.LeftEye.Y {
					t.Errorf("face %v: implausible landmarks %v", f.Box, lm)
				}
			}
		})
	}
}

// The same face re-framed, rescaled and re-compressed must embed close to the
// original, and far from everyone else in the photos.
func TestEmbeddingStableUnderReframing(t *testing.T) {
	e := testengine.Engine(t)
	ctx := context.Background()
	src := testenv.ReadPhoto(t, "sample6.jpg")
	faces, err := e.Detect(ctx, src)
	if err != nil || len(faces) != 4 {
		t.Fatalf("detect: %d faces, %v", len(faces), err)
	}
	for _, tc := range []struct {
		margin, scale float64
		quality       int
	}{{0.5, 1, 90}, {1.0, 0.6, 60}, {0.3, 1.5, 80}} {
		t.Run(fmt.Sprintf("m%.1f_s%.1f_q%d", tc.margin, tc.scale, tc.quality), func(t *testing.T) {
			b, err := vision.Reframe(src, faces[2].Box, tc.margin, tc.scale, tc.quality)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Detect(ctx, b)
			if err != nil || len(got) != 1 {
				t.Fatalf("reframed photo: %d faces, %v", len(got), err)
			}
			for i := range faces {
				d := face.Distance(&got[0].Embedding, &faces[i].Embedding)
				if i == 2 && d > 0.2 {
					t.Errorf("same face: distance %.3f, want <= 0.2", d)
				}
				if i != 2 && d < 0.45 {
					t.Errorf("other face %d: distance %.3f, want >= 0.45", i, d)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	e := testengine.Engine(t)
	jpeg := testenv.ReadPhoto(t, "sample2.jpg")
	var bigPNG bytes.Buffer
	if err := png.Encode(&bigPNG, image.NewGray(image.Rect(0, 0, 7000, 6000))); err != nil {
		t.Fatal(err)
	}
	small := image.NewRGBA(image.Rect(0, 0, 64, 48))
	small.Set(1, 1, color.White)
	var smallPNG bytes.Buffer
	png.Encode(&smallPNG, small)

	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, vision.ErrEmpty},
		{"text", []byte("customer list\nC1,Wang\n"), vision.ErrNotImage},
		{"gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), vision.ErrNotImage},
		{"truncated jpeg", jpeg[:len(jpeg)/2], vision.ErrTruncated},
		{"jpeg header only", jpeg[:600], vision.ErrTruncated},
		{"truncated png", smallPNG.Bytes()[:smallPNG.Len()-20], vision.ErrTruncated},
		{"42 megapixels", bigPNG.Bytes(), vision.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faces, err := e.Detect(context.Background(), tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ie *vision.InputError
			if !errors.As(err, &ie) || !ie.BadInput() || faces != nil {
				t.Fatalf("err %T %v, faces %v: want *vision.InputError and no faces", err, err, faces)
			}
		})
	}
	// A valid image without faces is not an error.
	faces, err := e.Detect(context.Background(), smallPNG.Bytes())
	if err != nil || len(faces) != 0 {
		t.Fatalf("blank PNG: %v faces, err %v", len(faces), err)
	}
}

// Concurrent calls share the recogniser pool and must give exactly what
// serial calls give.
func TestConcurrentDetectMatchesSerial(t *testing.T) {
	e := testengine.Engine(t)
	ctx := context.Background()
	photos := []string{"sample2.jpg", "sample3.jpg", "sample6.jpg"}
	want := map[string][]face.Face{}
	for _, p := range photos {
		f, err := e.Detect(ctx, testenv.ReadPhoto(t, p))
		if err != nil {
			t.Fatal(err)
		}
		want[p] = f
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for g := 0; g < 12; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			p := photos[g%len(photos)]
			got, err := e.Detect(ctx, testenv.ReadPhoto(t, p))
			if err != nil {
				errs <- err
				return
			}
			if len(got) != len(want[p]) {
				errs <- fmt.Errorf("%s: %d faces, want %d", p, len(got), len(want[p]))
				return
			}
			for i := range got {
				if got[i].Box != want[p][i].Box || got[i].Embedding != want[p][i].Embedding {
					errs <- fmt.Errorf("%s face %d differs from the serial result", p, i)
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDetectCancelled(t *testing.T) {
	e := testengine.Engine(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Detect(ctx, testenv.ReadPhoto(t, "sample2.jpg")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func BenchmarkDetectPhoto(b *testing.B) {
	e := testengine.Engine(b)
	data := testenv.ReadPhoto(b, "sample1.jpg")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Detect(context.Background(), data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEmbedOneFace measures one face photo (a 1-face crop), the cost
// per enrollment shot or per chosen frame of a track.
func BenchmarkEmbedOneFace(b *testing.B) {
	e := testengine.Engine(b)
	src := testenv.ReadPhoto(b, "sample2.jpg")
	faces, err := e.Detect(context.Background(), src)
	if err != nil || len(faces) != 1 {
		b.Fatal(err)
	}
	crop, err := vision.Reframe(src, faces[0].Box, 0.3, 1, 95)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Detect(context.Background(), crop); err != nil {
			b.Fatal(err)
		}
	}
}
