package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"concierge"
	"concierge/alert"
)

// feedback is the daemon's side of what staff answer to alerts: the
// escalator that raises unclaimed alerts to the manager, and the reader of
// "not this person" marks that tightens a customer's match rule through
// checkin's Strictness hook (alert.Feedback).
type feedback struct {
	esc *alert.Escalator
	svc *alert.Feedback
}

// openFeedback starts the reader of the rejection feed, which loads the
// false-match rules from the database first (so a restart keeps the day's
// tightening), and the escalator. It runs after openAlerts, which knows
// the NATS URL.
func (d *Daemon) openFeedback(ctx context.Context) error {
	fc, err := d.cfg.feedbackConfig()
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	f := &feedback{}
	f.svc, err = alert.NewFeedback(alert.FeedbackConfig{Branch: d.cfg.Branch, Book: d.app.db, Policy: fc,
		Conn: d.alertConn("concierge-" + d.cfg.Branch + "-feedback"), Logger: d.log})
	if err != nil {
		return err
	}
	if err := f.svc.Open(ctx); err != nil {
		return err
	}
	d.closers = append(d.closers, f.svc.Close)
	f.esc, err = alert.NewEscalator(alert.EscalatorConfig{Branch: d.cfg.Branch,
		Conn: d.alertConn("concierge-" + d.cfg.Branch + "-escalator"), After: d.cfg.Alerts.escalateAfter(), Service: d.app.db, Logger: d.log})
	if err != nil {
		return err
	}
	if err := f.esc.Open(ctx); err != nil {
		return err
	}
	d.closers = append(d.closers, f.esc.Close)
	d.feedback = f
	return nil
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
		func() float64 { return float64(f.svc.Stats.Recorded.Load()) })
	counter("escalations_total", "Unclaimed alerts escalated to the branch manager.",
		func() float64 { return float64(f.esc.Stats.Escalated.Load()) })
	gauge("alerts_pending_claim", "Alerts waiting for a claim before they are escalated.",
		func() float64 { return float64(f.esc.Pending()) })
	gauge("customers_strict", "Customers whose match rule is tightened by false matches now.",
		func() float64 { s, _ := f.svc.Counts(time.Now()); return float64(s) })
	gauge("customers_reenroll_suggested", "Customers with repeated false matches, to be enrolled again.",
		func() float64 { _, r := f.svc.Counts(time.Now()); return float64(r) })
}
