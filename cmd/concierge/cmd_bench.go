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

	out := m.Stdout
	fmt.Fprintf(out, "clip %s, %d customers enrolled, engine %s, GOMAXPROCS %d\n", *video, app.svc.Gallery.Customers(), app.embedder.Model(), cpus())
	fast, err := benchPipeline(ctx, app, cfg, "concierge, as fast as it goes", *video, false, 1)
	if err != nil {
		return err
	}
	rows := []benchResult{fast}
	for _, run := range []struct {
		name    string
		cameras int
	}{{"concierge, 1 camera at the clip's fps", 1}, {"concierge, 2 cameras at the clip's fps", 2}} {
		r, err := benchPipeline(ctx, app, cfg, run.name, *video, true, run.cameras)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	if *empty {
		clip := filepath.Join(filepath.Dir(cfg.DB), "empty.avi")
		if err := vision.WriteClip(clip, vision.Scene{Width: 1280, Height: 720, FPS: 15, Seconds: 20}); err != nil {
			return err
		}
		r, err := benchPipeline(ctx, app, cfg, "concierge, empty lobby at 15 fps", clip, true, 1)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	if *naive {
		n, err := benchNaive(ctx, app, *video)
		if err != nil {
			return err
		}
		rows = append(rows, n)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pipeline\tframes\tframes/s\tCPU ms/frame\tframes/CPU-s\t% of a core\tembeddings\talerts\tcustomers\temb/arrival\tlatency p50\tp95\tdropped\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t\n", r.name, r.frames, r.fps(), r.cpuPerFrame(),
			r.framesPerCPUSecond(), 100*r.cpu.Seconds()/r.wall.Seconds(), r.embeddings, r.alerts, len(r.customers), r.embPerArrival(),
			ms(r.p(0.5)), ms(r.p(0.95)), r.dropped)
	}
	tw.Flush()
	if *naive {
		fmt.Fprintf(out, "\nconcierge does %.1f× the naive loop's frames per CPU-second (first and last rows).\n",
			fast.framesPerCPUSecond()/rows[len(rows)-1].framesPerCPUSecond())
	}
	fmt.Fprintln(out, "latency: from the first frame holding a usable face of the customer to the arrival's hand-off to the notifier, at the clip's own frame rate (the realtime row).")
	return nil
}

type benchResult struct {
	name               string
	frames             int64
	wall, cpu          time.Duration
	embeddings, alerts int64
	customers          map[string]bool
	latencies          []time.Duration
	dropped            int64
	arrivals           int
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
// handed over, to measure latency from the first usable frame.
type recorder struct {
	mu        sync.Mutex
	start     time.Time
	arrivals  []checkin.Arrival
	latencies []time.Duration
}

func (r *recorder) Notify(_ context.Context, a checkin.Arrival, _ []checkin.RiskFlag) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.arrivals = append(r.arrivals, a)
	// Realtime file frames are stamped with their capture time, so the
	// wall clock now minus FirstSeen is the true end-to-end delay.
	r.latencies = append(r.latencies, time.Since(a.FirstSeen))
	return nil
}

func benchPipeline(ctx context.Context, app *faceApp, cfg Config, name, video string, realtime bool, cameras int) (benchResult, error) {
	cc := checkin.DefaultConfig()
	cc.Branch = cfg.Branch
	cc.Threshold, cc.Margin = cfg.rule().Threshold, cfg.rule().Margin
	cc.Votes, cc.MaxEmbeddings = cfg.Checkin.Votes, cfg.Checkin.MaxEmbeddings
	cc.MinEmbedInterval = cfg.Checkin.MinEmbedInterval
	svc, err := checkin.NewService(cc, app.svc.Gallery)
	if err != nil {
		return benchResult{}, err
	}
	rec := &recorder{}
	svc.Notifier = rec
	svc.Logger = app.svc.Logger
	var cams []*vision.Camera
	for i := 0; i < cameras; i++ {
		det, err := vision.NewYuNet(models.Path(cfg.Models.Dir, models.YuNet))
		if err != nil {
			return benchResult{}, fmt.Errorf("%v (run `concierge models fetch --set onnx`)", err)
		}
		defer det.Close()
		cam, err := vision.NewCamera(vision.CameraConfig{ID: fmt.Sprintf("bench-%d", i+1), MinFacePx: cfg.Vision.MinFacePx,
			DetectInterval: cfg.Vision.DetectInterval, Source: vision.SourceConfig{Source: video, Realtime: realtime}},
			det, app.embedder, svc)
		if err != nil {
			return benchResult{}, err
		}
		cams = append(cams, cam)
	}
	cpu0, t0 := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for _, cam := range cams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cam.Run(ctx) // a file without Loop ends with an error that says so
		}()
	}
	wg.Wait()
	r := benchResult{name: name, wall: time.Since(t0), cpu: cpuTime() - cpu0, customers: map[string]bool{}}
	for _, cam := range cams {
		r.frames += cam.Stats.Frames.Load()
		r.embeddings += cam.Stats.Embeddings.Load()
		r.dropped += cam.Source().Stats.Dropped.Load()
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r.alerts, r.arrivals = int64(len(rec.arrivals)), len(rec.arrivals)
	for _, a := range rec.arrivals {
		r.customers[a.CustomerID] = true
	}
	if realtime {
		r.latencies = rec.latencies
	}
	return r, ctx.Err()
}

// benchNaive is what a go-face user would write first: every frame, as
// fast as it goes, every face detected and embedded. With the MobileFaceNet
// engine the same loop runs YuNet and the embedder on every face of every
// frame, so that both rows match against the same gallery.
func benchNaive(ctx context.Context, app *faceApp, video string) (benchResult, error) {
	r := benchResult{name: "naive loop: every face of every frame", customers: map[string]bool{}}
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
			if m, ok := app.svc.Gallery.Search(&fc.Embedding); ok && app.svc.Rule.Accept(m) {
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
