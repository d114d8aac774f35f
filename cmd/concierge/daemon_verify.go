package main

import (
	"context"
	"fmt"

	"concierge/alert"
	"concierge/checkin"
)

// cardThumbnailPx is the size of a verify card's face when the branch
// sends no face with alerts (alerts.thumbnail_px 0): a card is useless
// without one.
const cardThumbnailPx = 96

// verifyBand reports whether the configuration asks for verify cards.
func (c Config) verifyBand() bool { return c.Match.VerifyTarget > 0 }

// thumbnailPx is the size of the faces the cameras render: for alerts
// when the branch sends them, else for verify cards only.
func (c Config) thumbnailPx() int {
	if c.Alerts.ThumbnailPx == 0 && c.verifyBand() {
		return cardThumbnailPx
	}
	return c.Alerts.ThumbnailPx
}

// openCards opens the verify cards' publisher when match.verify_target
// asks for them. A server that is up but refuses the verify stream leaves
// the daemon running without cards and /healthz saying why: the alerts
// matter more than the cards. An unreachable server does not: cards start
// when it comes, and /healthz names a card that could not be published.
func (d *Daemon) openCards(ctx context.Context) {
	if !d.cfg.verifyBand() {
		return
	}
	fail := func(err error) {
		d.health.mu.Lock()
		d.health.cardsErr = fmt.Sprintf("verify cards are off: %v", err)
		d.health.mu.Unlock()
		d.log.Warn("verify cards are off", "err", err)
	}
	cards, err := alert.NewCards(alert.CardsConfig{
		Branch: d.cfg.Branch,
		Conn:   d.alertConn("concierge-" + d.cfg.Branch + "-cards"),
		TTL:    d.cfg.Alerts.VerifyTTL,
		// d.checkin is set before any camera or desk request can make
		// or answer a card.
		Confirmed: func(ctx context.Context, c checkin.Card, by string) error { return d.checkin.ConfirmCard(ctx, c, by) },
		Service:   d.app.db,
		Logger:    d.log,
	})
	if err != nil {
		fail(err)
		return
	}
	if err := cards.Open(ctx); err != nil {
		cards.Close()
		fail(err)
		return
	}
	d.closers = append(d.closers, cards.Close)
	d.cards = cards
}

// cardDesk is what the desk answers cards with; nil without cards.
func (d *Daemon) cardDesk() alert.CardDesk {
	if d.cards == nil {
		return nil
	}
	return d.cards
}

// wireCards gives check-in the band and the cards' publisher. The band
// follows the gallery's size like the alert threshold
// (enroll.Service.Verification).
func (d *Daemon) wireCards(svc *checkin.Service) {
	if d.cards == nil {
		return
	}
	svc.Cards = d.cards
	svc.Band = func() float64 {
		r, ok := d.app.svc.Verification()
		if !ok {
			return 0
		}
		return r.Threshold
	}
	svc.CardThumbnailsOnly = d.cfg.Alerts.ThumbnailPx == 0
	if r, ok := d.app.svc.Verification(); ok {
		d.log.Info("verify band", "customers", d.app.svc.Gallery.Customers(), "band", r.Threshold,
			"target", d.cfg.Match.VerifyTarget, "ttl", d.cfg.Alerts.VerifyTTL)
	} else {
		d.log.Warn("match.verify_target is set but there is no band: it needs a calibrated threshold (match.threshold 0) " +
			"and a target looser than match.false_alert_target")
	}
}
