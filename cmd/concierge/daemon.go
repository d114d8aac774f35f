package main

import (
	"context"
	"errors"
	"image"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/hub"
	"concierge/models"
	"concierge/sqlite"
	"concierge/vision"
)

// Daemon is `concierge run`: cameras to arrivals to alerts, with the HTTP
// health and metrics endpoints. Open starts everything; Close stops it in
// reverse order and is safe to call twice.
type Daemon struct {
	cfg Config
	log *slog.Logger

	app      *faceApp
	tiers    *tierLookup
	checkin  *checkin.Service
	notifier checkin.Notifier
	feedback *feedback
	learn    *learner                          // nil: match.door_templates 0
	held     atomic.Pointer[checkin.HeldFaces] // learn's, for the erasure queue
	privacy  *privacy
	closers  []func() error // alert publisher, NATS server: closed last-opened first

	natsURL   string
	natsCreds *alert.Credentials // the embedded server's identities; nil with nats.url
	desk      *alert.Desk
	cards     *alert.Cards // nil: no verify band, or NATS refused its stream
	eraser    *alert.Eraser
	hq        *hub.Replicator // nil without hq.url (daemon_hq.go)

	cameras   []*vision.Camera
	detectors []*vision.YuNet

	ln   net.Listener
	http *http.Server
	reg  *prometheus.Registry

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu        sync.Mutex
	camErrors map[string]string

	health health // what /healthz knows beyond counters (daemon_health.go)
}

// NewDaemon returns an unopened daemon.
func NewDaemon(cfg Config, log *slog.Logger) *Daemon {
	return &Daemon{cfg: cfg, log: log, camErrors: map[string]string{}, health: health{probeEvery: defaultProbeEvery}}
}

// Open starts the daemon. On error everything opened so far is closed.
func (d *Daemon) Open(ctx context.Context) (err error) {
	d.ctx, d.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	cfg := d.cfg
	// A database that cannot be written would drop every arrival: refuse
	// to start rather than run blind.
	if err := sqlite.CheckWritable(ctx, cfg.DB); err != nil {
		return err
	}
	d.health.started = time.Now()
	if d.app, err = openFaceAppFor(ctx, cfg, d.log); err != nil {
		return err
	}
	// Polling lets tier imports made by the CLI reach the running daemon.
	if d.tiers, err = openTiers(ctx, cfg, d.app.db, d.log, 5*time.Second); err != nil {
		return err
	}
	d.closers = append(d.closers, d.tiers.Close)

	if err := d.openAlerts(ctx); err != nil {
		return err
	}
	d.openCards(ctx)
	if err := d.openDesk(); err != nil {
		return err
	}
	if err := d.openEraser(); err != nil {
		return err
	}
	if err := d.openHQ(ctx); err != nil {
		return err
	}
	if err := d.openFeedback(ctx); err != nil {
		return err
	}
	if err := d.openLearning(ctx); err != nil {
		return err
	}

	svc, err := checkin.NewService(cfg.checkinConfig(), d.app.svc.Gallery)
	if err != nil {
		return err
	}
	svc.Calibrated = func() float64 { return d.app.svc.Recognition().Threshold }
	svc.Unlearned = d.app.svc.Unlearned
	svc.Notifier = d.notifier
	svc.VisitLog = d.app.db
	svc.Directory = directory{d.app.db}
	svc.Mask = checkin.MaskName(cfg.Checkin.NameMask)
	svc.Tiers = d.tiers
	svc.Strictness = d.feedback.svc.Strictness
	svc.Logger = d.log
	d.wireCards(svc)
	d.wireLearning(svc)
	d.checkin = svc
	d.openPrivacy()

	if err := d.openCameras(); err != nil {
		return err
	}
	if err := d.openHTTP(); err != nil {
		return err
	}
	d.goRun("visit purge", func(ctx context.Context) error {
		return svc.PurgeLoop(ctx, time.Hour, cfg.Checkin.Retention)
	})
	d.goRun("service event purge", func(ctx context.Context) error {
		return alert.PurgeServiceLoop(ctx, d.app.db, time.Hour, cfg.Report.Retention, nil, d.log.With("component", "report"))
	})
	d.goRun("gallery refresh", d.refreshGallery)
	d.goRun("arrival retry", svc.RetryLoop)
	d.goRun("database probe", d.probeLoop)
	d.goRun("health log", d.logHealthChanges)
	for _, cam := range d.cameras {
		cam := cam
		d.goRun("camera", func(ctx context.Context) error {
			err := cam.Run(ctx)
			if err != nil && ctx.Err() == nil {
				d.mu.Lock()
				d.camErrors[cam.ID()] = cam.Source().Mask(err.Error())
				d.mu.Unlock()
			}
			return err
		})
	}
	d.log.Info("concierge running", "branch", cfg.Branch, "cameras", len(d.cameras), "http", d.HTTPAddr(),
		"customers", d.app.svc.Gallery.Customers())
	d.logRule()
	return nil
}

// logRule says which recognition rule is in force for the gallery's size
// and what it is expected to cost in false alerts, warning when that is
// over the budget (a fixed match.threshold in a gallery grown past it).
func (d *Daemon) logRule() {
	n := d.app.svc.Gallery.Customers()
	r := d.app.svc.Recognition()
	exp := d.cfg.expectedFalseAlerts(n)
	attrs := []any{"customers", n, "threshold", math.Round(r.Threshold*1000) / 1000, "margin", r.Margin, "face_slack", r.FaceSlack,
		"votes", d.cfg.Checkin.Votes, "expected_false_alerts_per_stranger_visit", exp,
		"target", d.cfg.Match.FalseAlertTarget}
	if exp > d.cfg.Match.FalseAlertTarget*1.01 {
		d.log.Warn("match rule expected to exceed the false-alert target at this gallery size; "+
			"set match.threshold to 0 or calibrate with `concierge eval` (docs/accuracy.md)", attrs...)
		return
	}
	d.log.Info("match rule", attrs...)
}

// openFaceAppFor is openFaceApp for callers without a Main.
func openFaceAppFor(ctx context.Context, cfg Config, log *slog.Logger) (*faceApp, error) {
	m := &Main{Logger: log}
	return m.openFaceApp(ctx, cfg, true)
}

func (d *Daemon) openCameras() error {
	if len(d.cfg.Cameras) == 0 {
		return nil
	}
	vision.SetThreads(d.cfg.Vision.Threads)
	yunet := models.Path(d.cfg.Models.Dir, models.YuNet)
	for _, c := range d.cfg.Cameras {
		det, err := vision.NewYuNet(yunet)
		if err != nil {
			return concierge.Errorf(concierge.EUNAVAILABLE, "camera %s: %w (run `concierge models fetch --set shipped`)", c.ID, err)
		}
		d.detectors = append(d.detectors, det)
		var roi []image.Point
		for _, p := range c.ROI {
			roi = append(roi, image.Pt(p[0], p[1]))
		}
		minFace := d.cfg.Vision.MinFacePx
		if c.MinFacePx > 0 {
			minFace = c.MinFacePx
		}
		cam, err := vision.NewCamera(vision.CameraConfig{
			ID: c.ID,
			Source: vision.SourceConfig{
				Source: c.Source, Loop: c.Loop, Realtime: !c.Fast, Reconnect: !c.Fast || c.Loop,
			},
			MinFacePx: minFace, DetectInterval: d.cfg.Vision.DetectInterval,
			ROI:         roi,
			ThumbnailPx: d.cfg.thumbnailPx(),
			Logger:      d.log,
		}, det, d.app.embedder, d.checkin)
		if err != nil {
			return err
		}
		d.cameras = append(d.cameras, cam)
	}
	return nil
}

// goRun runs fn in a goroutine owned by the daemon.
func (d *Daemon) goRun(what string, fn func(ctx context.Context) error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := fn(d.ctx); err != nil && d.ctx.Err() == nil {
			d.log.Error(what+" stopped", "err", err)
		}
	}()
}

// refreshGallery reloads the gallery when another process enrolled or
// forgot someone.
func (d *Daemon) refreshGallery(ctx context.Context) error {
	last, _ := d.app.db.TemplatesVersion(ctx)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, err := d.app.db.TemplatesVersion(ctx)
		if err != nil || v == last {
			continue
		}
		if err := d.app.svc.Reload(ctx); err != nil {
			d.log.Warn("gallery reload failed", "err", err)
			continue
		}
		last = v
		if err := d.tiers.reload(ctx, d.app.db); err != nil {
			d.log.Warn("manual tiers reload failed", "err", err)
		}
		d.log.Info("gallery reloaded", "customers", d.app.svc.Gallery.Customers())
		d.logRule()
	}
}

func (d *Daemon) openHTTP() error {
	ln, err := net.Listen("tcp", d.cfg.HTTP.Addr)
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "http.addr %s: %w", d.cfg.HTTP.Addr, err)
	}
	d.ln = ln
	d.reg = prometheus.NewRegistry()
	d.registerMetrics()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.handleHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	d.mountWeb(mux)
	d.mountKiosk(mux)
	d.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http stopped", "err", err)
		}
	}()
	return nil
}

// HTTPAddr is the address the HTTP server listens on (useful with port 0).
func (d *Daemon) HTTPAddr() string {
	if d.ln == nil {
		return ""
	}
	return d.ln.Addr().String()
}

func (d *Daemon) registerMetrics() {
	counter := func(name, help string, f func() int64) {
		d.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "concierge", Name: name, Help: help},
			func() float64 { return float64(f()) }))
	}
	st := &d.checkin.Stats
	counter("tracks_started_total", "Face tracks started.", st.TracksStarted.Load)
	counter("tracks_dropped_total", "Tracks that ended without an arrival (nothing kept).", st.TracksDropped.Load)
	counter("embeddings_total", "Face embeddings computed.", st.Embeddings.Load)
	counter("arrivals_total", "Arrivals decided and notified.", st.Arrivals.Load)
	counter("arrivals_suppressed_total", "Arrivals suppressed by the cooldown.", st.Suppressed.Load)
	counter("verify_cards_total", "\"Please verify\" cards published (match.verify_target).", st.Cards.Load)
	counter("notify_errors_total", "Arrivals whose notification failed.", st.NotifyErrors.Load)
	for _, c := range d.cameras {
		c := c
		labels := prometheus.Labels{"camera": c.ID()}
		for name, f := range map[string]func() int64{
			"camera_frames_total":       c.Source().Stats.Frames.Load,
			"camera_dropped_total":      c.Source().Stats.Dropped.Load,
			"camera_reconnects_total":   c.Source().Stats.Reconnects.Load,
			"camera_gated_total":        c.Stats.Gated.Load,
			"camera_detections_total":   c.Stats.Detections.Load,
			"camera_busy_seconds_total": func() int64 { return int64(c.Stats.Busy().Seconds()) },
		} {
			d.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "concierge", Name: name,
				Help: "Per-camera pipeline counter.", ConstLabels: labels}, func() float64 { return float64(f()) }))
		}
	}
	if pub, ok := d.notifier.(*alert.Publisher); ok {
		counter("alerts_enqueued_total", "Alert messages written to the outbox.", pub.Stats.Enqueued.Load)
		counter("alerts_published_total", "Alert messages acknowledged by JetStream.", pub.Stats.Published.Load)
		counter("alert_publish_failures_total", "Failed attempts to publish alert messages (retried).", pub.Stats.Failures.Load)
	}
	d.registerHealthMetrics()
	d.feedback.registerMetrics(d.reg)
	if d.learn != nil {
		d.learn.registerMetrics(d.reg)
	}
	d.registerPrivacyMetrics()
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "concierge", Name: "gallery_customers",
		Help: "Customers in the recognition gallery."}, func() float64 { return float64(d.app.svc.Gallery.Customers()) }))
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "concierge", Name: "match_threshold",
		Help: "Distance threshold in force for the gallery's size."}, func() float64 { return d.app.svc.Recognition().Threshold }))
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "concierge", Name: "expected_false_alerts_per_stranger_visit",
		Help: "Expected false alerts per stranger visit at the threshold and gallery size, from the engine's measured impostor tail (upper estimate)."},
		func() float64 { return d.cfg.expectedFalseAlerts(d.app.svc.Gallery.Customers()) }))
}

// Close stops the cameras first (no new arrivals), then the HTTP server,
// the alert path (flushing what it can) and the database.
func (d *Daemon) Close() error {
	var errs []error
	d.once.Do(func() {
		if d.cancel != nil {
			d.cancel()
		}
		if d.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			errs = append(errs, d.http.Shutdown(ctx))
			cancel()
		}
		d.wg.Wait()
		for _, det := range d.detectors {
			det.Close()
		}
		for i := len(d.closers) - 1; i >= 0; i-- {
			errs = append(errs, d.closers[i]())
		}
		if d.app != nil {
			errs = append(errs, d.app.Close())
		}
	})
	return errors.Join(errs...)
}
