package main

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"concierge/enroll"
)

// privacy is the daemon's share of the retention rules: a daily pass that
// deletes face data kept past enroll.retention, and the count of people
// whose face data the box stores, against the CAC filing threshold.
type privacy struct {
	retention *enroll.Retention
	subjects  atomic.Int64 // -1 until first counted
}

// openPrivacy starts the daily retention pass; the first runs at once.
func (d *Daemon) openPrivacy() {
	p := &privacy{retention: &enroll.Retention{
		Store: d.app.db, Gallery: d.app.svc.Gallery,
		MaxAge: d.cfg.Enroll.Retention, WarnAt: d.cfg.Enroll.FilingWarnAt,
		Logger: d.log.With("component", "retention"),
	}}
	p.subjects.Store(-1)
	d.privacy = p
	d.goRun("retention", func(ctx context.Context) error { return p.loop(ctx, 24*time.Hour) })
}

func (p *privacy) loop(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rep, err := p.retention.Run(ctx)
		if err != nil && ctx.Err() == nil {
			p.retention.Logger.Error("retention pass failed", "err", err)
		}
		if err == nil || rep.Subjects > 0 {
			p.subjects.Store(int64(rep.Subjects))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// count is the people whose face data is stored, read fresh for a scrape;
// the last known count if the database does not answer in time.
func (p *privacy) count() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n, err := p.retention.Store.FaceDataSubjects(ctx); err == nil {
		p.subjects.Store(int64(n))
	}
	if n := p.subjects.Load(); n >= 0 {
		return float64(n)
	}
	return math.NaN()
}

// registerPrivacyMetrics adds the face data gauges.
func (d *Daemon) registerPrivacyMetrics() {
	if d.privacy == nil {
		return
	}
	p := d.privacy
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "concierge", Name: "face_data_subjects",
		Help: "People whose face templates this box stores (the CAC filing duty starts at 100,000 across the bank)."}, p.count))
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "concierge", Name: "face_data_filing_warning",
		Help: "1 when the people whose face data is stored reach enroll.filing_warn_at, else 0."}, func() float64 {
		w := d.cfg.Enroll.FilingWarnAt
		if w > 0 && p.count() >= float64(w) {
			return 1
		}
		return 0
	}))
}
