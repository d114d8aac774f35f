package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/sqlite"
)

// learner turns visits staff confirmed into door templates
// (match.door_templates, docs/accuracy.md "Learning from confirmed
// visits"): check-in holds each decided visit's faces for the claim window
// (checkin.HeldFaces); a claim of the arrival, or a confirmed card, hands
// them to enroll.DoorPolicy, and what it keeps is stored under the
// customer's consent (sqlite.DB.SaveDoorTemplates), which the gallery
// reload picks up. A "not this person" mark, a dismissed card or an
// erasure drops the held faces; a mark after the claim deletes what the
// visit taught (sqlite.DB.RecordFalseMatch, through the feedback reader).
type learner struct {
	held   *checkin.HeldFaces
	policy enroll.DoorPolicy
	db     *sqlite.DB
	model  string
	alerts *alert.Subscriber
	cards  *alert.Subscriber // nil without verify cards
	log    *slog.Logger
	now    func() time.Time

	learned    atomic.Int64 // door templates stored
	visits     atomic.Int64 // visits that taught something
	notCovered atomic.Int64 // confirmed visits of customers whose consent text does not cover learning
}

// openLearning starts learning when match.door_templates asks for it and
// the engine's calibration has a measured door factor (config_learn.go;
// the gallery scores door rows with the calibration's door offset, set
// where it is made); otherwise it
// drops door templates learned before, which the calibration in force no
// longer counts. It runs after openCards and openFeedback, before
// check-in is wired.
func (d *Daemon) openLearning(ctx context.Context) error {
	if d.cfg.doorFactor() == 0 {
		if d.cfg.Match.DoorTemplates > 0 {
			d.log.Warn("match.door_templates is set but the engine's calibration has no door_factor: learning from confirmed visits is off (match.door_templates: 0 says so)",
				"engine", d.cfg.Vision.Engine)
		}
		n, err := d.app.db.DropDoorTemplates(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			d.log.Info("door templates dropped: learning from confirmed visits is off", "templates", n)
			if err := d.app.svc.Reload(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	ttl := max(alert.DefaultAlertTTL, d.cfg.Alerts.VerifyTTL)
	policy := d.cfg.doorPolicy()
	if len(d.cfg.Kiosk.Devices) > 0 && !policy.Consents.Covers(d.cfg.kioskConsentVersion()) {
		// The bank's own texts: whoever enrolls at the kiosk now will
		// never be learned from, which the operator should hear once.
		d.log.Warn("the kiosks' consent texts do not cover learning from confirmed visits: customers enrolled at them learn nothing (match.door_consent_versions)",
			"consent_version", d.cfg.kioskConsentVersion(), "door_consent_versions", policy.Consents)
	}
	l := &learner{held: checkin.NewHeldFaces(ttl, nil), policy: policy, db: d.app.db, model: d.app.svc.Gallery.Model(),
		log: d.log.WithGroup("learn"), now: time.Now}
	var err error
	l.alerts, err = alert.NewSubscriber(alert.SubscriberConfig{Branch: d.cfg.Branch,
		Conn: d.alertConn("concierge-" + d.cfg.Branch + "-learn"), Logger: d.log})
	if err != nil {
		return err
	}
	if err := l.alerts.Open(); err != nil {
		return err
	}
	d.closers = append(d.closers, l.alerts.Close)
	d.goRun("door learning: claims", l.followAlerts)
	if d.cards != nil {
		l.cards, err = alert.NewSubscriber(alert.SubscriberConfig{Branch: d.cfg.Branch,
			Conn: d.alertConn("concierge-" + d.cfg.Branch + "-learn-cards"), Logger: d.log})
		if err != nil {
			return err
		}
		if err := l.cards.Open(); err != nil {
			return err
		}
		d.closers = append(d.closers, l.cards.Close)
		d.goRun("door learning: cards", l.followCards)
	}
	d.learn = l
	d.held.Store(l.held)
	d.log.Info("learning from confirmed visits", "door_templates", policy.Max, "door_factor", d.cfg.doorFactor(),
		"door_offset", d.cfg.doorOffset(), "hold", ttl)
	return nil
}

// wireLearning lets check-in hold decided visits' faces.
func (d *Daemon) wireLearning(svc *checkin.Service) {
	if d.learn != nil {
		svc.Held = d.learn.held
	}
}

// followAlerts reads claims, marks and erasures from now on: faces held
// in memory do not outlive a restart, so older messages have nothing to
// act on.
func (l *learner) followAlerts(ctx context.Context) error {
	for ev, err := range l.alerts.Events(ctx, alert.Start{}, alert.FeedClaim, alert.FeedRejection, alert.FeedErasure) {
		if err != nil {
			l.log.Warn("unreadable message skipped", slog.Any("error", err))
			continue
		}
		switch {
		case ev.Claim != nil:
			l.learn(ctx, ev.Claim.AlertID)
		case ev.Rejection != nil:
			l.held.Forget(ev.Rejection.AlertID)
		case ev.Erasure != nil:
			l.held.Forget(ev.Erasure.AlertIDs...)
		}
	}
	return nil
}

// followCards reads the answers to verify cards: a confirmed card is a
// confirmed visit, a dismissed one is not the customer.
func (l *learner) followCards(ctx context.Context) error {
	for ev, err := range l.cards.Events(ctx, alert.Start{}, alert.FeedVerify) {
		if err != nil {
			l.log.Warn("unreadable card message skipped", slog.Any("error", err))
			continue
		}
		if a := ev.CardAnswer; a != nil {
			if a.Answer == "confirmed" {
				l.learn(ctx, a.CardID)
			} else {
				l.held.Forget(a.CardID)
			}
		}
	}
	return nil
}

// learn stores what the confirmed visit teaches. The faces are taken out
// of memory first, whatever happens next.
func (l *learner) learn(ctx context.Context, visitID string) {
	customer, faces, ok := l.held.Take(visitID)
	if !ok {
		return
	}
	defer clear(faces)
	have, err := l.db.CustomerTemplates(ctx, customer, l.model)
	if err != nil {
		l.log.Error("door templates not learned", slog.String("visit", visitID), slog.Any("error", err))
		return
	}
	add, drop := l.policy.Learn(customer, l.model, have, faces, l.now())
	if len(add) == 0 {
		// Every face is a near-duplicate of a template, or poor: a visit
		// decided on its first face, which looked like the enrollment.
		l.log.Debug("confirmed visit taught nothing new", slog.String("visit", visitID), slog.Int("faces", len(faces)))
		return
	}
	ids := make([]int64, len(drop))
	for i, t := range drop {
		ids[i] = t.ID
	}
	saved, err := l.db.SaveDoorTemplates(ctx, l.policy.Consents, customer, visitID, add, ids)
	switch code := concierge.ErrorCode(err); {
	case errors.Is(err, enroll.ErrConsentNotCovered):
		// The customer signed a text that does not cover learning (e.g.
		// the built-in 2026-12-v2): nothing is kept until they sign one
		// that does.
		l.notCovered.Add(1)
		l.log.Info("door templates not learned: the customer's consent text does not cover learning", slog.String("visit", visitID),
			slog.String("why", concierge.ErrorMessage(err)))
		l.log.Debug("door templates not learned: consent text", slog.String("visit", visitID), slog.String("customer", customer))
		return
	case code == concierge.ENOTFOUND || code == concierge.ECONFLICT:
		// Withdrawn meanwhile, or marked "not this person": nothing to learn.
		l.log.Info("door templates not learned", slog.String("visit", visitID), slog.String("why", concierge.ErrorMessage(err)))
		return
	case err != nil:
		l.log.Error("door templates not learned", slog.String("visit", visitID), slog.Any("error", err))
		return
	}
	l.learned.Add(int64(len(saved)))
	l.visits.Add(1)
	l.log.Info("door templates learned from a confirmed visit", slog.String("visit", visitID),
		slog.Int("added", len(saved)), slog.Int("replaced", len(drop)))
	l.log.Debug("door templates' customer", slog.String("visit", visitID), slog.String("customer", customer))
}

// registerMetrics adds the learner's counters to the daemon's registry.
func (l *learner) registerMetrics(reg *prometheus.Registry) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "concierge", Name: "door_templates_learned_total",
			Help: "Door templates stored from visits staff confirmed."}, func() float64 { return float64(l.learned.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "concierge", Name: "door_visits_learned_total",
			Help: "Confirmed visits that added door templates."}, func() float64 { return float64(l.visits.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "concierge", Name: "door_visits_not_covered_total",
			Help: "Confirmed visits that taught nothing because the customer's consent text does not cover learning (match.door_consent_versions)."},
			func() float64 { return float64(l.notCovered.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "concierge", Name: "door_visits_held",
			Help: "Decided visits whose faces are held in memory for the claim window."}, func() float64 { return float64(l.held.Len()) }),
	)
}
