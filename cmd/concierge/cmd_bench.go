package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"concierge/face"
	"concierge/models"
	"concierge/replay"
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
	pipe := app.pipeline(cfg)
	// A nil *benchAlerts must not become a non-nil Publisher.
	var sink replay.Publisher
	if alerts != nil {
		sink = alerts
	}
	fast, err := pipe.Play(ctx, replay.Run{Name: "concierge, as fast as it goes", Video: *video, Cameras: 1, Publish: sink})
	if err != nil {
		return err
	}
	rows := []replay.Result{fast}
	for _, run := range []struct {
		name    string
		cameras int
	}{{"concierge, 1 camera at the clip's fps", 1}, {"concierge, 2 cameras at the clip's fps", 2}} {
		if !*realtime {
			break
		}
		r, err := pipe.Play(ctx, replay.Run{Name: run.name, Video: *video, Realtime: true, Cameras: run.cameras, Publish: sink})
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
			r, err := pipe.Play(ctx, replay.Run{Name: e.name, Video: clip, Realtime: true, Cameras: 1, Warmup: emptyWarmup, Publish: sink})
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
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t\n", r.Name, r.Frames, r.FPS(), r.CPUPerFrame(),
			r.FramesPerCPUSecond(), 100*r.CPU.Seconds()/r.Wall.Seconds(), r.DetectionsString(), r.Embeddings, r.Alerts, len(r.Customers), r.EmbPerArrival(),
			ms(r.P(0.5)), ms(r.P(0.95)), r.Dropped)
	}
	tw.Flush()
	if *arrivals {
		fmt.Fprintln(out, "\narrivals (decision: frame time from the first usable face to the deciding frame; hand-off: wall clock to the notifier; latency: to the alert's receipt):")
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "pipeline\tcamera\tcustomer\tvotes\tdistance\tdecision\thand-off\tlatency\t")
		for _, r := range rows {
			for i, a := range r.List {
				handoff, lat := "-", "-"
				if i < len(r.Handoffs) {
					handoff = ms(r.Handoffs[i])
				}
				if i < len(r.Latencies) {
					lat = ms(r.Latencies[i])
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.3f\t%s\t%s\t%s\t\n", r.Name, a.Camera, a.CustomerID, a.Votes, a.Distance,
					ms(a.At.Sub(a.FirstSeen)), handoff, lat)
			}
		}
		tw.Flush()
	}
	if *naive {
		fmt.Fprintf(out, "\nconcierge does %.1f× the naive loop's frames per CPU-second (first and last rows).\n",
			fast.FramesPerCPUSecond()/rows[len(rows)-1].FramesPerCPUSecond())
	}
	if *publish {
		fmt.Fprintln(out, "latency: from the first frame holding a usable face of the customer to the alert's receipt by a NATS subscriber (visit log and outbox in SQLite, JetStream publication), at the clip's own frame rate (the realtime rows).")
	} else {
		fmt.Fprintln(out, "latency: from the first frame holding a usable face of the customer to the arrival's hand-off to the notifier, at the clip's own frame rate (the realtime rows).")
	}
	return nil
}

func ms(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func cpus() int { return runtime.GOMAXPROCS(0) }

// emptyWarmup is left out of the empty-lobby rows: opening the stream and
// the detector's first passes (the first frame counts as motion, and
// detection lingers a second after it) cost about 0.2 s of CPU once, which
// would add a point to a 20-second clip's share of a core, and the idle
// stride starts 2 s after the last motion.
const emptyWarmup = 4 * time.Second

// pipeline is the daemon's pipeline over app's gallery and embedder, with
// the check-in rule the configuration sets (checkinConfig), for replays.
func (a *faceApp) pipeline(cfg Config) *replay.Pipeline {
	return &replay.Pipeline{
		Gallery:        a.svc.Gallery,
		Embedder:       a.embedder,
		Checkin:        cfg.checkinConfig(),
		Calibrated:     func() float64 { return a.svc.Recognition().Threshold },
		Unlearned:      a.svc.Unlearned,
		YuNet:          models.Path(cfg.Models.Dir, models.YuNet),
		MinFacePx:      cfg.Vision.MinFacePx,
		DetectInterval: cfg.Vision.DetectInterval,
		Logger:         a.svc.Logger,
	}
}

// benchPipeline plays a video file through the pipeline, as fast as it
// goes or at the file's frame rate, with one or more cameras reading it.
func benchPipeline(ctx context.Context, app *faceApp, cfg Config, name, video string, realtime bool, cameras int) (replay.Result, error) {
	return app.pipeline(cfg).Play(ctx, replay.Run{Name: name, Video: video, Realtime: realtime, Cameras: cameras})
}

// benchNaive is what a go-face user would write first: every frame, as
// fast as it goes, every face detected and embedded. With the MobileFaceNet
// engine the same loop runs YuNet and the embedder on every face of every
// frame, so that both rows match against the same gallery.
func benchNaive(ctx context.Context, app *faceApp, video string) (replay.Result, error) {
	r := replay.Result{Name: "naive loop: every face of every frame", Customers: map[string]bool{}, Detections: -1}
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
	cpu0, t0 := replay.CPUTime(), time.Now()
	src.Run(ctx, func(f vision.Frame) {
		if ferr != nil {
			return
		}
		r.Frames++
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
		r.Embeddings += int64(len(faces))
		for _, fc := range faces {
			if m, ok := app.svc.Gallery.Search(&fc.Embedding); ok && app.svc.Recognition().Accept(m) {
				r.Alerts++ // one alert per matched frame: what staff would get
				r.Customers[m.CustomerID] = true
			}
		}
	})
	r.Wall, r.CPU = time.Since(t0), replay.CPUTime()-cpu0
	if ferr != nil {
		return r, ferr
	}
	return r, ctx.Err()
}
