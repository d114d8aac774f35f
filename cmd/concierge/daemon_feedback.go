package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/sqlite"
)

// feedback is the daemon's side of what staff answer to alerts: the
// escalator that raises unclaimed alerts to the manager, and the reader of
// "not this person" marks that records each one and tightens that
// customer's match rule through checkin's Strictness hook.
type feedback struct {
	db     *sqlite.DB
	policy *checkin.Feedback
	esc    *alert.Escalator
	sub    *alert.Subscriber
	log    *slog.Logger
	now    func() time.Time
	// started tells marks replayed at start, which an earlier run has
	// already reported, from new ones.
	started time.Time

	recorded atomic.Int64 // new false matches recorded by this process
}

// openFeedback loads the false-match rules from the database (so a restart
// keeps the day's tightening), and starts the escalator and the reader of
// the rejection feed. It runs after openAlerts, which knows the NATS URL.
func (d *Daemon) openFeedback(ctx context.Context) error {
	fc, err := d.cfg.feedbackConfig()
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%v", err)
	}
	policy, err := checkin.NewFeedback(fc)
	if err != nil {
		return err
	}
	f := &feedback{db: d.app.db, policy: policy, log: d.log.WithGroup("feedback"), now: time.Now, started: time.Now()}
	if err := f.reload(ctx); err != nil {
		return err
	}
	f.esc, err = alert.NewEscalator(alert.EscalatorConfig{Branch: d.cfg.Branch,
		Conn: d.alertConn("concierge-" + d.cfg.Branch + "-escalator"), After: d.cfg.Alerts.escalateAfter(), Service: d.app.db, Logger: d.log})
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%v", err)
	}
	if err := f.esc.Open(ctx); err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "%v", err)
	}
	d.closers = append(d.closers, f.esc.Close)
	f.sub, err = alert.NewSubscriber(alert.SubscriberConfig{Branch: d.cfg.Branch,
		Conn: d.alertConn("concierge-" + d.cfg.Branch + "-feedback"), Logger: d.log})
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%v", err)
	}
	if err := f.sub.Open(); err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "%v", err)
	}
	d.closers = append(d.closers, f.sub.Close)
	d.feedback = f
	d.goRun("false-match feed", f.follow)
	d.goRun("false-match reload", f.reloadEvery(time.Minute))
	return nil
}

// reload rebuilds the rules from the database.
func (f *feedback) reload(ctx context.Context) error {
	marks, err := f.db.FalseMatches(ctx)
	if err != nil {
		return err
	}
	f.policy.Reset(marks)
	return nil
}

// reloadEvery picks up what other processes changed: a re-enrollment ends
// a lasting rule, `concierge forget` removes a customer's marks.
func (f *feedback) reloadEvery(every time.Duration) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			if err := f.reload(ctx); err != nil && ctx.Err() == nil {
				f.log.Warn("false-match reload failed", slog.Any("error", err))
			}
		}
	}
}

// follow reads every rejection the stream keeps, then new ones. Replaying
// the old ones after a restart is harmless: the database keeps one mark
// per alert.
func (f *feedback) follow(ctx context.Context) error {
	for ev, err := range f.sub.Events(ctx, alert.Start{All: true}, alert.FeedRejection) {
		if err != nil {
			f.log.Warn("unreadable rejection skipped", slog.Any("error", err))
			continue
		}
		f.reject(ctx, ev)
	}
	return nil
}

// reject records one "not this person" mark. The customer is the one our
// visit record names, whatever the client sent; the time is when the
// stream stored the mark, not the client's clock.
func (f *feedback) reject(ctx context.Context, ev alert.Event) {
	r := ev.Rejection
	level := slog.LevelWarn
	if ev.Stored.Before(f.started) {
		level = slog.LevelDebug
	}
	m, fresh, err := f.db.RecordFalseMatch(ctx, r.AlertID, r.By, r.Reason, ev.Stored)
	switch {
	case concierge.ErrorCode(err) == concierge.ENOTFOUND:
		f.log.Log(ctx, level, "not-this-person mark skipped", slog.String("alert", r.AlertID),
			slog.String("why", concierge.ErrorMessage(err)))
		return
	case err != nil:
		// The mark stays in the stream: the next start replays it.
		f.log.Error("not-this-person mark not recorded", slog.String("alert", r.AlertID), slog.Any("error", err))
		return
	case !fresh:
		return
	}
	if r.CustomerID != m.CustomerID {
		// The desk writes the visit's customer; another one means a mark
		// from elsewhere (an external NATS): the visit's is used.
		f.log.Warn("not-this-person mark names another customer than the visit; the visit's is used", slog.String("alert", r.AlertID))
	}
	f.recorded.Add(1)
	if err := f.reload(ctx); err != nil {
		f.log.Error("false-match reload failed", slog.Any("error", err))
		f.policy.Add(m) // tighten at least until the next reload
	}
	extra, delta := f.policy.Strictness(m.CustomerID, f.now())
	f.log.Info("false match recorded; customer's rule tightened", slog.String("alert", m.AlertID),
		slog.String("camera", m.Camera), slog.Float64("distance", m.Distance),
		slog.Int("extra_votes", extra), slog.Float64("threshold_delta", delta))
	f.log.Debug("false match's customer", slog.String("alert", m.AlertID), slog.String("customer", m.CustomerID))
}

// registerMetrics adds the feedback's counters to the daemon's registry.
func (f *feedback) registerMetrics(reg *prometheus.Registry) {
	counter := func(name, help string, v func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "concierge", Name: name, Help: help}, v))
	}
	gauge := func(name, help string, v func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "concierge", Name: name, Help: help}, v))
	}
	counter("false_matches_total", `Alerts staff marked "not this person" (recorded by this process).`,
		func() float64 { return float64(f.recorded.Load()) })
	counter("escalations_total", "Unclaimed alerts escalated to the branch manager.",
		func() float64 { return float64(f.esc.Stats.Escalated.Load()) })
	gauge("alerts_pending_claim", "Alerts waiting for a claim before they are escalated.",
		func() float64 { return float64(f.esc.Pending()) })
	gauge("customers_strict", "Customers whose match rule is tightened by false matches now.",
		func() float64 { s, _ := f.policy.Counts(f.now()); return float64(s) })
	gauge("customers_reenroll_suggested", "Customers with repeated false matches, to be enrolled again.",
		func() float64 { _, r := f.policy.Counts(f.now()); return float64(r) })
}
