package main

import (
	"fmt"
	"time"

	"concierge/alert"
	"concierge/checkin"
)

// AlertsConfig is what happens to alerts after they are sent: escalation
// of unclaimed ones to the branch manager, and how a "not this person"
// mark tightens the customer's match rule (docs/alerts.md).
type AlertsConfig struct {
	// EscalateAfter is how long an alert may stay unclaimed before it goes
	// to the manager, for tiers whose service level sets no escalate_after.
	// 0 turns that default off; tiers that set a time still escalate.
	EscalateAfter time.Duration    `yaml:"escalate_after"`
	FalseMatch    FalseMatchConfig `yaml:"false_match"`
	// ThumbnailPx, when positive, puts a JPEG of the recognised customer's
	// face, at most this many pixels on a side, into the staff alert and
	// the manager's copy (never the visit feed or the visit log). 0, the
	// default, sends no face at all.
	ThumbnailPx int `yaml:"thumbnail_px"`
	// OutboxStaleAfter: an alert waiting in the outbox longer than this
	// means NATS does not take them, and /healthz answers 503.
	OutboxStaleAfter time.Duration `yaml:"outbox_stale_after"`
	// VerifyTTL is how long a "please verify" card stays open, and how
	// long its message, with the live face, stays in the verify stream.
	VerifyTTL time.Duration `yaml:"verify_ttl"`
}

// FalseMatchConfig is checkin.FeedbackConfig in the file.
type FalseMatchConfig struct {
	ExtraVotes int `yaml:"extra_votes"` // votes added per step
	// Tighten is taken off the match threshold per step; 0 means a tenth
	// of match.threshold (dlib 0.03, mobilefacenet 0.08).
	Tighten      float64       `yaml:"tighten"`
	RepeatCount  int           `yaml:"repeat_count"`  // false matches that make the rule lasting; 0: never
	RepeatWindow time.Duration `yaml:"repeat_window"` // ... within this window
	// Timezone names the zone (Asia/Shanghai) whose midnight ends the
	// day's tightening; empty is the box's local time.
	Timezone string `yaml:"timezone"`
}

func defaultAlertsConfig() AlertsConfig {
	return AlertsConfig{
		EscalateAfter: alert.DefaultEscalateAfter,
		FalseMatch:    FalseMatchConfig{ExtraVotes: 1, RepeatCount: 3, RepeatWindow: 30 * 24 * time.Hour},

		OutboxStaleAfter: 2 * time.Minute,
		VerifyTTL:        alert.DefaultVerifyTTL,
	}
}

// validate names the first bad alerts key; the threshold-dependent checks
// wait for feedbackConfig, which knows the engine.
func (a AlertsConfig) validate() error {
	f := a.FalseMatch
	switch {
	case a.EscalateAfter < 0:
		return fmt.Errorf("alerts.escalate_after: %v must be >= 0 (0: only tiers that set one escalate)", a.EscalateAfter)
	case a.ThumbnailPx != 0 && (a.ThumbnailPx < 32 || a.ThumbnailPx > 256):
		return fmt.Errorf("alerts.thumbnail_px: %d must be 0 (no face in alerts) or 32 to 256", a.ThumbnailPx)
	case a.VerifyTTL < 10*time.Second || a.VerifyTTL > time.Hour:
		return fmt.Errorf("alerts.verify_ttl: %v must be 10s to 1h (a card is answered at the door or not at all)", a.VerifyTTL)
	case a.OutboxStaleAfter <= 0:
		return fmt.Errorf("alerts.outbox_stale_after: %v must be > 0", a.OutboxStaleAfter)
	case f.ExtraVotes < 0:
		return fmt.Errorf("alerts.false_match.extra_votes: %d must be >= 0", f.ExtraVotes)
	case f.Tighten < 0:
		return fmt.Errorf("alerts.false_match.tighten: %v must be >= 0 (0: a tenth of match.threshold)", f.Tighten)
	case f.RepeatCount < 0:
		return fmt.Errorf("alerts.false_match.repeat_count: %d must be >= 0 (0: never lasting)", f.RepeatCount)
	case f.RepeatCount > 0 && f.RepeatWindow <= 0:
		return fmt.Errorf("alerts.false_match.repeat_window: %v must be > 0", f.RepeatWindow)
	}
	if _, err := f.location(); err != nil {
		return err
	}
	return nil
}

func (f FalseMatchConfig) location() (*time.Location, error) {
	if f.Timezone == "" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(f.Timezone)
	if err != nil {
		return nil, fmt.Errorf("alerts.false_match.timezone: %w", err)
	}
	return loc, nil
}

// escalateAfter is the escalator's default: negative for off.
func (a AlertsConfig) escalateAfter() time.Duration {
	if a.EscalateAfter == 0 {
		return -1
	}
	return a.EscalateAfter
}

// feedbackConfig is the false-match rule for the configured engine.
func (c Config) feedbackConfig() (checkin.FeedbackConfig, error) {
	f := c.Alerts.FalseMatch
	threshold := c.rule().Threshold
	fc := checkin.DefaultFeedbackConfig(threshold)
	fc.ExtraVotes, fc.RepeatCount, fc.RepeatWindow = f.ExtraVotes, f.RepeatCount, f.RepeatWindow
	if f.Tighten > 0 {
		fc.Tighten = f.Tighten
	}
	if fc.Tighten >= threshold {
		return fc, fmt.Errorf("alerts.false_match.tighten: %v must be below match.threshold %v", fc.Tighten, threshold)
	}
	loc, err := f.location()
	if err != nil {
		return fc, err
	}
	fc.Location = loc
	if err := fc.Validate(); err != nil {
		return fc, fmt.Errorf("alerts.false_match: %w", err)
	}
	return fc, nil
}
