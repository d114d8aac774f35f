package alert

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"concierge"
	"concierge/checkin"
)

// FalseMatchBook keeps the "not this person" marks (sqlite.DB). It records
// a mark for the customer of its own visit record, whatever the client
// named, and keeps one mark per alert.
type FalseMatchBook interface {
	// RecordFalseMatch stores the mark of alertID and tells whether it is
	// new; ENOTFOUND when no visit of this box has that alert id.
	RecordFalseMatch(ctx context.Context, alertID, by, reason string, at time.Time) (m checkin.FalseMatch, fresh bool, err error)
	// FalseMatches lists the marks that still count.
	FalseMatches(ctx context.Context) ([]checkin.FalseMatch, error)
}

// DefaultFeedbackReload is how often Feedback rebuilds its rules from the
// book.
const DefaultFeedbackReload = time.Minute

// FeedbackConfig configures a Feedback. Branch, Conn.URL and Book are
// required.
type FeedbackConfig struct {
	Branch string
	Conn   ConnConfig
	Book   FalseMatchBook
	// Policy is how marks tighten a customer's match rule.
	Policy checkin.FeedbackConfig
	// Reload is how often the rules are rebuilt from Book, to pick up what
	// other processes changed: a re-enrollment ends a lasting rule,
	// `concierge forget` removes a customer's marks (default 1 min).
	Reload time.Duration
	Logger *slog.Logger
	Now    func() time.Time
}

// FeedbackStats counts the feedback's work for metrics.
type FeedbackStats struct {
	Read     atomic.Int64 // marks read from the stream, replayed ones included
	Recorded atomic.Int64 // new false matches recorded by this process
}

// Feedback turns what staff answer to alerts into check-in's match rules:
// it reads every "not this person" mark on the branch's stream (FeedRejection),
// records it in the book, and tightens that customer's rule
// (checkin.Feedback), which check-in asks through Strictness. The rules
// are loaded from the book at Open, so a restart keeps the day's
// tightening.
type Feedback struct {
	cfg    FeedbackConfig
	log    *slog.Logger
	policy *checkin.Feedback
	sub    *Subscriber
	Stats  FeedbackStats
	// started tells marks replayed at start, which an earlier run has
	// already reported, from new ones.
	started time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewFeedback returns an unopened Feedback.
func NewFeedback(cfg FeedbackConfig) (*Feedback, error) {
	if cfg.Reload == 0 {
		cfg.Reload = DefaultFeedbackReload
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Branch == "" || cfg.Book == nil:
		return nil, concierge.Errorf(concierge.EINVALID, "feedback: branch and book are required")
	case cfg.Reload < 0:
		return nil, concierge.Errorf(concierge.EINVALID, "feedback: reload must be >= 0")
	}
	if err := cfg.Conn.Validate(); err != nil {
		return nil, concierge.Wrapf(err, "feedback")
	}
	policy, err := checkin.NewFeedback(cfg.Policy)
	if err != nil {
		return nil, concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	return &Feedback{cfg: cfg, log: cfg.Logger.WithGroup("feedback"), policy: policy}, nil
}

// Open loads the rules from the book, then follows the marks: every one
// the stream keeps, then new ones. Like the other readers it succeeds
// while NATS is unreachable and catches up once it is back.
func (f *Feedback) Open(ctx context.Context) error {
	if f.ctx != nil {
		return errors.New("feedback: already open")
	}
	if err := f.Reload(ctx); err != nil {
		return err
	}
	conn := f.cfg.Conn
	if conn.Name == "" {
		conn.Name = "concierge-" + f.cfg.Branch + "-feedback"
	}
	sub, err := NewSubscriber(SubscriberConfig{Branch: f.cfg.Branch, Conn: conn, Logger: f.cfg.Logger})
	if err != nil {
		return concierge.Wrapf(err, "feedback")
	}
	if err := sub.Open(); err != nil {
		return concierge.Wrapf(err, "feedback")
	}
	f.sub, f.started = sub, f.cfg.Now()
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.follow()
	}()
	if f.cfg.Reload > 0 {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.reloadEvery(f.cfg.Reload)
		}()
	}
	return nil
}

// Close stops reading and disconnects; calling it twice is harmless.
func (f *Feedback) Close() error {
	f.once.Do(func() {
		if f.cancel == nil {
			return
		}
		f.cancel()
		// Closing the connection ends the reader however it is blocked.
		f.sub.Close()
		f.wg.Wait()
	})
	return nil
}

// Strictness is how much stricter check-in must be with a customer at a
// time (checkin.Service.Strictness).
func (f *Feedback) Strictness(customerID string, at time.Time) (extraVotes int, thresholdDelta float64) {
	return f.policy.Strictness(customerID, at)
}

// Counts is the number of customers whose rule is tightened at now, and of
// those with repeated false matches, to be enrolled again.
func (f *Feedback) Counts(now time.Time) (strict, reenroll int) { return f.policy.Counts(now) }

// Reload rebuilds the rules from the book.
func (f *Feedback) Reload(ctx context.Context) error {
	marks, err := f.cfg.Book.FalseMatches(ctx)
	if err != nil {
		return err
	}
	f.policy.Reset(marks)
	return nil
}

func (f *Feedback) reloadEvery(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		if err := f.Reload(f.ctx); err != nil && f.ctx.Err() == nil {
			f.log.Warn("false-match reload failed", slog.Any("error", err))
		}
	}
}

// follow reads every rejection the stream keeps, then new ones. Replaying
// the old ones after a restart is harmless: the book keeps one mark per
// alert.
func (f *Feedback) follow() {
	for ev, err := range f.sub.Events(f.ctx, Start{All: true}, FeedRejection) {
		if err != nil {
			f.log.Warn("unreadable rejection skipped", slog.Any("error", err))
			continue
		}
		f.reject(f.ctx, ev)
		f.Stats.Read.Add(1)
	}
}

// reject records one "not this person" mark. The customer is the one our
// visit record names, whatever the client sent; the time is when the
// stream stored the mark, not the client's clock.
func (f *Feedback) reject(ctx context.Context, ev Event) {
	r := ev.Rejection
	level := slog.LevelWarn
	if ev.Stored.Before(f.started) {
		level = slog.LevelDebug
	}
	m, fresh, err := f.cfg.Book.RecordFalseMatch(ctx, r.AlertID, r.By, r.Reason, ev.Stored)
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
	f.Stats.Recorded.Add(1)
	if err := f.Reload(ctx); err != nil {
		f.log.Error("false-match reload failed", slog.Any("error", err))
		f.policy.Add(m) // tighten at least until the next reload
	}
	extra, delta := f.policy.Strictness(m.CustomerID, f.cfg.Now())
	f.log.Info("false match recorded; customer's rule tightened", slog.String("alert", m.AlertID),
		slog.String("camera", m.Camera), slog.Float64("distance", m.Distance),
		slog.Int("extra_votes", extra), slog.Float64("threshold_delta", delta))
	f.log.Debug("false match's customer", slog.String("alert", m.AlertID), slog.String("customer", m.CustomerID))
}
