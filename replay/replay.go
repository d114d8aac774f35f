// Package replay plays recorded video through the daemon's own pipeline —
// vision.Camera (motion gate, YuNet, the embedder) feeding a
// checkin.Service that decides with the configured rule — and counts what
// it did: frames, detections, embeddings, arrivals and their latency.
// `concierge bench pipeline` measures the pipeline's cost with it,
// `concierge eval clips` its accuracy on labelled door clips (Clips), and
// tests play real footage through it. It holds no rule of its own: the
// check-in rule comes in as a checkin.Config, built from the configuration
// by the caller, exactly as the daemon builds its own.
package replay

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"syscall"
	"time"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/vision"
)

// Pipeline is what every play shares: the gallery, the embedder, the rule
// and the cameras' settings.
type Pipeline struct {
	Gallery  *enroll.Gallery
	Embedder vision.Embedder
	// Checkin is the arrival rule, as the daemon would run it.
	Checkin checkin.Config
	// Calibrated gives the recognition threshold in force for the
	// gallery's size (enroll.Service.Recognition), as in the daemon.
	Calibrated func() float64
	// Unlearned gives how much farther a customer without door rows may
	// match (checkin.Service.Unlearned); nil for none.
	Unlearned func() (threshold, band float64)
	// YuNet is the face detector's model file.
	YuNet string
	// MinFacePx and DetectInterval are the cameras' (vision.min_face_px,
	// vision.detect_interval).
	MinFacePx      int
	DetectInterval time.Duration
	Logger         *slog.Logger
}

// Run is one play of a clip.
type Run struct {
	Name, Video string
	// Realtime plays the file at its own frame rate (latency is measured
	// then); otherwise as fast as it goes.
	Realtime bool
	Cameras  int
	// Skip passes over the clip's first frames (vision.SourceConfig.Skip);
	// Place draws its frames on a larger canvas (SourceConfig.Place).
	Skip  int64
	Place *vision.Placement
	// Warmup, when set, leaves the first stretch of wall time out of the
	// frames, CPU and wall time measured.
	Warmup time.Duration
	// Publish, when set, records and publishes the arrivals as the daemon
	// does; latency is then measured to their receipt.
	Publish Publisher
	// Expect, when set, is the customer the clip shows: the result then
	// holds the distances of the clip's faces and fused embeddings to them
	// (Result.Trace), so that a miss can be read.
	Expect string
}

// Publisher is the daemon's alert path for a play: the visit log, the
// notifier, and a subscriber's receipt of each alert.
type Publisher interface {
	checkin.Notifier
	checkin.VisitLog
	// Latencies waits up to timeout for every arrival's alert and returns,
	// for each, the time from the first usable face to its receipt.
	Latencies(arrivals []checkin.Arrival, timeout time.Duration) ([]time.Duration, error)
}

// Result is what a play did.
type Result struct {
	Name      string
	Frames    int64
	Wall, CPU time.Duration
	// Detections are the detector's runs; -1 for a loop that detects on
	// every frame (bench's naive loop).
	Detections         int64
	Embeddings, Alerts int64
	Customers          map[string]bool
	Latencies          []time.Duration // to the alert's receipt, or the hand-off without publishing
	Handoffs           []time.Duration // to the notifier
	List               []checkin.Arrival
	Dropped            int64
	Arrivals           int
	// Trace is set when the run named the customer it expects.
	Trace *Trace
}

// DetectionsString prints Detections, the frames for a loop that detects
// on every frame.
func (r Result) DetectionsString() string {
	if r.Detections < 0 {
		return fmt.Sprint(r.Frames)
	}
	return fmt.Sprint(r.Detections)
}

// FPS is frames per second of wall time.
func (r Result) FPS() float64 { return float64(r.Frames) / r.Wall.Seconds() }

// CPUPerFrame is CPU milliseconds per frame.
func (r Result) CPUPerFrame() float64 {
	return float64(r.CPU.Milliseconds()) / float64(max(1, r.Frames))
}

// FramesPerCPUSecond is frames per second of CPU time.
func (r Result) FramesPerCPUSecond() float64 { return float64(r.Frames) / r.CPU.Seconds() }

// EmbPerArrival is embeddings per arrival, "-" without arrivals.
func (r Result) EmbPerArrival() string {
	if r.Arrivals == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(r.Embeddings)/float64(r.Arrivals))
}

// P is the q-quantile of the latencies, -1 without any.
func (r Result) P(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return -1
	}
	s := append([]time.Duration(nil), r.Latencies...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// CPUTime is the process's user+system CPU time so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// recorder is the play's notifier: it notes when each arrival is handed
// over, to measure latency from the first usable frame, and passes it on
// to next, the publisher, when set.
type recorder struct {
	next checkin.Notifier

	mu        sync.Mutex
	arrivals  []checkin.Arrival
	latencies []time.Duration
}

var _ checkin.Notifier = (*recorder)(nil)

func (r *recorder) Notify(ctx context.Context, a checkin.Arrival, risk []checkin.RiskFlag) error {
	r.mu.Lock()
	r.arrivals = append(r.arrivals, a)
	// Realtime file frames are stamped with their capture time, so the
	// wall clock now minus FirstSeen is the true end-to-end delay.
	r.latencies = append(r.latencies, time.Since(a.FirstSeen))
	r.mu.Unlock()
	if r.next == nil {
		return nil
	}
	return r.next.Notify(ctx, a, risk)
}

// Play runs the pipeline on a video file, as fast as it goes or at the
// file's frame rate, with one or more cameras reading it. Each play has a
// check-in service of its own: no track or cooldown carries over.
func (p *Pipeline) Play(ctx context.Context, run Run) (Result, error) {
	var m checkin.Matcher = p.Gallery
	var tr *tracer
	if run.Expect != "" {
		tr = &tracer{gallery: p.Gallery, expect: run.Expect}
		m = tr
	}
	svc, err := checkin.NewService(p.Checkin, m)
	if err != nil {
		return Result{}, err
	}
	svc.Calibrated = p.Calibrated
	svc.Unlearned = p.Unlearned
	rec := &recorder{}
	svc.Notifier = rec
	if run.Publish != nil {
		svc.VisitLog = run.Publish
		rec.next = run.Publish
	}
	svc.Logger = p.Logger
	var obs vision.Observer = svc
	if tr != nil {
		tr.svc = svc
		obs = tr
	}
	var cams []*vision.Camera
	for i := 0; i < max(run.Cameras, 1); i++ {
		det, err := vision.NewYuNet(p.YuNet)
		if err != nil {
			return Result{}, fmt.Errorf("%v (run `concierge models fetch --set shipped`)", err)
		}
		defer det.Close()
		cam, err := vision.NewCamera(vision.CameraConfig{ID: fmt.Sprintf("bench-%d", i+1), MinFacePx: p.MinFacePx,
			DetectInterval: p.DetectInterval, Source: vision.SourceConfig{Source: run.Video, Realtime: run.Realtime, Skip: run.Skip, Place: run.Place}},
			det, p.Embedder, obs)
		if err != nil {
			return Result{}, err
		}
		cams = append(cams, cam)
	}
	// counts are the frames the streams delivered (whether the camera
	// looked at them, skipped them as stale or passed them over on an idle
	// stride), the detector runs, the embeddings and the frames dropped.
	counts := func() (c [4]int64) {
		for _, cam := range cams {
			c[0] += cam.Source().Stats.Frames.Load()
			c[1] += cam.Stats.Detections.Load()
			c[2] += cam.Stats.Embeddings.Load()
			c[3] += cam.Source().Stats.Dropped.Load()
		}
		return c
	}
	cpu0, t0 := CPUTime(), time.Now()
	var counts0 [4]int64
	var wg sync.WaitGroup
	for _, cam := range cams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cam.Run(ctx) // a file without Loop ends with an error that says so
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	if run.Warmup > 0 {
		t := time.NewTimer(run.Warmup)
		select {
		case <-t.C:
			cpu0, t0 = CPUTime(), time.Now()
			counts0 = counts()
		case <-done: // a clip shorter than the warm-up is measured whole
		}
		t.Stop()
	}
	<-done
	r := Result{Name: run.Name, Wall: time.Since(t0), CPU: CPUTime() - cpu0, Customers: map[string]bool{}}
	c := counts()
	r.Frames, r.Detections, r.Embeddings, r.Dropped = c[0]-counts0[0], c[1]-counts0[1], c[2]-counts0[2], c[3]-counts0[3]
	if tr != nil {
		r.Trace = tr.result()
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r.Alerts, r.Arrivals, r.List = int64(len(rec.arrivals)), len(rec.arrivals), rec.arrivals
	for _, a := range rec.arrivals {
		r.Customers[a.CustomerID] = true
	}
	if run.Realtime {
		r.Latencies, r.Handoffs = rec.latencies, rec.latencies
		if run.Publish != nil {
			if r.Latencies, err = run.Publish.Latencies(rec.arrivals, 5*time.Second); err != nil {
				return r, err
			}
		}
	}
	return r, ctx.Err()
}
