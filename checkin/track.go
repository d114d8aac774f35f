package checkin

import (
	"cmp"
	"image"
	"math"
	"slices"
	"time"

	"concierge/enroll"
	"concierge/face"
)

// Detection is one face found in a frame, before any embedding: detection
// costs a few milliseconds, an embedding several times more, so the camera
// loop detects every frame and Observe chooses which faces to embed.
type Detection struct {
	Box       image.Rectangle
	Landmarks face.Landmarks
	Quality   face.Quality
	// Score is the detector's confidence in [0,1]. The detector has already
	// thresholded it; the decision weighs faces by Quality, which says how
	// useful a face is for recognition, not how sure the detector is.
	Score float64
	// Thumbnail, when the branch enabled face thumbnails in alerts, returns
	// a small JPEG of this face. Observe calls it only for the face that
	// decides an arrival, before it returns (the caller's frame is gone
	// after), so no stranger's face is ever rendered.
	Thumbnail func() ([]byte, error)
}

// sizePx is the shorter side of the face, from the quality measures or, when
// the caller left them empty, from the box.
func (d *Detection) sizePx() int {
	if d.Quality.SizePx > 0 {
		return d.Quality.SizePx
	}
	return min(d.Box.Dx(), d.Box.Dy())
}

// box is a face box in floating point, by centre and size, so that motion
// prediction does not round.
type box struct{ cx, cy, w, h float64 }

func boxOf(r image.Rectangle) box {
	return box{
		cx: float64(r.Min.X+r.Max.X) / 2,
		cy: float64(r.Min.Y+r.Max.Y) / 2,
		w:  float64(r.Dx()),
		h:  float64(r.Dy()),
	}
}

func (b box) area() float64 { return b.w * b.h }

// size is the geometric mean of the sides: one length per box for
// relative distances.
func (b box) size() float64 { return math.Sqrt(b.area()) }

func iou(a, b box) float64 {
	ix := math.Min(a.cx+a.w/2, b.cx+b.w/2) - math.Max(a.cx-a.w/2, b.cx-b.w/2)
	iy := math.Min(a.cy+a.h/2, b.cy+b.h/2) - math.Max(a.cy-a.h/2, b.cy-b.h/2)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	return inter / (a.area() + b.area() - inter)
}

// outcome is where a track's decision stands.
type outcome uint8

const (
	pending    outcome = iota // still collecting embeddings
	arrived                   // decided, and an arrival was published
	suppressed                // decided, but the customer was in cooldown
	conflicted                // embeddings named different customers: never decided
	exhausted                 // MaxEmbeddings spent without a decision
	carded                    // not announced, but a verify card was published
)

func (o outcome) String() string {
	return [...]string{"pending", "arrived", "suppressed", "conflict", "exhausted", "card"}[o]
}

// sample is one embedding of a track with its weight and 1:N match. It is
// the only biometric data checkin holds, and only while the track is
// pending.
type sample struct {
	emb     face.Embedding
	quality float64
	match   enroll.Match
	found   bool
}

// track is one face followed across the frames of one camera.
type track struct {
	id   uint64
	pos  box
	vel  box // change of pos per second (cx, cy, w, h)
	hits int

	first, last time.Time
	firstUsable time.Time // first face with quality >= MinQuality; zero until then

	embedCalls  int       // attempts, failed ones included, against MaxEmbeddings
	lastEmbed   time.Time // frame time of the last attempt
	bestQuality float64   // best quality embedded so far
	samples     []sample
	// named: some embedding of the track names a customer under the base
	// rule, so the next one may decide it (Config.ConfirmInterval).
	named bool
	// thumb is the best face whose embedding named a customer within the
	// verify band, kept for a card and forgotten with the samples.
	thumb        []byte
	thumbQuality float64

	state    outcome
	customer string // set once decided (arrived or suppressed)
}

// matches are the gallery's matches of the track's faces, for Rule (a face
// the gallery found nobody for has a zero Match).
func (t *track) matches() []enroll.Match {
	ms := make([]enroll.Match, len(t.samples))
	for i := range t.samples {
		if t.samples[i].found {
			ms[i] = t.samples[i].match
		}
	}
	return ms
}

// fuse is the track's fused embedding (Fuse), weighted by face quality.
func (t *track) fuse() face.Embedding {
	es := make([]face.Embedding, len(t.samples))
	ws := make([]float64, len(t.samples))
	for i := range t.samples {
		es[i], ws[i] = t.samples[i].emb, t.samples[i].quality
	}
	return Fuse(es, ws)
}

// predict extrapolates the box to time at with the track's velocity. The
// extrapolation stops at the timeout, beyond which the track is gone.
func (t *track) predict(at time.Time, limit time.Duration) box {
	dt := min(at.Sub(t.last), limit).Seconds()
	if dt <= 0 || t.hits < 2 {
		return t.pos
	}
	p := box{
		cx: t.pos.cx + t.vel.cx*dt,
		cy: t.pos.cy + t.vel.cy*dt,
		w:  t.pos.w + t.vel.w*dt,
		h:  t.pos.h + t.vel.h*dt,
	}
	// A shrinking face must not be predicted out of existence.
	p.w = math.Max(p.w, t.pos.w/2)
	p.h = math.Max(p.h, t.pos.h/2)
	return p
}

// update moves the track to an observed box. Velocity is smoothed because
// detector boxes jitter by a few pixels from frame to frame, which over a
// 66 ms frame interval would read as large speeds.
func (t *track) update(b box, at time.Time) {
	if dt := at.Sub(t.last).Seconds(); dt > 0 {
		inst := box{
			cx: (b.cx - t.pos.cx) / dt,
			cy: (b.cy - t.pos.cy) / dt,
			w:  (b.w - t.pos.w) / dt,
			h:  (b.h - t.pos.h) / dt,
		}
		if t.hits < 2 {
			t.vel = inst
		} else {
			const alpha = 0.5
			t.vel = box{
				cx: alpha*inst.cx + (1-alpha)*t.vel.cx,
				cy: alpha*inst.cy + (1-alpha)*t.vel.cy,
				w:  alpha*inst.w + (1-alpha)*t.vel.w,
				h:  alpha*inst.h + (1-alpha)*t.vel.h,
			}
		}
	}
	t.pos = b
	t.last = at
	t.hits++
}

// forget overwrites and drops the track's embeddings. The garbage collector
// would free them but not clear them, and a heap dump of the edge box must
// not hold strangers' faces.
func (t *track) forget() {
	for i := range t.samples {
		t.samples[i] = sample{}
	}
	t.samples = nil
	t.thumb = nil
}

// wantsEmbedding reports whether a face of quality q seen at time at should
// be embedded for this track: its first usable face at once, then a clearly
// better face, or a usable one after the track's embedding interval, up to
// MaxEmbeddings.
func (t *track) wantsEmbedding(q float64, at time.Time, cfg *Config) bool {
	switch {
	case t.state != pending || q < cfg.MinQuality || t.embedCalls >= cfg.MaxEmbeddings:
		return false
	case t.embedCalls == 0:
		return true
	case t.bestQuality > 0 && q >= t.bestQuality*cfg.QualityGain:
		return true
	default:
		return at.Sub(t.lastEmbed) >= t.interval(cfg)
	}
}

// interval is the least frame time between two embeddings of the track:
// ConfirmInterval once an embedding names a customer, else
// MinEmbedInterval.
func (t *track) interval(cfg *Config) time.Duration {
	if t.named {
		return min(cfg.ConfirmInterval, cfg.MinEmbedInterval)
	}
	return cfg.MinEmbedInterval
}

// awaiting reports whether the track, seen in the frame detected at time
// detected, names a customer and would take the embedding that may confirm
// it at time at (a usable face permitting): see Service.Awaiting.
func (t *track) awaiting(at, detected time.Time, cfg *Config) bool {
	return t.state == pending && t.named && t.last.Equal(detected) &&
		t.embedCalls < cfg.MaxEmbeddings && at.Sub(t.lastEmbed) >= t.interval(cfg)
}

// pair is a candidate link between a track and a detection.
type pair struct {
	track, det int
	cost       float64 // lower is better
}

// associate links detections to tracks: first greedily by IoU between each
// track's predicted box and the detections, then, for what is left, by the
// distance between centres relative to the face size. Greedy matching is
// optimal in practice here: a door camera sees a handful of faces that
// rarely overlap, and it costs nothing. It returns, for each detection, the
// index of its track or -1.
func associate(tracks []*track, dets []box, at time.Time, cfg *Config) []int {
	link := make([]int, len(dets))
	for i := range link {
		link[i] = -1
	}
	if len(tracks) == 0 || len(dets) == 0 {
		return link
	}
	pred := make([]box, len(tracks))
	for i, t := range tracks {
		pred[i] = t.predict(at, cfg.TrackTimeout)
	}
	taken := make([]bool, len(tracks))
	greedy := func(pairs []pair) {
		// Ties break on track then detection index, so that a replay of
		// the same frames gives the same tracks.
		slices.SortFunc(pairs, func(a, b pair) int {
			if c := cmp.Compare(a.cost, b.cost); c != 0 {
				return c
			}
			if c := cmp.Compare(a.track, b.track); c != 0 {
				return c
			}
			return cmp.Compare(a.det, b.det)
		})
		for _, p := range pairs {
			if !taken[p.track] && link[p.det] < 0 {
				taken[p.track] = true
				link[p.det] = p.track
			}
		}
	}

	var pairs []pair
	for ti, p := range pred {
		for di, d := range dets {
			if o := iou(p, d); o >= cfg.MinIoU {
				pairs = append(pairs, pair{ti, di, -o})
			}
		}
	}
	greedy(pairs)

	pairs = pairs[:0]
	for ti, p := range pred {
		if taken[ti] {
			continue
		}
		for di, d := range dets {
			if link[di] >= 0 {
				continue
			}
			ratio := d.size() / p.size()
			if ratio < 0.5 || ratio > 2 {
				continue
			}
			shift := math.Hypot(d.cx-p.cx, d.cy-p.cy) / ((d.size() + p.size()) / 2)
			if shift <= cfg.MaxCenterShift {
				pairs = append(pairs, pair{ti, di, shift})
			}
		}
	}
	greedy(pairs)
	return link
}
