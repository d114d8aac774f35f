package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/vision"
)

// defaultProbeEvery is how often the daemon proves the database takes
// writes: the visits and the outbox are written only when someone
// arrives, which may be hours apart, and health must not wait for a
// customer to find out.
const defaultProbeEvery = 10 * time.Second

// probeTimeout is the least time a write probe is given: a write that is
// merely slow (a busy disk, a loaded box) is not an unwritable database,
// and with a short probeEvery a probe cut off at that interval would keep
// the health failing after the disk came back.
const probeTimeout = 5 * time.Second

// health is what /healthz knows beyond the counters: the latest write
// probe's failure and when the daemon started (a camera that never
// delivered a frame is stale from then).
type health struct {
	mu         sync.Mutex
	dbErr      string // "" while the latest probe passed
	dbFailing  bool   // the probe failed and has not passed since
	started    time.Time
	probeEvery time.Duration
	cardsErr   string // why verify cards are off although match.verify_target asks for them
}

func (h *health) setDBErr(s string) (changed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	changed = h.dbErr != s
	h.dbErr = s
	return changed
}

func (h *health) failing(f bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dbFailing = f
}

func (h *health) wasFailing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dbFailing
}

func (h *health) cardsError() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cardsErr
}

func (h *health) dbError() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dbErr
}

// probeLoop writes to the database every probeEvery until ctx ends and
// keeps the outcome for /healthz, logging only the changes.
func (d *Daemon) probeLoop(ctx context.Context) error {
	t := time.NewTicker(d.health.probeEvery)
	defer t.Stop()
	// resets is how many of the next passing probes drop the pool's idle
	// connections: those opened while the file was unwritable stay
	// read-only. Two, in case one such connection was busy at the first.
	resets := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(d.health.probeEvery, probeTimeout))
		err := d.app.db.ProbeWrite(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			resets = 2
			// The probe's own connection may be one SQLite opened while
			// the file was unwritable, read-only for good: without a fresh
			// one the probe could never pass again, and only a passing
			// probe resets the pool below.
			d.app.db.ResetConnections()
			// The text varies with the pool's connection (read-only, or
			// refused writes): log the failure once, not each variant.
			if d.health.setDBErr(concierge.ErrorMessage(err)) && !d.health.wasFailing() {
				d.log.Error("database write probe failed", "err", err)
			}
			d.health.failing(true)
			continue
		}
		if resets > 0 {
			d.app.db.ResetConnections()
			resets--
		}
		if d.health.setDBErr(""); d.health.wasFailing() {
			d.log.Info("database takes writes again")
			d.health.failing(false)
			d.checkin.RetryNow()
		}
	}
}

// problem is one reason /healthz is failing.
type problem struct {
	Component string `json:"component"` // camera, database, arrivals, outbox
	ID        string `json:"id,omitempty"`
	Reason    string `json:"reason"`
}

// cameraState is a camera's liveness at time now: the age of its newest
// frame (from the daemon's start before the first) and whether that is
// within vision.camera_stale_after.
func (d *Daemon) cameraState(c *vision.Camera, now time.Time) (age time.Duration, up bool) {
	last := c.Source().Stats.LastFrame()
	if last.IsZero() {
		last = d.health.started
	}
	age = now.Sub(last)
	return age, age <= d.cfg.Vision.CameraStaleAfter
}

// cameraError is the camera's latest error, masked like its source URL.
func (d *Daemon) cameraError(c *vision.Camera) string {
	d.mu.Lock()
	e := d.camErrors[c.ID()]
	d.mu.Unlock()
	if e == "" {
		e = c.Source().Err()
	}
	return c.Source().Mask(e)
}

// problems lists what keeps the daemon from doing its job at time now:
// a camera without frames, a database that refuses writes, arrivals
// waiting for the database, an outbox that does not drain.
func (d *Daemon) problems(ctx context.Context, now time.Time) []problem {
	var out []problem
	for _, c := range d.cameras {
		if age, up := d.cameraState(c, now); !up {
			reason := fmt.Sprintf("no frame for %v (vision.camera_stale_after %v)", age.Round(time.Second), d.cfg.Vision.CameraStaleAfter)
			if e := d.cameraError(c); e != "" {
				reason += ": " + e
			}
			out = append(out, problem{Component: "camera", ID: c.ID(), Reason: reason})
		}
	}
	if e := d.health.dbError(); e != "" {
		out = append(out, problem{Component: "database", Reason: e})
	}
	if d.checkin != nil {
		if n, e := d.checkin.Pending(); n > 0 {
			out = append(out, problem{Component: "arrivals", Reason: fmt.Sprintf("%d arrivals wait to be recorded or queued for staff (retrying): %s", n, e)})
		}
	}
	if pub, ok := d.notifier.(*alert.Publisher); ok {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := pub.CheckDrain(cctx, now, d.cfg.Alerts.OutboxStaleAfter)
		cancel()
		if err != nil {
			out = append(out, problem{Component: "outbox", Reason: concierge.ErrorMessage(err)})
		}
	}
	if e := d.health.cardsError(); e != "" {
		out = append(out, problem{Component: "verify", Reason: e})
	} else if d.cards != nil {
		if e := d.cards.Err(); e != "" {
			out = append(out, problem{Component: "verify", Reason: "the latest verify card could not be published (retried with the next card): " + e})
		}
	}
	if d.cfg.Vision.autoFellBack {
		out = append(out, problem{Component: "engine", Reason: "vision.engine auto fell back to dlib, which recognises few customers " +
			"(docs/engines.md): the MobileFaceNet files in models.dir are missing or damaged; run `concierge models fetch` and restart"})
	}
	if p := d.hqProblem(now); p != nil {
		out = append(out, *p)
	}
	return out
}

type cameraHealth struct {
	ID         string `json:"id"`
	Up         bool   `json:"up"`
	Frames     int64  `json:"frames"`
	Dropped    int64  `json:"dropped"`
	Reconnects int64  `json:"reconnects"`
	Detections int64  `json:"detections"`
	// FPS is the rate frames came at over the last seconds;
	// LastFrameAge how long ago the newest came.
	FPS          float64 `json:"fps"`
	LastFrameAge float64 `json:"last_frame_age_seconds"`
	Error        string  `json:"error,omitempty"`
}

// handleHealth answers 200 with status "ok", or 503 with status
// "failing" and the problems, so that a load balancer, systemd's watchdog
// script or a monitoring probe can act on the status code alone.
func (d *Daemon) handleHealth(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	out := struct {
		Status    string                `json:"status"`
		Problems  []problem             `json:"problems"`
		Branch    string                `json:"branch"`
		Customers int                   `json:"customers"`
		Cameras   []cameraHealth        `json:"cameras"`
		Checkin   checkin.StatsSnapshot `json:"checkin"`
	}{Status: "ok", Problems: d.problems(r.Context(), now), Branch: d.cfg.Branch,
		Customers: d.app.svc.Gallery.Customers(), Checkin: d.checkin.Stats.Snapshot()}
	if out.Problems == nil {
		out.Problems = []problem{}
	}
	for _, c := range d.cameras {
		s := c.Source()
		age, up := d.cameraState(c, now)
		out.Cameras = append(out.Cameras, cameraHealth{ID: c.ID(), Up: up, Frames: s.Stats.Frames.Load(), Dropped: s.Stats.Dropped.Load(),
			Reconnects: s.Stats.Reconnects.Load(), Detections: c.Stats.Detections.Load(),
			FPS: round2(s.Stats.FPS(now)), LastFrameAge: round2(age.Seconds()), Error: d.cameraError(c)})
	}
	w.Header().Set("Content-Type", "application/json")
	if len(out.Problems) > 0 {
		out.Status = "failing"
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(out)
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// registerHealthMetrics adds the per-camera liveness gauges and the
// arrival retry counters.
func (d *Daemon) registerHealthMetrics() {
	for _, c := range d.cameras {
		c := c
		labels := prometheus.Labels{"camera": c.ID()}
		gauge := func(name, help string, f func() float64) {
			d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "concierge", Name: name, Help: help, ConstLabels: labels}, f))
		}
		gauge("camera_up", "1 while the camera delivers frames within vision.camera_stale_after, else 0.", func() float64 {
			if _, up := d.cameraState(c, time.Now()); up {
				return 1
			}
			return 0
		})
		gauge("camera_fps", "Frames per second the camera delivered over the last seconds.", func() float64 {
			return c.Source().Stats.FPS(time.Now())
		})
		gauge("camera_last_frame_age_seconds", "Seconds since the camera's newest frame (since the daemon's start before the first).", func() float64 {
			age, _ := d.cameraState(c, time.Now())
			return age.Seconds()
		})
	}
	st := &d.checkin.Stats
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "concierge", Name: "arrivals_pending",
		Help: "Arrivals held for retry because recording or queueing them failed."}, func() float64 { return float64(st.Pending.Load()) }))
	for name, f := range map[string]func() int64{
		"arrivals_redelivered_total": st.Redelivered.Load,
		"arrivals_dropped_total":     st.Dropped.Load,
	} {
		d.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "concierge", Name: name,
			Help: "Held arrivals delivered after a retry (redelivered) or lost to a full retry queue or an invalid arrival (dropped)."},
			func() float64 { return float64(f()) }))
	}
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "concierge", Name: "database_writable",
		Help: "1 while the latest database write probe passed, else 0."}, func() float64 {
		if d.health.dbError() != "" {
			return 0
		}
		return 1
	}))
}

// logHealthChanges is for the log what /healthz is for probes: it checks
// every few seconds and logs each problem when it starts and when it ends.
func (d *Daemon) logHealthChanges(ctx context.Context) error {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	seen := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := map[string]bool{}
		for _, p := range d.problems(ctx, time.Now()) {
			key := p.Component + "/" + p.ID
			now[key] = true
			if !seen[key] {
				d.log.Warn("health: failing", slog.String("component", p.Component), slog.String("id", p.ID), slog.String("reason", p.Reason))
			}
		}
		for key := range seen {
			if !now[key] {
				d.log.Info("health: recovered", slog.String("what", key))
			}
		}
		seen = now
	}
}
