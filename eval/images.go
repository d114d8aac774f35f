package eval

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	_ "image/png" // labelled folders may hold PNG photos
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"concierge/enroll"
	"concierge/face"
)

// PadMode chooses what fills the border that Pad adds.
type PadMode string

const (
	// PadReplicate repeats the edge pixels. It is the default because it
	// adds no artificial edge along the crop for a gradient-based detector
	// (dlib's HOG) to respond to.
	PadReplicate PadMode = "replicate"
	// PadBlack fills with black, as a letterbox does.
	PadBlack PadMode = "black"
)

// maxPadPixels refuses to decode absurd images: a labelled folder is
// trusted input, but a stray panorama should fail, not exhaust memory.
const maxPadPixels = 40_000_000

// Pad returns the photo grown by frac of its width and height on every
// side, re-encoded as JPEG at quality 95. Tight face crops need it: a
// detector looks for a face with some context around it and misses one
// that fills the frame. It uses only the standard library so that eval
// stays free of cgo; quality 95 keeps the embedding within noise of the
// original pixels.
func Pad(data []byte, frac float64, mode PadMode) ([]byte, error) {
	if frac < 0 || frac > 4 {
		return nil, fmt.Errorf("pad: fraction %v out of [0, 4]", frac)
	}
	src, err := decodeLimited(data)
	if err != nil {
		return nil, fmt.Errorf("pad: %w", err)
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	px, py := int(math.Round(frac*float64(w))), int(math.Round(frac*float64(h)))
	dst := image.NewRGBA(image.Rect(0, 0, w+2*px, h+2*py))
	inner := image.Rect(px, py, px+w, py+h)
	switch mode {
	case PadBlack:
		draw.Draw(dst, dst.Bounds(), image.Black, image.Point{}, draw.Src)
		draw.Draw(dst, inner, src, b.Min, draw.Src)
	case PadReplicate, "":
		draw.Draw(dst, inner, src, b.Min, draw.Src)
		replicateBorder(dst, inner)
	default:
		return nil, fmt.Errorf("pad: unknown mode %q (want %s or %s)", mode, PadReplicate, PadBlack)
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 95}); err != nil {
		return nil, fmt.Errorf("pad: encode: %w", err)
	}
	return out.Bytes(), nil
}

// decodeLimited decodes a photo after checking from its header that it is
// not larger than maxPadPixels.
func decodeLimited(data []byte) (image.Image, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if cfg.Width*cfg.Height > maxPadPixels {
		return nil, fmt.Errorf("%dx%d image is too large", cfg.Width, cfg.Height)
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	return src, err
}

// ShrinkQuality is the JPEG quality of a shrunk photo: about what an IP
// camera's stream carries.
const ShrinkQuality = 70

// Shrink scales the photo down, averaging the pixels each output pixel
// covers, so that its longer side is at most side pixels, and re-encodes
// it as JPEG at ShrinkQuality: the face a door camera sees from a few
// metres away, from a photo that shows it large. A photo already that
// small is only re-encoded.
func Shrink(data []byte, side int) ([]byte, error) {
	if side < 16 {
		return nil, fmt.Errorf("shrink: %d px: want at least 16", side)
	}
	src, err := decodeLimited(data)
	if err != nil {
		return nil, fmt.Errorf("shrink: %w", err)
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	scale := min(1, float64(side)/float64(max(w, h)))
	dw, dh := max(1, int(math.Round(float64(w)*scale))), max(1, int(math.Round(float64(h)*scale)))
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(rgba, rgba.Bounds(), src, b.Min, draw.Src)
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range dh {
		y0, y1 := y*h/dh, max((y+1)*h/dh, y*h/dh+1)
		for x := range dw {
			x0, x1 := x*w/dw, max((x+1)*w/dw, x*w/dw+1)
			var sum [3]int
			for sy := y0; sy < y1; sy++ {
				row := rgba.Pix[sy*rgba.Stride:]
				for sx := x0; sx < x1; sx++ {
					sum[0] += int(row[sx*4])
					sum[1] += int(row[sx*4+1])
					sum[2] += int(row[sx*4+2])
				}
			}
			n := (y1 - y0) * (x1 - x0)
			o := dst.Pix[y*dst.Stride+x*4:]
			o[0], o[1], o[2], o[3] = uint8((sum[0]+n/2)/n), uint8((sum[1]+n/2)/n), uint8((sum[2]+n/2)/n), 255
		}
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: ShrinkQuality}); err != nil {
		return nil, fmt.Errorf("shrink: encode: %w", err)
	}
	return out.Bytes(), nil
}

// replicateBorder fills everything outside inner with the nearest pixel
// of inner.
func replicateBorder(img *image.RGBA, inner image.Rectangle) {
	full := img.Bounds()
	for y := inner.Min.Y; y < inner.Max.Y; y++ {
		row := img.Pix[y*img.Stride : y*img.Stride+full.Dx()*4]
		left := row[inner.Min.X*4 : inner.Min.X*4+4]
		right := row[(inner.Max.X-1)*4 : inner.Max.X*4]
		for x := 0; x < inner.Min.X; x++ {
			copy(row[x*4:], left)
		}
		for x := inner.Max.X; x < full.Max.X; x++ {
			copy(row[x*4:], right)
		}
	}
	rowLen := full.Dx() * 4
	top := img.Pix[inner.Min.Y*img.Stride : inner.Min.Y*img.Stride+rowLen]
	bottom := img.Pix[(inner.Max.Y-1)*img.Stride : (inner.Max.Y-1)*img.Stride+rowLen]
	for y := 0; y < inner.Min.Y; y++ {
		copy(img.Pix[y*img.Stride:], top)
	}
	for y := inner.Max.Y; y < full.Max.Y; y++ {
		copy(img.Pix[y*img.Stride:], bottom)
	}
}

// PickFace chooses the subject of a photo that shows several faces: among
// the faces at least half as large (in area) as the largest, the one whose
// centre is nearest the image centre. Labelled photos and LFW images are
// framed on their subject, but a bystander can be slightly larger, and a
// tiny background face can sit nearer the centre; the two tests together
// pick the subject in both cases.
func PickFace(faces []face.Face, width, height int) (face.Face, bool) {
	if len(faces) == 0 {
		return face.Face{}, false
	}
	area := func(f face.Face) int { return f.Box.Dx() * f.Box.Dy() }
	largest := 0
	for _, f := range faces {
		largest = max(largest, area(f))
	}
	cx, cy := float64(width)/2, float64(height)/2
	best, bestD := -1, math.Inf(1)
	for i, f := range faces {
		if 2*area(f) < largest {
			continue
		}
		fx := float64(f.Box.Min.X+f.Box.Max.X) / 2
		fy := float64(f.Box.Min.Y+f.Box.Max.Y) / 2
		d := math.Hypot(fx-cx, fy-cy)
		if d < bestD || (d == bestD && area(f) > area(faces[best])) {
			best, bestD = i, d
		}
	}
	return faces[best], true
}

// Embedder turns photos into embeddings through a Detector.
type Embedder struct {
	Detector enroll.Detector
	// Pad is the fraction of the width and height added on every side
	// before detection (0: none); PadMode fills it.
	Pad     float64
	PadMode PadMode
	// Shrink, when positive, scales every photo down to at most Shrink
	// pixels on its longer side before anything else (see Shrink).
	Shrink int
	// Workers is how many photos are in flight at once; 0 means GOMAXPROCS.
	// Engines are safe for concurrent use and run a pool of their own.
	Workers int
}

// DetectError is a failure of the detector itself (not a bad photo): it
// stops a run, since every later photo would fail alike.
type DetectError struct {
	Image string
	Err   error
}

func (e *DetectError) Error() string { return fmt.Sprintf("detect %s: %v", e.Image, e.Err) }
func (e *DetectError) Unwrap() error { return e.Err }

// embedded is the outcome of one photo.
type embedded struct {
	emb  face.Embedding
	miss string // "" when emb is valid
}

// embedFiles embeds every file, in parallel, keeping the order of paths.
// A photo the detector finds no face in, or reports as bad input, is a
// miss; any other error stops the run.
func (e *Embedder) embedFiles(ctx context.Context, paths []string) ([]embedded, error) {
	out := make([]embedded, len(paths))
	err := e.each(ctx, len(paths), func(ctx context.Context, i int) error {
		r, err := e.embedOne(ctx, paths[i])
		out[i] = r
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// each calls fn for the indexes 0..n-1 on e.Workers goroutines (all
// cores when 0); the first error cancels fn's context, stops the run and
// is returned.
func (e *Embedder) each(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	workers := e.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, max(1, n)) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

func (e *Embedder) embedOne(ctx context.Context, path string) (embedded, error) {
	data, w, h, miss, err := e.load(path)
	if err != nil || miss != "" {
		return embedded{miss: miss}, err
	}
	faces, err := e.Detector.Detect(ctx, data)
	if err != nil {
		if enroll.IsBadInput(err) {
			return embedded{miss: "unreadable: " + err.Error()}, nil
		}
		return embedded{}, &DetectError{Image: path, Err: err}
	}
	f, ok := PickFace(faces, w, h)
	if !ok {
		return embedded{miss: enroll.ReasonNoFace}, nil
	}
	return embedded{emb: f.Embedding}, nil
}

// load reads a photo as the detector gets it (shrunk, padded) with its
// size then; miss says why a photo cannot be read.
func (e *Embedder) load(path string) (data []byte, w, h int, miss string, err error) {
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, 0, 0, "", err
	}
	if e.Shrink > 0 {
		if data, err = Shrink(data, e.Shrink); err != nil {
			return nil, 0, 0, "unreadable: " + err.Error(), nil
		}
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, 0, 0, "unreadable: " + err.Error(), nil
	}
	w, h = cfg.Width, cfg.Height
	if e.Pad > 0 {
		if data, err = Pad(data, e.Pad, e.PadMode); err != nil {
			return nil, 0, 0, "unreadable: " + err.Error(), nil
		}
		w += 2 * int(math.Round(e.Pad*float64(w)))
		h += 2 * int(math.Round(e.Pad*float64(h)))
	}
	return data, w, h, "", nil
}

// isPhoto reports whether the file name looks like a photo a detector reads.
// IsPhoto reports whether name is a photo eval reads: JPEG or PNG.
func IsPhoto(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// EmbedFolder embeds every photo under dir, labelled by the name of the
// folder that holds it: train/NAME/x.jpg and validation/NAME/y.jpg are
// both NAME. Photos directly in dir have no label and are skipped. When
// labels is not empty, only those labels are embedded.
func (e *Embedder) EmbedFolder(ctx context.Context, dir string, labels []string) (*Set, error) {
	paths, names, err := folderPhotos(dir, labels)
	if err != nil {
		return nil, err
	}
	res, err := e.embedFiles(ctx, paths)
	if err != nil {
		return nil, err
	}
	set := &Set{Model: e.Detector.Model(), Images: len(paths)}
	for i, r := range res {
		rel, _ := filepath.Rel(dir, paths[i])
		if r.miss != "" {
			set.Misses = append(set.Misses, Miss{Image: rel, Reason: r.miss})
			continue
		}
		set.Samples = append(set.Samples, Sample{Label: names[i], Source: rel, Embedding: r.emb})
	}
	return set, nil
}

// folderPhotos lists the photos under dir with their labels (EmbedFolder).
func folderPhotos(dir string, labels []string) (paths, names []string, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !IsPhoto(d.Name()) {
			return nil
		}
		parent := filepath.Dir(p)
		if filepath.Clean(parent) == filepath.Clean(dir) {
			return nil
		}
		label := filepath.Base(parent)
		if len(labels) > 0 && !slices.Contains(labels, label) {
			return nil
		}
		paths = append(paths, p)
		names = append(names, label)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("labelled folder: %w", err)
	}
	if len(paths) == 0 {
		return nil, nil, errors.New("labelled folder: no photos in DIR/LABEL/ subfolders")
	}
	return paths, names, nil
}
