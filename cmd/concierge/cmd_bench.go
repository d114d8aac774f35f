package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"concierge/checkin"
	"concierge/face"
	"concierge/models"
	"concierge/vision"
)

// The bench command measures the live pipeline on a video file side by side
// with the loop a go-face user would write: full-frame Recognize on every
// frame, a 1:N match per face, an alert per matched frame.
func runBench(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 || args[0] != "pipeline" {
		return usagef("usage: concierge bench pipeline [--video FILE] [--photos DIR]")
	}
	fs := m.flags("bench pipeline")
	video := fs.String("video", "", "video file to run on (default: the demo's entrance clip, made from real photos, with its customers enrolled)")
	photos := fs.String("photos", defaultPhotosDir(), "folder with the demo photos, for the default clip")
	naive := fs.Bool("naive", true, "also run the naive full-frame loop")
	empty := fs.Bool("empty", true, "also measure an empty lobby (the motion gate's cost)")
	realtime := fs.Bool("realtime", true, "also run the clip at its own frame rate, with one and two cameras (the latency rows)")
	arrivals := fs.Bool("arrivals", false, "list every arrival with its votes and latency")
	threads := fs.Int("opencv-threads", -1, "threads OpenCV may use for one operation (0: one per CPU; default: vision.threads, as the daemon)")
	publish := fs.Bool("publish", true, "publish alerts as the daemon does (SQLite outbox, embedded NATS JetStream) and measure latency to their receipt by a subscriber")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := m.config()
	if err != nil {
		return err
	}
	m.Logger = newLogger(m.Stderr, LogConfig{Level: "warn", Format: cfg.Log.Format})
	if *video == "" && m.dbPath == "" {
		dir, err := os.MkdirTemp("", "concierge-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DB = filepath.Join(dir, "bench.db")
	}
	app, err := m.openFaceApp(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer app.Close()
	if *video == "" {
		world, err := loadDemoWorld(ctx, app, *photos)
		if err != nil {
			return err
		}
		if _, err := world.enroll(ctx, app.svc); err != nil {
			return err
		}
		*video = filepath.Join(filepath.Dir(cfg.DB), "door.avi")
		if _, err := world.doorClip(*video); err != nil {
			return err
		}
	}

	if *threads < 0 {
		*threads = cfg.Vision.Threads
	}
	vision.SetThreads(*threads)
	var alerts *benchAlerts
	if *publish {
		dir, err := os.MkdirTemp("", "concierge-bench-alerts-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if alerts, err = openBenchAlerts(ctx, cfg.Branch, dir, m.Logger); err != nil {
			return err
		}
		defer alerts.Close()
	}

	out := m.Stdout
	fmt.Fprintf(out, "clip %s, %d customers enrolled, engine %s, GOMAXPROCS %d, OpenCV threads %d\n", *video, app.svc.Gallery.Customers(), app.embedder.Model(), cpus(), vision.Threads())
	fast, err := runPipeline(ctx, app, cfg, pipelineRun{name: "concierge, as fast as it goes", video: *video, cameras: 1, alerts: alerts})
	if err != nil {
		return err
	}
	rows := []benchResult{fast}
	for _, run := range []struct {
		name    string
		cameras int
	}{{"concierge, 1 camera at the clip's fps", 1}, {"concierge, 2 cameras at the clip's fps", 2}} {
		if !*realtime {
			break
		}
		r, err := runPipeline(ctx, app, cfg, pipelineRun{name: run.name, video: *video, realtime: true, cameras: run.cameras, alerts: alerts})
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	if *empty {
		// The same still lobby as MJPEG, the demo clip's format, and as
		// H.264, what IP cameras stream: still, and with enough sensor
		// noise that x264 spends about 2 Mbit/s on it, as a camera's
		// constant-bit-rate substream does. Measured after emptyWarmup:
		// what the lobby costs all day, not the start.
		for _, e := range []struct {
			name, file string
			noise      float64
		}{
			{"concierge, empty lobby at 15 fps, MJPEG", "empty.avi", 0},
			{"concierge, empty lobby at 15 fps, H.264", "empty.mp4", 0},
			{"concierge, empty lobby at 15 fps, H.264 2 Mbit/s", "noisy.mp4", 5},
		} {
			clip := filepath.Join(filepath.Dir(cfg.DB), e.file)
			if err := vision.WriteClip(clip, vision.Scene{Width: 1280, Height: 720, FPS: 15, Seconds: 20, Noise: e.noise}); err != nil {
				return err
			}
			r, err := runPipeline(ctx, app, cfg, pipelineRun{name: e.name, video: clip, realtime: true, cameras: 1, warmup: emptyWarmup, alerts: alerts})
			if err != nil {
				return err
			}
			rows = append(rows, r)
		}
	}
	if *naive {
		n, err := benchNaive(ctx, app, *video)
		if err != nil {
			return err
		}
		rows = append(rows, n)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pipeline\tframes\tframes/s\tCPU ms/frame\tframes/CPU-s\t% of a core\tdetections\tembeddings\talerts\tcustomers\temb/arrival\tlatency p50\tp95\tdropped\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t\n", r.name, r.frames, r.fps(), r.cpuPerFrame(),
			r.framesPerCPUSecond(), 100*r.cpu.Seconds()/r.wall.Seconds(), r.detectionsString(), r.embeddings, r.alerts, len(r.customers), r.embPerArrival(),
			ms(r.p(0.5)), ms(r.p(0.95)), r.dropped)
	}
	tw.Flush()
	if *arrivals {
		fmt.Fprintln(out, "\narrivals (decision: frame time from the first usable face to the deciding frame; hand-off: wall clock to the notifier; latency: to the alert's receipt):")
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "pipeline\tcamera\tcustomer\tvotes\tdistance\tdecision\thand-off\tlatency\t")
		for _, r := range rows {
			for i, a := range r.list {
				handoff, lat := "-", "-"
				if i < len(r.handoffs) {
					handoff = ms(r.handoffs[i])
				}
				if i < len(r.latencies) {
					lat = ms(r.latencies[i])
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.3f\t%s\t%s\t%s\t\n", r.name, a.Camera, a.CustomerID, a.Votes, a.Distance,
					ms(a.At.Sub(a.FirstSeen)), handoff, lat)
			}
		}
		tw.Flush()
	}
	if *naive {
		fmt.Fprintf(out, "\nconcierge does %.1f× the naive loop's frames per CPU-second (first and last rows).\n",
			fast.framesPerCPUSecond()/rows[len(rows)-1].framesPerCPUSecond())
	}
	if *publish {
		fmt.Fprintln(out, "latency: from the first frame holding a usable face of the customer to the alert's receipt by a NATS subscriber (visit log and outbox in SQLite, JetStream publication), at the clip's own frame rate (the realtime rows).")
	} else {
		fmt.Fprintln(out, "latency: from the first frame holding a usable face of the customer to the arrival's hand-off to the notifier, at the clip's own frame rate (the realtime rows).")
	}
	return nil
}

type benchResult struct {
	name               string
	frames             int64
	wall, cpu          time.Duration
	detections         int64 // -1: the naive loop, which detects on every frame
	embeddings, alerts int64
	customers          map[string]bool
	latencies          []time.Duration // to the alert's receipt, or the hand-off without publishing
	handoffs           []time.Duration // to the notifier
	list               []checkin.Arrival
	dropped            int64
	arrivals           int
}

func (r benchResult) detectionsString() string {
	if r.detections < 0 {
		return fmt.Sprint(r.frames)
	}
	return fmt.Sprint(r.detections)
}

func (r benchResult) fps() float64 { return float64(r.frames) / r.wall.Seconds() }
func (r benchResult) cpuPerFrame() float64 {
	return float64(r.cpu.Milliseconds()) / float64(max(1, r.frames))
}
func (r benchResult) framesPerCPUSecond() float64 { return float64(r.frames) / r.cpu.Seconds() }
func (r benchResult) embPerArrival() string {
	if r.arrivals == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(r.embeddings)/float64(r.arrivals))
}
func (r benchResult) p(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return -1
	}
	s := append([]time.Duration(nil), r.latencies...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func cpus() int { return runtime.GOMAXPROCS(0) }

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// recorder is the benchmark's notifier: it notes when each arrival is
// handed over, to measure latency from the first usable frame, and passes
// it on to next, the publisher, when set.
type recorder struct {
	next checkin.Notifier

	mu        sync.Mutex
	arrivals  []checkin.Arrival
	latencies []time.Duration
}

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

// emptyWarmup is left out of the empty-lobby rows: opening the stream and
// the detector's first passes (the first frame counts as motion, and
// detection lingers a second after it) cost about 0.2 s of CPU once, which
// would add a point to a 20-second clip's share of a core, and the idle
// stride starts 2 s after the last motion.
const emptyWarmup = 4 * time.Second

// benchPipeline runs the pipeline on a video file, as fast as it goes or at
// the file's frame rate, with one or more cameras reading it.
func benchPipeline(ctx context.Context, app *faceApp, cfg Config, name, video string, realtime bool, cameras int) (benchResult, error) {
	return runPipeline(ctx, app, cfg, pipelineRun{name: name, video: video, realtime: realtime, cameras: cameras})
}

type pipelineRun struct {
	name, video string
	realtime    bool
	cameras     int
	// skip passes over the clip's first frames (vision.SourceConfig.Skip);
	// place draws its frames on a larger canvas (SourceConfig.Place).
	skip  int64
	place *vision.Placement
	// warmup, when set, leaves the first stretch of wall time out of the
	// frames, CPU and wall time measured.
	warmup time.Duration
	// alerts, when set, records and publishes the arrivals as the daemon
	// does; latency is then measured to their receipt.
	alerts *benchAlerts
}

func runPipeline(ctx context.Context, app *faceApp, cfg Config, run pipelineRun) (benchResult, error) {
	name, video, realtime, cameras := run.name, run.video, run.realtime, run.cameras
	svc, err := checkin.NewService(cfg.checkinConfig(), app.svc.Gallery)
	if err != nil {
		return benchResult{}, err
	}
	svc.Calibrated = func() float64 { return app.svc.Recognition().Threshold }
	rec := &recorder{}
	svc.Notifier = rec
	if run.alerts != nil {
		svc.VisitLog = run.alerts.db
		rec.next = run.alerts.pub
	}
	svc.Logger = app.svc.Logger
	var cams []*vision.Camera
	for i := 0; i < cameras; i++ {
		det, err := vision.NewYuNet(models.Path(cfg.Models.Dir, models.YuNet))
		if err != nil {
			return benchResult{}, fmt.Errorf("%v (run `concierge models fetch --set shipped`)", err)
		}
		defer det.Close()
		cam, err := vision.NewCamera(vision.CameraConfig{ID: fmt.Sprintf("bench-%d", i+1), MinFacePx: cfg.Vision.MinFacePx,
			DetectInterval: cfg.Vision.DetectInterval, Source: vision.SourceConfig{Source: video, Realtime: realtime, Skip: run.skip, Place: run.place}},
			det, app.embedder, svc)
		if err != nil {
			return benchResult{}, err
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
	cpu0, t0 := cpuTime(), time.Now()
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
	if run.warmup > 0 {
		t := time.NewTimer(run.warmup)
		select {
		case <-t.C:
			cpu0, t0 = cpuTime(), time.Now()
			counts0 = counts()
		case <-done: // a clip shorter than the warm-up is measured whole
		}
		t.Stop()
	}
	<-done
	r := benchResult{name: name, wall: time.Since(t0), cpu: cpuTime() - cpu0, customers: map[string]bool{}}
	c := counts()
	r.frames, r.detections, r.embeddings, r.dropped = c[0]-counts0[0], c[1]-counts0[1], c[2]-counts0[2], c[3]-counts0[3]
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r.alerts, r.arrivals, r.list = int64(len(rec.arrivals)), len(rec.arrivals), rec.arrivals
	for _, a := range rec.arrivals {
		r.customers[a.CustomerID] = true
	}
	if realtime {
		r.latencies, r.handoffs = rec.latencies, rec.latencies
		if run.alerts != nil {
			if r.latencies, err = run.alerts.latencies(rec.arrivals, 5*time.Second); err != nil {
				return r, err
			}
		}
	}
	return r, ctx.Err()
}

// benchNaive is what a go-face user would write first: every frame, as
// fast as it goes, every face detected and embedded. With the MobileFaceNet
// engine the same loop runs YuNet and the embedder on every face of every
// frame, so that both rows match against the same gallery.
func benchNaive(ctx context.Context, app *faceApp, video string) (benchResult, error) {
	r := benchResult{name: "naive loop: every face of every frame", customers: map[string]bool{}, detections: -1}
	var dlib *vision.Engine
	if app.dnn == nil {
		var err error
		if dlib, err = app.dlib(app.svc.Logger); err != nil {
			return r, err
		}
	}
	src, err := vision.NewSource(vision.SourceConfig{Source: video})
	if err != nil {
		return r, err
	}
	var ferr error
	cpu0, t0 := cpuTime(), time.Now()
	src.Run(ctx, func(f vision.Frame) {
		if ferr != nil {
			return
		}
		r.frames++
		var faces []face.Face
		var err error
		if dlib != nil {
			faces, err = dlib.DetectMat(ctx, f.Mat)
		} else {
			faces, err = app.dnn.DetectMat(ctx, f.Mat)
		}
		if err != nil {
			ferr = err
			return
		}
		r.embeddings += int64(len(faces))
		for _, fc := range faces {
			if m, ok := app.svc.Gallery.Search(&fc.Embedding); ok && app.svc.Recognition().Accept(m) {
				r.alerts++ // one alert per matched frame: what staff would get
				r.customers[m.CustomerID] = true
			}
		}
	})
	r.wall, r.cpu = time.Since(t0), cpuTime()-cpu0
	if ferr != nil {
		return r, ferr
	}
	return r, ctx.Err()
}
