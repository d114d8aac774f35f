package vision

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"
)

// SourceConfig describes one camera's video source.
type SourceConfig struct {
	// Source is an RTSP/HTTP URL, a device index ("0"), or a video file path.
	Source string
	// Loop restarts a video file at its end instead of treating the end
	// as a dropped stream.
	Loop bool
	// Realtime paces a video file at its own frame rate, as a camera would
	// deliver it. When false a file is read as fast as the consumer takes
	// frames, without drops: for benchmarks and tests.
	Realtime bool
	// Backoff bounds the wait between reconnection attempts; it doubles
	// from Min up to Max. Zero values mean 200 ms and 10 s.
	BackoffMin, BackoffMax time.Duration
	// Reconnect retries a dropped or ended stream forever; when false the
	// source stops at the end (a file without Loop, or a test).
	Reconnect bool
	// Skip passes over a video file's first Skip frames (decoded, never
	// handed over or counted; Seq still numbers the file's frames), so
	// that an evaluation plays only the part of a clip its person was not
	// enrolled from. Live sources ignore it.
	Skip int64
	// Place, when set, puts every frame of a video file, scaled, in the
	// middle of a larger grey frame: a clip filmed close up then shows
	// its person as an entrance camera sees them from a few metres away.
	// For evaluation; live sources ignore it.
	Place  *Placement
	Logger *slog.Logger
}

// Placement is a canvas of Width×Height pixels and the Scale (0 < Scale
// ≤ 1) at which each frame is drawn in its middle.
type Placement struct {
	Width, Height int
	Scale         float64
}

func (p Placement) validate() error {
	if p.Width < 16 || p.Height < 16 || p.Width > 8192 || p.Height > 8192 || !(p.Scale > 0 && p.Scale <= 1) {
		return fmt.Errorf("placement %dx%d at scale %v: want a canvas of 16 to 8192 px a side and a scale in (0, 1]", p.Width, p.Height, p.Scale)
	}
	return nil
}

// place draws raw, scaled by p.Scale through small, in the middle of dst,
// which it (re)allocates at the canvas size and fills with grey.
func (p Placement) place(raw gocv.Mat, small, dst *gocv.Mat) {
	if dst.Rows() != p.Height || dst.Cols() != p.Width || dst.Type() != gocv.MatTypeCV8UC3 {
		dst.Close()
		*dst = gocv.NewMatWithSize(p.Height, p.Width, gocv.MatTypeCV8UC3)
	}
	dst.SetTo(gocv.NewScalar(110, 110, 110, 0))
	gocv.Resize(raw, small, image.Pt(0, 0), p.Scale, p.Scale, gocv.InterpolationArea)
	w, h := min(small.Cols(), p.Width), min(small.Rows(), p.Height)
	x0, y0 := (p.Width-w)/2, (p.Height-h)/2
	roi := dst.Region(image.Rect(x0, y0, x0+w, y0+h))
	defer roi.Close()
	src := small.Region(image.Rect(0, 0, w, h))
	defer src.Close()
	src.CopyTo(&roi)
}

// Frame is one captured image. The Mat belongs to the source: the consumer
// reads it during the callback and must not keep or close it.
type Frame struct {
	Mat gocv.Mat
	// At is the capture time: wall clock for live sources, the position in
	// the file (from its frame rate) added to the start for files.
	At  time.Time
	Seq int64
}

// SourceStats counts what a source did; safe to read while it runs.
type SourceStats struct {
	Frames     atomic.Int64 // frames read
	Dropped    atomic.Int64 // frames replaced before the consumer took them
	Passed     atomic.Int64 // frames decoded but not handed over (SetStride)
	Reconnects atomic.Int64

	// lastFrame is the wall-clock time (UnixNano) the newest frame was
	// read, whatever time the frame carries: a file's frames are stamped
	// from its own clock, but health asks whether the camera is delivering
	// now.
	lastFrame atomic.Int64
	rateMu    sync.Mutex
	rateFrom  time.Time // start of the window being counted
	rateN     int64     // frames in it so far
	rate      float64   // frames per second over the last full window
}

// fpsWindow is the span the frame rate is measured over: long enough to
// smooth a stream's jitter, short enough to show a camera slowing down.
const fpsWindow = 2 * time.Second

// frame records one frame read at wall-clock time now.
func (s *SourceStats) frame(now time.Time) {
	s.Frames.Add(1)
	s.lastFrame.Store(now.UnixNano())
	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	if s.rateFrom.IsZero() {
		s.rateFrom = now
	}
	s.rateN++
	if el := now.Sub(s.rateFrom); el >= fpsWindow {
		s.rate = float64(s.rateN) / el.Seconds()
		s.rateFrom, s.rateN = now, 0
	}
}

// LastFrame is when the newest frame was read (wall clock); zero before
// the first.
func (s *SourceStats) LastFrame() time.Time {
	n := s.lastFrame.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// FPS is the rate at which frames were read over the last complete
// window of about two seconds, and 0 once no frame came for that long.
func (s *SourceStats) FPS(now time.Time) float64 {
	if last := s.LastFrame(); last.IsZero() || now.Sub(last) > fpsWindow {
		return 0
	}
	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	return s.rate
}

// Source reads frames from one camera in its own goroutine and hands the
// newest to the consumer: a slow consumer skips stale frames (counted as
// drops) instead of building a backlog.
type Source struct {
	cfg    SourceConfig
	log    *slog.Logger
	Stats  SourceStats
	stride atomic.Int32 // hand over one frame in stride; 0 and 1 mean every frame
	// lastErr is the masked text of the latest failure to open or read
	// the stream; cleared by the next frame.
	lastErr atomic.Pointer[string]
}

// NewSource validates cfg.
func NewSource(cfg SourceConfig) (*Source, error) {
	if strings.TrimSpace(cfg.Source) == "" {
		return nil, errors.New("video source: empty")
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 200 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Place != nil {
		if err := cfg.Place.validate(); err != nil {
			return nil, fmt.Errorf("video source: %w", err)
		}
	}
	quietOpenCV()
	return &Source{cfg: cfg, log: cfg.Logger}, nil
}

// Mask hides this source's credentials, and those of any URL, in text
// (MaskCredentials). Every text about the source that leaves this package
// goes through it.
func (s *Source) Mask(text string) string { return MaskCredentials(text, s.cfg.Source) }

// maskErr is err with its text masked; nil stays nil. The original error
// is not wrapped: its text holds the credentials.
func (s *Source) maskErr(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(s.Mask(err.Error()))
}

// Err is the masked text of the latest failure to open or read the
// stream, or "" once a frame came after it.
func (s *Source) Err() string {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

func (s *Source) setErr(err error) {
	if err == nil {
		s.lastErr.Store(nil)
		return
	}
	t := err.Error()
	s.lastErr.Store(&t)
}

// SetStride makes the source hand over only one frame in n (n ≤ 1: every
// frame, the default). The frames in between are still decoded, since the
// next frames of a compressed stream are predicted from them, but they are
// neither converted to BGR nor handed to the consumer: that saves most of
// a frame's cost when the consumer has nothing to look for, e.g. a camera
// watching an empty lobby. It takes effect from the next frame read and is
// safe to call from the consumer.
func (s *Source) SetStride(n int) {
	s.stride.Store(int32(max(1, n)))
}

// IsFile reports whether the source names an existing file.
func (s *Source) IsFile() bool {
	st, err := os.Stat(s.cfg.Source)
	return err == nil && st.Mode().IsRegular()
}

// open opens the stream; its error is already masked (gocv's quotes the
// URL as given).
func (s *Source) open() (*gocv.VideoCapture, error) {
	if idx, err := strconv.Atoi(s.cfg.Source); err == nil {
		vc, err := gocv.OpenVideoCapture(idx)
		return vc, s.maskErr(err)
	}
	vc, err := s.openBounded()
	if err != nil {
		return nil, err
	}
	if !vc.IsOpened() {
		vc.Close()
		return nil, fmt.Errorf("cannot open %s", s.Mask(s.cfg.Source))
	}
	// Live streams: keep OpenCV's own buffer minimal so frames are fresh.
	vc.Set(gocv.VideoCaptureBufferSize, 1)
	return vc, nil
}

// openTimeout bounds opening a stream. OpenCV's backends can block in
// open for good on a camera that accepts the connection and then falls
// silent (seen with RTSP under load), and a blocked open would hold the
// camera's loop, its reconnects and the daemon's shutdown.
const openTimeout = 45 * time.Second

// openBounded opens the stream in a goroutine of its own and gives up
// after openTimeout. A call that never returns cannot be stopped (it is in
// C): the goroutine waits for it and closes what it opened, and the
// camera's loop reconnects as after any failed open.
func (s *Source) openBounded() (*gocv.VideoCapture, error) {
	type result struct {
		vc  *gocv.VideoCapture
		err error
	}
	ch := make(chan result, 1)
	go func() {
		vc, err := gocv.OpenVideoCapture(s.cfg.Source)
		ch <- result{vc, err}
	}()
	t := time.NewTimer(openTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.vc, s.maskErr(r.err)
	case <-t.C:
		go func() {
			if r := <-ch; r.vc != nil {
				r.vc.Close()
			}
		}()
		return nil, fmt.Errorf("open %s: no answer within %v", s.Mask(s.cfg.Source), openTimeout)
	}
}

// Run reads until ctx is done (or, without Reconnect, until the stream
// ends) and calls consume with the newest frame each time the consumer is
// free. consume runs on one goroutine, never concurrently with itself.
func (s *Source) Run(ctx context.Context, consume func(Frame)) error {
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		latest  = gocv.NewMat()
		spare   = gocv.NewMat()
		pending bool // a frame waits for the consumer
		busy    bool // the consumer is processing a frame
		have    Frame
		done    bool
		readErr error
	)
	defer latest.Close()
	defer spare.Close()
	// A file's frames drawn onto a canvas (SourceConfig.Place) are read
	// into raw and scaled through small first.
	var place *Placement
	raw, small := gocv.NewMat(), gocv.NewMat()
	defer raw.Close()
	defer small.Close()
	if s.cfg.Place != nil && s.IsFile() {
		place = s.cfg.Place
	}

	// The consumer goroutine: takes the newest frame, swaps buffers so the
	// reader never writes into a Mat being processed.
	work := gocv.NewMat()
	defer work.Close()
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for {
			mu.Lock()
			for !pending && !done {
				cond.Wait()
			}
			if !pending && done {
				mu.Unlock()
				return
			}
			latest, work = work, latest
			f := have
			pending, busy = false, true
			cond.Broadcast()
			mu.Unlock()
			f.Mat = work
			consume(f)
			mu.Lock()
			busy = false
			cond.Broadcast()
			mu.Unlock()
		}
	}()
	stopConsumer := func() {
		mu.Lock()
		done = true
		cond.Broadcast()
		mu.Unlock()
		<-consumerDone
	}
	// Wake the consumer's wait when ctx ends.
	stopWake := context.AfterFunc(ctx, func() {
		mu.Lock()
		cond.Broadcast()
		mu.Unlock()
	})
	defer stopWake()

	backoff := s.cfg.BackoffMin
	var seq int64
	// start is the time of the first frame, to which a file's frame times
	// are added. Taking it before opening the file would stamp every frame
	// earlier than it was delivered, by the time the open took, and make
	// latency measured against the frame times look longer than it is.
	var start time.Time
	var skipped time.Duration // of the first open's frames passed over (SourceConfig.Skip)
	for ctx.Err() == nil {
		vc, err := s.open()
		if err != nil {
			readErr = err
			s.setErr(err)
			s.log.Warn("camera open failed", "source", s.Mask(s.cfg.Source), "err", err, "retry_in", backoff)
			if !s.cfg.Reconnect || !sleepCtx(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, s.cfg.BackoffMax)
			s.Stats.Reconnects.Add(1)
			continue
		}
		fps := vc.Get(gocv.VideoCaptureFPS)
		isFile := s.IsFile()
		if fps <= 0 || fps > 240 {
			fps = 25
		}
		interval := time.Duration(float64(time.Second) / fps)
		// A file's length, so that a frame passed over by the stride is
		// not read past its end: Grab does not report the end.
		total := -1
		if isFile {
			if n := vc.Get(gocv.VideoCaptureFrameCount); n > 0 {
				total = int(n)
			}
		}
		s.log.Info("camera open", "source", s.Mask(s.cfg.Source), "fps", fps)
		if isFile && s.cfg.Skip > 0 {
			// Grab decodes in order, exactly; seeking in a compressed
			// stream may land on another frame. A file shorter than Skip
			// then ends at its first read. Seq and the frame times move
			// on by the frames passed over, so they stay the file's and
			// never go back when a looping file restarts.
			vc.Grab(int(s.cfg.Skip))
			seq += s.cfg.Skip
			if start.IsZero() {
				skipped = time.Duration(s.cfg.Skip) * interval
			}
		}
		got, passed := 0, 0
		next := time.Now()
		for ctx.Err() == nil {
			if isFile && !s.cfg.Realtime && s.stride.Load() > 1 {
				// A file read as fast as the consumer goes: let it finish
				// its frame, which may end the stride, so that which frames
				// are passed over does not depend on thread timing.
				mu.Lock()
				for (pending || busy) && ctx.Err() == nil {
					cond.Wait()
				}
				mu.Unlock()
			}
			if stride := int(s.stride.Load()); stride > 1 && passed < stride-1 && got != total {
				// Decode only: no colour conversion, no hand-over.
				vc.Grab(1)
				if start.IsZero() {
					start = time.Now().Add(-skipped)
				}
				got++
				passed++
				seq++
				s.Stats.frame(time.Now())
				s.Stats.Passed.Add(1)
				if isFile && s.cfg.Realtime {
					next = next.Add(interval)
					if !sleepCtx(ctx, time.Until(next)) {
						break
					}
				}
				continue
			}
			passed = 0
			if place != nil {
				if !vc.Read(&raw) || raw.Empty() {
					break
				}
				place.place(raw, &small, &spare)
			} else if !vc.Read(&spare) || spare.Empty() {
				break
			}
			if start.IsZero() {
				start = time.Now().Add(-skipped)
			}
			got++
			backoff = s.cfg.BackoffMin
			seq++
			at := time.Now()
			s.Stats.frame(at)
			if got == 1 {
				s.setErr(nil)
			}
			if isFile {
				at = start.Add(time.Duration(seq-1) * interval)
			}
			mu.Lock()
			if isFile && !s.cfg.Realtime {
				// Benchmarks: wait for the consumer instead of dropping.
				for pending && ctx.Err() == nil {
					cond.Wait()
				}
			}
			if pending {
				s.Stats.Dropped.Add(1)
			}
			latest, spare = spare, latest
			have = Frame{At: at, Seq: seq}
			pending = true
			cond.Broadcast()
			mu.Unlock()
			if isFile && s.cfg.Realtime {
				next = next.Add(interval)
				if !sleepCtx(ctx, time.Until(next)) {
					break
				}
			}
		}
		vc.Close()
		if ctx.Err() != nil {
			break
		}
		if isFile && s.cfg.Loop && got > 0 {
			continue
		}
		readErr = fmt.Errorf("stream %s ended after %d frames", s.Mask(s.cfg.Source), got)
		s.setErr(readErr)
		if !s.cfg.Reconnect {
			break
		}
		s.log.Warn("camera stream ended; reconnecting", "source", s.Mask(s.cfg.Source), "frames", got, "retry_in", backoff)
		if !sleepCtx(ctx, backoff) {
			break
		}
		backoff = min(2*backoff, s.cfg.BackoffMax)
		s.Stats.Reconnects.Add(1)
	}
	stopConsumer()
	if ctx.Err() != nil {
		return nil
	}
	return readErr
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
