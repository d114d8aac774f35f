package vision

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"runtime"
	"sort"

	goface "github.com/Kagami/go-face"
	"gocv.io/x/gocv"

	"concierge/face"
)

// ModelDlib identifies embeddings of dlib's ResNet; templates carry it so
// that only embeddings of the same model are ever compared.
const ModelDlib = "dlib-resnet-v1"

// Config tunes an Engine.
type Config struct {
	// ModelDir holds shape_predictor_5_face_landmarks.dat,
	// dlib_face_recognition_resnet_model_v1.dat and mmod_human_face_detector.dat.
	ModelDir string
	// Pool is how many recognisers run at once; go-face serialises calls
	// inside one recogniser. 0 means GOMAXPROCS.
	Pool int
	// MaxPixels refuses larger images before decoding. 0 means 40 MP.
	MaxPixels int
	// MaxSide downscales larger images before detection: dlib's HOG cost
	// grows with the area and faces in such photos are large anyway. 0 means 1920.
	MaxSide int
	// MinFacePx drops smaller faces (shorter side of the box, in the
	// original image's pixels).
	MinFacePx int
	Logger    *slog.Logger
}

// Engine finds faces and embeds them. It is safe for concurrent use: each
// call borrows one recogniser from the pool.
type Engine struct {
	cfg  Config
	pool chan *goface.Recognizer
	all  []*goface.Recognizer
	log  *slog.Logger
}

// ErrClosed is returned by calls on a closed engine.
var ErrClosed = errors.New("vision engine closed")

// NewEngine loads cfg.Pool recognisers from cfg.ModelDir.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Pool <= 0 {
		cfg.Pool = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	if cfg.MaxSide <= 0 {
		cfg.MaxSide = 1920
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, pool: make(chan *goface.Recognizer, cfg.Pool), log: cfg.Logger.WithGroup("vision")}
	for i := 0; i < cfg.Pool; i++ {
		rec, err := goface.NewRecognizer(cfg.ModelDir)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("load dlib models from %s: %w", cfg.ModelDir, err)
		}
		e.all = append(e.all, rec)
		e.pool <- rec
	}
	e.log.Debug("engine ready", "pool", cfg.Pool, "model_dir", cfg.ModelDir)
	return e, nil
}

// Close frees the recognisers. It waits for calls in flight to return their
// recogniser, and is safe to call twice.
func (e *Engine) Close() error {
	if e.all == nil {
		return nil
	}
	for range e.all {
		rec := <-e.pool
		rec.Close()
	}
	e.all = nil
	close(e.pool)
	return nil
}

// Model names the embedding model of this engine.
func (e *Engine) Model() string { return ModelDlib }

// Detect finds every face in a JPEG or PNG image and embeds it.
func (e *Engine) Detect(ctx context.Context, data []byte) ([]face.Face, error) {
	img, err := Decode(data, e.cfg.MaxPixels)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	return e.DetectMat(ctx, img)
}

// DetectMat finds and embeds every face in a BGR image. The Mat is only read.
func (e *Engine) DetectMat(ctx context.Context, img gocv.Mat) ([]face.Face, error) {
	if img.Empty() {
		return nil, &InputError{Kind: ErrEmpty}
	}
	if img.Type() != gocv.MatTypeCV8UC3 {
		return nil, &InputError{Kind: ErrNotImage, Detail: "want an 8-bit BGR image"}
	}
	// dlib's HOG cost grows with area; scale huge photos down first.
	scale := 1.0
	work := img
	if side := max(img.Cols(), img.Rows()); side > e.cfg.MaxSide {
		scale = float64(side) / float64(e.cfg.MaxSide)
		small := gocv.NewMat()
		defer small.Close()
		gocv.Resize(img, &small, image.Pt(int(float64(img.Cols())/scale), int(float64(img.Rows())/scale)), 0, 0, gocv.InterpolationArea)
		work = small
	}
	// go-face takes JPEG bytes only; quality 95 keeps the embedding within
	// noise of the original pixels.
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, work, []int{gocv.IMWriteJpegQuality, 95})
	if err != nil {
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	jpeg := append([]byte(nil), buf.GetBytes()...)
	buf.Close()

	faces, err := e.recognize(ctx, jpeg)
	if err != nil {
		return nil, err
	}
	out := make([]face.Face, 0, len(faces))
	for _, f := range faces {
		ff := fromDlib(f, scale)
		if ff.Quality.SizePx < e.cfg.MinFacePx {
			continue
		}
		measure(img, &ff)
		out = append(out, ff)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Box.Min.X < out[j].Box.Min.X })
	return out, nil
}

func (e *Engine) recognize(ctx context.Context, jpeg []byte) ([]goface.Face, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rec *goface.Recognizer
	select {
	case rec = <-e.pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if rec == nil {
		return nil, ErrClosed
	}
	defer func() { e.pool <- rec }()
	faces, err := rec.Recognize(jpeg)
	if err != nil {
		var le goface.ImageLoadError
		if errors.As(err, &le) {
			return nil, &InputError{Kind: ErrTruncated, Detail: string(le)}
		}
		return nil, fmt.Errorf("dlib recognise: %w", err)
	}
	return faces, nil
}

// fromDlib converts a go-face result, scaling coordinates back to the
// original image. dlib's 5-point model gives two corners per eye and the
// base of the nose, no mouth.
func fromDlib(f goface.Face, scale float64) face.Face {
	sc := func(p image.Point) image.Point {
		return image.Pt(int(math.Round(float64(p.X)*scale)), int(math.Round(float64(p.Y)*scale)))
	}
	out := face.Face{
		Box:       image.Rectangle{Min: sc(f.Rectangle.Min), Max: sc(f.Rectangle.Max)},
		Embedding: face.Embedding(f.Descriptor),
		Model:     ModelDlib,
		Score:     1,
	}
	if len(f.Shapes) == 5 {
		a := mid(sc(f.Shapes[0]), sc(f.Shapes[1]))
		b := mid(sc(f.Shapes[2]), sc(f.Shapes[3]))
		if a.X > b.X {
			a, b = b, a
		}
		out.Landmarks = face.Landmarks{LeftEye: a, RightEye: b, Nose: sc(f.Shapes[4])}
	}
	out.Quality.SizePx = min(out.Box.Dx(), out.Box.Dy())
	return out
}

func mid(a, b image.Point) image.Point { return image.Pt((a.X+b.X)/2, (a.Y+b.Y)/2) }

// qualitySide is the side of the square grey crop on which sharpness and
// brightness are measured, so the numbers do not depend on face size.
const qualitySide = 112

// measure fills the pixel-based quality measures of f from img.
func measure(img gocv.Mat, f *face.Face) {
	f.Quality.Frontal = f.Landmarks.Frontal()
	box := f.Box.Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	if box.Dx() < 8 || box.Dy() < 8 {
		return
	}
	crop := img.Region(box)
	defer crop.Close()
	grey := gocv.NewMat()
	defer grey.Close()
	gocv.CvtColor(crop, &grey, gocv.ColorBGRToGray)
	gocv.Resize(grey, &grey, image.Pt(qualitySide, qualitySide), 0, 0, gocv.InterpolationArea)
	lap := gocv.NewMat()
	defer lap.Close()
	gocv.Laplacian(grey, &lap, gocv.MatTypeCV64F, 3, 1, 0, gocv.BorderDefault)
	mean, std := gocv.NewMat(), gocv.NewMat()
	defer mean.Close()
	defer std.Close()
	gocv.MeanStdDev(lap, &mean, &std)
	sd := std.GetDoubleAt(0, 0)
	f.Quality.Sharpness = sd * sd
	f.Quality.Brightness = grey.Mean().Val1
}

// ErrNoFace is returned by EmbedFace when dlib finds no face where the
// detector saw one (a profile view, heavy blur): the frame is skipped.
var ErrNoFace = errors.New("no face at the detected box")

// embedSide is the face size EmbedFace scales crops to: comfortably above
// the 80 pixels dlib's HOG detector needs, and near the 150-pixel chip the
// ResNet embeds.
const embedSide = 160

// EmbedFace embeds the face a (faster) detector found at box in img. The
// crop around the box is rescaled so the face is about 160 pixels and given
// to dlib, whose own 5-point landmarks drive the alignment its ResNet was
// trained with. It costs about one face's embedding, not a full-frame pass.
func (e *Engine) EmbedFace(ctx context.Context, img gocv.Mat, box image.Rectangle) (face.Face, error) {
	side := max(box.Dx(), box.Dy())
	if side < 8 {
		return face.Face{}, ErrNoFace
	}
	grow := side / 2
	r := image.Rectangle{Min: box.Min.Sub(image.Pt(grow, grow)), Max: box.Max.Add(image.Pt(grow, grow))}.
		Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	if r.Empty() {
		return face.Face{}, ErrNoFace
	}
	crop := img.Region(r)
	defer crop.Close()
	scale := float64(embedSide) / float64(side)
	scaled := gocv.NewMat()
	defer scaled.Close()
	gocv.Resize(crop, &scaled, image.Pt(max(1, int(float64(r.Dx())*scale)), max(1, int(float64(r.Dy())*scale))), 0, 0, gocv.InterpolationLinear)
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, scaled, []int{gocv.IMWriteJpegQuality, 95})
	if err != nil {
		return face.Face{}, fmt.Errorf("encode face: %w", err)
	}
	jpeg := append([]byte(nil), buf.GetBytes()...)
	buf.Close()
	faces, err := e.recognize(ctx, jpeg)
	if err != nil {
		return face.Face{}, err
	}
	// Map results back to frame coordinates; keep the one on the box.
	var best face.Face
	bestIoU := 0.0
	for _, f := range faces {
		ff := fromDlib(f, 1/scale)
		ff.Box = ff.Box.Add(r.Min)
		lm := &ff.Landmarks
		for _, p := range []*image.Point{&lm.LeftEye, &lm.RightEye, &lm.Nose} {
			*p = p.Add(r.Min)
		}
		if iou := IoU(ff.Box, box); iou > bestIoU {
			best, bestIoU = ff, iou
		}
	}
	if bestIoU < 0.3 {
		return face.Face{}, ErrNoFace
	}
	measure(img, &best)
	return best, nil
}

// IoU is the intersection over union of two boxes.
func IoU(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ia := float64(in.Dx() * in.Dy())
	return ia / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - ia)
}
