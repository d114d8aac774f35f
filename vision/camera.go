package vision

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"concierge/checkin"
	"concierge/face"
)

// Embedder turns one detected face of a frame into an embedding.
type Embedder interface {
	Model() string
	EmbedDetection(ctx context.Context, img gocv.Mat, d Detection) (face.Embedding, error)
}

// EmbedDetection implements Embedder with dlib: it re-finds the face in a
// crop around the box so that dlib's own landmarks drive its alignment.
func (e *Engine) EmbedDetection(ctx context.Context, img gocv.Mat, d Detection) (face.Embedding, error) {
	f, err := e.EmbedFace(ctx, img, d.Box)
	return f.Embedding, err
}

// AlignedEmbedder implements Embedder with a MobileFaceNet on crops aligned
// by the detector's five landmarks.
type AlignedEmbedder struct {
	Net  *ONNXEmbedder
	Flip bool
	// Refiner, when set, finds the landmarks of a face that was small in
	// the detector's input again at full resolution before aligning
	// (YuNet.Refine). It may be shared: YuNet serialises its passes.
	Refiner *YuNet
}

// Model names the embedding model.
func (a AlignedEmbedder) Model() string { return a.Net.Model() }

// EmbedDetection implements Embedder.
func (a AlignedEmbedder) EmbedDetection(_ context.Context, img gocv.Mat, d Detection) (face.Embedding, error) {
	crop, err := a.align(img, d)
	if err != nil {
		return face.Embedding{}, err
	}
	defer crop.Close()
	return a.Net.Embed(crop, a.Flip)
}

// align is the detection's crop on the embedder's template; the caller
// owns it.
func (a AlignedEmbedder) align(img gocv.Mat, d Detection) (gocv.Mat, error) {
	if a.Refiner != nil {
		// A face the detector found is there: a lower score is enough to
		// find it again in its own crop.
		r, ok, err := a.Refiner.Refine(img, d, refineScore)
		if err != nil {
			return gocv.Mat{}, err
		}
		if ok {
			d = r
		}
	}
	return a.Net.Align(img, d.Landmarks)
}

// Observer receives what a camera sees: checkin.Service.
type Observer interface {
	Observe(ctx context.Context, camera string, at time.Time, dets []checkin.Detection, embed checkin.EmbedFunc) error
}

// awaiter is implemented by observers (checkin.Service) that can tell
// when a frame is worth detecting on before DetectInterval has passed: a
// track names a customer and would take the embedding that may confirm it.
type awaiter interface {
	Awaiting(camera string, at time.Time) bool
}

// CameraConfig sets up one camera's pipeline.
type CameraConfig struct {
	ID     string
	Source SourceConfig
	// MinScore is YuNet's confidence threshold.
	MinScore float64
	// MinFacePx ignores smaller faces (shorter side of the box).
	MinFacePx int
	// ROI is the doorway polygon in frame pixels; faces whose centre lies
	// outside are ignored. Empty means the whole frame.
	ROI []image.Point
	// MotionThreshold is the changed-pixel fraction that wakes detection.
	MotionThreshold float64
	// DetectInterval is the least frame time between two detections: at 15
	// fps, 120 ms detects on every other frame, halving the CPU while a
	// walking person still moves only a fraction of their face per detection.
	// The one exception: while the observer awaits the vote that may
	// confirm a customer (checkin.Service.Awaiting), the next frame is
	// detected on too, so the arrival is decided one frame later rather
	// than at the next scheduled detection.
	DetectInterval time.Duration
	// Linger keeps detecting this long after the last motion or face, so a
	// customer standing still in the doorway is still tracked.
	Linger time.Duration
	// IdleStride: once nothing has moved and no face has been seen for
	// IdleAfter, the camera looks at one frame in IdleStride only, until
	// the next motion; the source still decodes the others (SetStride).
	// An empty lobby then costs about half as much, and a person walking
	// in is noticed at most IdleStride-1 frames later, long before their
	// face is large enough to recognise. Zero means 2; 1 looks at every
	// frame. IdleAfter must exceed Linger; zero means 2 s.
	IdleStride int
	IdleAfter  time.Duration
	// ThumbnailPx, when positive, offers the observer a JPEG of each face
	// at most this many pixels on a side (checkin.Detection.Thumbnail),
	// rendered only if the observer asks: for the face that decides an
	// arrival. Zero keeps faces out of alerts.
	ThumbnailPx int
	Logger      *slog.Logger
}

// CameraStats counts a camera pipeline's work; safe to read while it runs.
type CameraStats struct {
	Frames     atomic.Int64 // frames looked at
	Idle       atomic.Int64 // frames looked at on the idle stride
	Gated      atomic.Int64 // frames skipped by the motion gate
	Skipped    atomic.Int64 // frames skipped to keep to the detection interval
	Detections atomic.Int64 // detector runs
	Eager      atomic.Int64 // detector runs before DetectInterval, for an awaited vote
	Faces      atomic.Int64 // faces found
	Embeddings atomic.Int64 // embeddings computed
	Errors     atomic.Int64
	busyNanos  atomic.Int64 // time spent processing frames
}

// Busy is the total processing time, a proxy of the CPU the camera uses.
func (s *CameraStats) Busy() time.Duration { return time.Duration(s.busyNanos.Load()) }

// Camera runs one camera: source, motion gate, detection, and the
// check-in observer, which asks for embeddings of the faces it chooses.
type Camera struct {
	cfg      CameraConfig
	source   *Source
	detector *YuNet
	embedder Embedder
	observer Observer
	log      *slog.Logger
	Stats    CameraStats
	// lastFaces is the number of faces in the last detected frame; only
	// the frame callback touches it.
	lastFaces int
}

// NewCamera builds a camera. The detector belongs to the camera (YuNet is
// not shared between goroutines); the embedder may be shared.
func NewCamera(cfg CameraConfig, detector *YuNet, embedder Embedder, observer Observer) (*Camera, error) {
	if cfg.ID == "" {
		return nil, errors.New("camera: empty id")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Source.Logger = cfg.Logger
	src, err := NewSource(cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", cfg.ID, err)
	}
	if cfg.MinScore <= 0 {
		cfg.MinScore = DefaultYuNetScore
	}
	if cfg.Linger <= 0 {
		cfg.Linger = time.Second
	}
	if cfg.IdleStride <= 0 {
		cfg.IdleStride = 2
	}
	if cfg.IdleAfter <= 0 {
		cfg.IdleAfter = 2 * time.Second
	}
	if cfg.IdleAfter <= cfg.Linger {
		return nil, fmt.Errorf("camera %s: idle after %v must exceed linger %v", cfg.ID, cfg.IdleAfter, cfg.Linger)
	}
	return &Camera{cfg: cfg, source: src, detector: detector, embedder: embedder, observer: observer,
		log: cfg.Logger.With("camera", cfg.ID)}, nil
}

// ID is the camera's id.
func (c *Camera) ID() string { return c.cfg.ID }

// Source exposes the camera's source statistics.
func (c *Camera) Source() *Source { return c.source }

// Run processes frames until ctx ends or the source gives up.
func (c *Camera) Run(ctx context.Context) error {
	gate := NewMotionGate(c.cfg.MotionThreshold)
	defer gate.Close()
	aw, _ := c.observer.(awaiter)
	var lastActive, lastDetect time.Time
	idle := false
	c.source.SetStride(1)
	err := c.source.Run(ctx, func(f Frame) {
		t0 := time.Now()
		defer func() { c.Stats.busyNanos.Add(int64(time.Since(t0))) }()
		c.Stats.Frames.Add(1)
		if idle {
			c.Stats.Idle.Add(1)
		}
		_, moved := gate.Moved(f.Mat)
		if moved {
			lastActive = f.At
		}
		// The first frame counts as motion, so lastActive is set before
		// the lobby can be taken for idle.
		if now := f.At.Sub(lastActive) > c.cfg.IdleAfter; now != idle {
			idle = now
			stride := 1
			if idle {
				stride = c.cfg.IdleStride
			}
			c.source.SetStride(stride)
		}
		if !moved && f.At.Sub(lastActive) > c.cfg.Linger {
			c.Stats.Gated.Add(1)
			// Tracks still age on skipped frames, so a visit ends on time.
			if err := c.observer.Observe(ctx, c.cfg.ID, f.At, nil, nil); err != nil {
				c.Stats.Errors.Add(1)
			}
			return
		}
		if f.At.Sub(lastDetect) < c.cfg.DetectInterval {
			if aw == nil || !aw.Awaiting(c.cfg.ID, f.At) {
				c.Stats.Skipped.Add(1)
				return
			}
			c.Stats.Eager.Add(1)
		}
		lastDetect = f.At
		if err := c.process(ctx, f); err != nil && ctx.Err() == nil {
			c.Stats.Errors.Add(1)
			c.log.Warn("frame failed", "err", c.source.Mask(err.Error()))
		}
		if c.lastFaces > 0 {
			lastActive = f.At
		}
	})
	if ctx.Err() == nil {
		// The stream is over: let the observer close the camera's tracks.
		if end, ok := c.observer.(interface {
			EndCamera(camera string, at time.Time)
		}); ok {
			end.EndCamera(c.cfg.ID, time.Now())
		}
	}
	return err
}

func (c *Camera) process(ctx context.Context, f Frame) error {
	c.Stats.Detections.Add(1)
	found, err := c.detector.Detect(f.Mat, c.cfg.MinScore)
	if err != nil {
		return err
	}
	dets := make([]checkin.Detection, 0, len(found))
	kept := make([]Detection, 0, len(found))
	for _, d := range found {
		size := min(d.Box.Dx(), d.Box.Dy())
		if size < c.cfg.MinFacePx || !inPolygon(c.cfg.ROI, center(d.Box)) {
			continue
		}
		ff := face.Face{Box: d.Box, Landmarks: d.Landmarks, Score: d.Score}
		ff.Quality.SizePx = size
		measure(f.Mat, &ff)
		cd := checkin.Detection{Box: d.Box, Landmarks: d.Landmarks, Quality: ff.Quality, Score: d.Score}
		if px := c.cfg.ThumbnailPx; px > 0 {
			box, mat := d.Box, f.Mat
			cd.Thumbnail = func() ([]byte, error) { return Thumbnail(mat, box, px) }
		}
		dets = append(dets, cd)
		kept = append(kept, d)
	}
	c.lastFaces = len(dets)
	c.Stats.Faces.Add(int64(len(dets)))
	embed := func(i int) (face.Embedding, error) {
		if i < 0 || i >= len(kept) {
			return face.Embedding{}, fmt.Errorf("embed: detection %d of %d", i, len(kept))
		}
		c.Stats.Embeddings.Add(1)
		return c.embedder.EmbedDetection(ctx, f.Mat, kept[i])
	}
	return c.observer.Observe(ctx, c.cfg.ID, f.At, dets, embed)
}

func center(r image.Rectangle) image.Point {
	return image.Pt((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2)
}

// inPolygon is the even-odd rule; an empty polygon contains everything.
func inPolygon(poly []image.Point, p image.Point) bool {
	if len(poly) < 3 {
		return true
	}
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		a, b := poly[i], poly[j]
		if (a.Y > p.Y) != (b.Y > p.Y) &&
			float64(p.X) < float64(b.X-a.X)*float64(p.Y-a.Y)/float64(b.Y-a.Y)+float64(a.X) {
			in = !in
		}
	}
	return in
}
