package eval

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"concierge/face"
)

// halves is a w×h PNG, red on the left half and blue on the right; split
// makes it red up to column redUpTo.
func halves(w, h int) []byte { return split(w, h, w/2) }

func split(w, h, redUpTo int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{200, 0, 0, 255}
			if x >= redUpTo {
				c = color.RGBA{0, 0, 200, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func closeTo(c color.Color, r, g, b uint8) bool {
	cr, cg, cb, _ := c.RGBA()
	d := func(a uint32, b uint8) bool { x := int(a>>8) - int(b); return x > -30 && x < 30 }
	return d(cr, r) && d(cg, g) && d(cb, b)
}

func TestPad(t *testing.T) {
	src := halves(40, 20)
	for _, tc := range []struct {
		mode             PadMode
		corner, farRight [3]uint8
	}{
		{PadReplicate, [3]uint8{200, 0, 0}, [3]uint8{0, 0, 200}},
		{PadBlack, [3]uint8{0, 0, 0}, [3]uint8{0, 0, 0}},
	} {
		out, err := Pad(src, 0.5, tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("%s: output is not a JPEG: %v", tc.mode, err)
		}
		if b := img.Bounds(); b.Dx() != 80 || b.Dy() != 40 {
			t.Fatalf("%s: %v, want 80x40 (20 and 10 px added per side)", tc.mode, b)
		}
		c, f := tc.corner, tc.farRight
		if !closeTo(img.At(2, 2), c[0], c[1], c[2]) || !closeTo(img.At(77, 37), f[0], f[1], f[2]) {
			t.Errorf("%s: corner %v, far right %v", tc.mode, img.At(2, 2), img.At(77, 37))
		}
		// The photo itself sits in the middle, unchanged.
		if !closeTo(img.At(25, 20), 200, 0, 0) || !closeTo(img.At(55, 20), 0, 0, 200) {
			t.Errorf("%s: centre %v %v", tc.mode, img.At(25, 20), img.At(55, 20))
		}
	}
	if _, err := Pad([]byte("not an image"), 0.5, PadReplicate); err == nil {
		t.Fatal("garbage padded")
	}
	if _, err := Pad(src, 0.5, "mirror"); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

func TestShrink(t *testing.T) {
	// 40x20: the left half red, the right half blue.
	src := split(40, 20, 20)
	for _, tc := range []struct {
		side, w, h int
	}{{20, 20, 10}, {16, 16, 8}, {100, 40, 20}} {
		out, err := Shrink(src, tc.side)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
			t.Fatalf("side %d: %v, want %dx%d", tc.side, b, tc.w, tc.h)
		}
		// Averaging keeps each half's colour away from the seam (JPEG
		// blurs the seam itself).
		if !closeTo(img.At(1, tc.h/2), 200, 0, 0) || !closeTo(img.At(tc.w-2, tc.h/2), 0, 0, 200) {
			t.Errorf("side %d: colours %v, %v", tc.side, img.At(1, tc.h/2), img.At(tc.w-2, tc.h/2))
		}
	}
	if _, err := Shrink(src, 8); err == nil {
		t.Error("8 px accepted")
	}
	if _, err := Shrink([]byte("not a photo"), 64); err == nil {
		t.Error("garbage accepted")
	}
}

func TestPickFace(t *testing.T) {
	box := func(x0, y0, x1, y1 int) face.Face { return face.Face{Box: image.Rect(x0, y0, x1, y1)} }
	for _, tc := range []struct {
		name  string
		faces []face.Face
		want  int
	}{
		{"one", []face.Face{box(0, 0, 10, 10)}, 0},
		// A bystander slightly larger at the edge loses to the centred subject.
		{"central subject", []face.Face{box(0, 0, 110, 110), box(50, 50, 150, 150)}, 1},
		// A small face in the centre is background: the large one wins.
		{"tiny central face", []face.Face{box(10, 10, 110, 110), box(95, 95, 105, 105)}, 0},
	} {
		got, ok := PickFace(tc.faces, 200, 200)
		if !ok || got.Box != tc.faces[tc.want].Box {
			t.Errorf("%s: picked %v", tc.name, got.Box)
		}
	}
	if _, ok := PickFace(nil, 10, 10); ok {
		t.Error("picked a face from none")
	}
}

// colourDetector stands in for an engine: it "finds" a face in any photo
// whose centre is red, with an embedding that records the photo's width so
// the test sees the padding, and none otherwise.
type colourDetector struct{}

func (colourDetector) Model() string { return "colour" }

func (colourDetector) Detect(_ context.Context, data []byte) ([]face.Face, error) {
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	if !closeTo(img.At(b.Dx()/2-2, b.Dy()/2), 200, 0, 0) {
		return nil, nil
	}
	f := face.Face{Box: image.Rect(0, 0, b.Dx()/2, b.Dy()/2)}
	f.Embedding[0] = float32(b.Dx())
	return []face.Face{f}, nil
}

type brokenDetector struct{}

func (brokenDetector) Model() string { return "broken" }
func (brokenDetector) Detect(context.Context, []byte) ([]face.Face, error) {
	return nil, errors.New("engine down")
}

func TestEmbedFolder(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	red := halves(40, 20)    // centre-left is red: a face
	blue := split(40, 20, 0) // no red: no face
	write("train/Ann/a.png", red)
	write("validation/Ann/b.png", red)
	write("train/Bob/c.png", blue)
	write("train/Bob/notes.txt", []byte("ignored"))
	write("loose.png", red) // no label folder: ignored
	write("train/Cy/bad.jpg", []byte("not a photo"))

	e := &Embedder{Detector: colourDetector{}, Pad: 0.5, Workers: 2}
	set, err := e.EmbedFolder(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if set.Images != 4 || len(set.Samples) != 2 || len(set.Misses) != 2 || set.Model != "colour" {
		t.Fatalf("%d photos, %d faces, misses %+v, model %s", set.Images, len(set.Samples), set.Misses, set.Model)
	}
	for _, s := range set.Samples {
		if s.Label != "Ann" || s.Embedding[0] != 80 {
			t.Errorf("sample %s: label %s, width seen %v (want Ann, padded to 80)", s.Source, s.Label, s.Embedding[0])
		}
	}
	want := []Miss{{Image: filepath.Join("train", "Bob", "c.png"), Reason: "no_face"}}
	if set.Misses[0] != want[0] || set.Misses[1].Image != filepath.Join("train", "Cy", "bad.jpg") {
		t.Errorf("misses %+v", set.Misses)
	}
	if only, err := e.EmbedFolder(context.Background(), dir, []string{"Bob"}); err != nil || only.Images != 1 {
		t.Errorf("--labels Bob: %+v, %v", only, err)
	}
	_, err = (&Embedder{Detector: brokenDetector{}}).EmbedFolder(context.Background(), dir, nil)
	var de *DetectError
	if !errors.As(err, &de) {
		t.Errorf("broken engine: %v, want a DetectError", err)
	}
	if _, err := e.EmbedFolder(context.Background(), t.TempDir(), nil); err == nil {
		t.Error("an empty folder gave no error")
	}
}

func TestDedupe(t *testing.T) {
	e := func(v float32) face.Embedding { var x face.Embedding; x[0] = v; return x }
	set := &Set{Samples: []Sample{
		{Label: "A", Source: "a1", Embedding: e(0)},
		{Label: "A", Source: "a2", Embedding: e(0.05)}, // a1 again
		{Label: "A", Source: "a3", Embedding: e(0.5)},
		{Label: "B", Source: "b1", Embedding: e(2)},
		{Label: "C", Source: "c1", Embedding: e(2)}, // b1's photo filed under C too
		{Label: "C", Source: "c2", Embedding: e(3)},
	}}
	if err := set.Dedupe(0.1); err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, s := range set.Samples {
		kept = append(kept, s.Source)
	}
	if len(kept) != 3 || kept[0] != "a1" || kept[1] != "a3" || kept[2] != "c2" || len(set.Dropped) != 3 {
		t.Fatalf("kept %v, dropped %+v", kept, set.Dropped)
	}
	// The distances carried over are those of the kept faces.
	dm, err := set.matrix()
	if err != nil || dm.at(0, 1) != 0.5 || dm.at(1, 2) != 2.5 {
		t.Fatalf("distances after dedupe: %v %v, %v", dm.at(0, 1), dm.at(1, 2), err)
	}
}
