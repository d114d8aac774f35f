package vision

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"path/filepath"
	"runtime"
	"strings"

	"gocv.io/x/gocv"
)

// Actor is one person in a composed clip: a photo of them, and where their
// photo is on screen over time. Between keys the position and size are
// interpolated linearly; outside the first and last key the actor is absent.
type Actor struct {
	Photo []byte // JPEG or PNG; the whole photo is drawn, so crop it around the face
	Keys  []Key
}

// Key places the actor's photo: centre and height in pixels at time T
// (seconds from the start of the clip).
type Key struct {
	T      float64
	X, Y   int
	Height int
}

// Scene is a clip made from still photos: people walking towards an
// entrance camera (growing as they come closer), standing, leaving.
type Scene struct {
	Width, Height int
	FPS           float64
	Seconds       float64
	Actors        []Actor
	// Noise is the standard deviation, in grey levels, of Gaussian noise
	// added to every pixel of every frame, as a camera's sensor adds it:
	// a still lobby is then still to a person but not to a codec or a
	// motion gate. The noise is seeded, so a scene renders the same twice.
	Noise float64
}

// clipCodecs maps a file extension to the codec WriteClip encodes with.
// MJPEG in AVI is the format OpenCV reads back on every platform without
// extra codecs; H.264 in MP4 or Matroska is what IP cameras stream, whose
// predicted frames cost next to nothing to decode where nothing moves.
// Debian's OpenCV writes it through FFmpeg's libx264.
var clipCodecs = map[string]string{".avi": "MJPG", ".mp4": "avc1", ".mkv": "avc1"}

// WriteClip renders the scene to a video file, MJPEG for a path ending in
// .avi, H.264 for .mp4 and .mkv.
func WriteClip(path string, s Scene) error {
	if s.Width <= 0 || s.Height <= 0 || s.FPS <= 0 || s.Seconds <= 0 || s.Noise < 0 {
		return fmt.Errorf("write clip: bad scene %dx%d %.1f fps %.1f s noise %.1f", s.Width, s.Height, s.FPS, s.Seconds, s.Noise)
	}
	codec, ok := clipCodecs[strings.ToLower(filepath.Ext(path))]
	if !ok {
		return fmt.Errorf("write clip %s: unknown extension (want .avi, .mp4 or .mkv)", path)
	}
	photos := make([]gocv.Mat, len(s.Actors))
	for i, a := range s.Actors {
		m, err := Decode(a.Photo, 0)
		if err != nil {
			return fmt.Errorf("write clip: actor %d: %w", i, err)
		}
		defer m.Close()
		photos[i] = m
	}
	vw, err := gocv.VideoWriterFile(path, codec, s.FPS, s.Width, s.Height, true)
	if err != nil {
		return fmt.Errorf("write clip %s: %w", path, err)
	}
	defer vw.Close()
	if !vw.IsOpened() {
		return fmt.Errorf("write clip %s: writer did not open", path)
	}
	frame := gocv.NewMatWithSize(s.Height, s.Width, gocv.MatTypeCV8UC3)
	defer frame.Close()
	scaled := gocv.NewMat()
	defer scaled.Close()
	noise := newNoiser(s)
	defer noise.Close()
	n := int(math.Round(s.Seconds * s.FPS))
	for i := 0; i < n; i++ {
		t := float64(i) / s.FPS
		background(frame)
		for a, actor := range s.Actors {
			k, ok := place(actor.Keys, t)
			if !ok || k.Height < 4 {
				continue
			}
			p := photos[a]
			w := max(1, p.Cols()*k.Height/p.Rows())
			gocv.Resize(p, &scaled, image.Pt(w, k.Height), 0, 0, gocv.InterpolationArea)
			dst := image.Rect(k.X-w/2, k.Y-k.Height/2, k.X-w/2+w, k.Y-k.Height/2+k.Height)
			vis := dst.Intersect(image.Rect(0, 0, s.Width, s.Height))
			if vis.Empty() {
				continue
			}
			src := scaled.Region(vis.Sub(dst.Min))
			roi := frame.Region(vis)
			src.CopyTo(&roi)
			src.Close()
			roi.Close()
		}
		if err := vw.Write(noise.apply(frame)); err != nil {
			return fmt.Errorf("write clip %s frame %d: %w", path, i, err)
		}
	}
	return nil
}

// noiser adds a scene's sensor noise to frames.
type noiser struct {
	sigma            float64
	noise, wide, out gocv.Mat
	unlock           func()
}

// newNoiser seeds OpenCV's random generator, which is per OS thread, and
// so keeps the calling goroutine on its thread until Close.
func newNoiser(s Scene) *noiser {
	n := &noiser{sigma: s.Noise, unlock: func() {}}
	if s.Noise == 0 {
		return n
	}
	runtime.LockOSThread()
	n.unlock = runtime.UnlockOSThread
	gocv.SetRNGSeed(1)
	n.noise = gocv.NewMatWithSize(s.Height, s.Width, gocv.MatTypeCV16SC3)
	n.wide, n.out = gocv.NewMat(), gocv.NewMat()
	return n
}

// apply returns frame with fresh noise added, saturated to 0..255; the
// result is valid until the next call.
func (n *noiser) apply(frame gocv.Mat) gocv.Mat {
	if n.sigma == 0 {
		return frame
	}
	gocv.RandN(&n.noise, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(n.sigma, n.sigma, n.sigma, 0))
	frame.ConvertTo(&n.wide, gocv.MatTypeCV16SC3)
	gocv.Add(n.wide, n.noise, &n.wide)
	n.wide.ConvertTo(&n.out, gocv.MatTypeCV8UC3)
	return n.out
}

// Close frees the buffers and releases the thread.
func (n *noiser) Close() {
	if n.sigma != 0 {
		n.noise.Close()
		n.wide.Close()
		n.out.Close()
	}
	n.unlock()
}

// background paints a still lobby: a vertical gradient with a doorframe, so
// the motion gate sees no change where nobody moves.
func background(m gocv.Mat) {
	m.SetTo(gocv.NewScalar(168, 172, 176, 0))
	w, h := m.Cols(), m.Rows()
	gocv.Rectangle(&m, image.Rect(w/5, h/12, w*4/5, h), color.RGBA{110, 100, 90, 0}, 12)
	gocv.Rectangle(&m, image.Rect(0, h*5/6, w, h), color.RGBA{120, 130, 140, 0}, -1)
}

func place(keys []Key, t float64) (Key, bool) {
	if len(keys) == 0 || t < keys[0].T || t > keys[len(keys)-1].T {
		return Key{}, false
	}
	for i := 1; i < len(keys); i++ {
		a, b := keys[i-1], keys[i]
		if t > b.T {
			continue
		}
		f := 0.0
		if b.T > a.T {
			f = (t - a.T) / (b.T - a.T)
		}
		lerp := func(x, y int) int { return x + int(math.Round(f*float64(y-x))) }
		return Key{T: t, X: lerp(a.X, b.X), Y: lerp(a.Y, b.Y), Height: lerp(a.Height, b.Height)}, true
	}
	return keys[len(keys)-1], true
}
