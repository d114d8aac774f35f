package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"concierge"
)

// Escalated marks the branch manager's copy of an alert that nobody
// claimed in time: After is how long it had waited, At when it was raised.
type Escalated struct {
	After Seconds   `json:"after_s"`
	At    time.Time `json:"time"`
}

// DefaultEscalateAfter is how long an alert may stay unclaimed before it is
// escalated, for tiers that set no time of their own.
const DefaultEscalateAfter = 60 * time.Second

// EscalatorConfig configures an Escalator. Only Branch and Conn.URL are
// required.
type EscalatorConfig struct {
	Branch string
	Conn   ConnConfig
	// After is how long an alert may stay unclaimed when its service level
	// sets no escalate_after_s (default 60s). Negative: such alerts are
	// never escalated; tiers that set a time still are.
	After time.Duration
	// Lookback is how far back Open starts reading the stream, so that the
	// alerts still pending when the daemon restarted are escalated in time
	// (default 1h). It should exceed the longest escalate_after; alerts
	// past their expires_at are never escalated anyway.
	Lookback time.Duration
	// Tick is how often deadlines are checked (default 1s): an escalation
	// is at most this late.
	Tick time.Duration
	// Service records escalations for the manager's report; nil: not
	// recorded.
	Service ServiceLog
	Logger  *slog.Logger
	Now     func() time.Time
}

func (c *EscalatorConfig) setDefaults() error {
	if c.After == 0 {
		c.After = DefaultEscalateAfter
	}
	if c.Lookback == 0 {
		c.Lookback = time.Hour
	}
	if c.Tick == 0 {
		c.Tick = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.Branch == "":
		return concierge.Errorf(concierge.EINVALID, "escalator: branch must be set")
	case c.Lookback < 0 || c.Tick < 0:
		return concierge.Errorf(concierge.EINVALID, "escalator: lookback and tick must be >= 0")
	}
	return c.Conn.Validate()
}

// EscalatorStats counts the escalator's work for metrics.
type EscalatorStats struct {
	Events     atomic.Int64 // stream messages read
	Escalated  atomic.Int64 // alerts escalated by this process
	Duplicates atomic.Int64 // escalations JetStream already held (a restart, a second daemon)
	Failures   atomic.Int64 // escalation attempts that failed (retried on the next tick)
}

// Escalator raises alerts that nobody claimed in time to the branch
// manager. It follows the branch's stream (arrivals, claims, rejections
// and escalations, in stream order) and keeps a deadline per unclaimed
// alert; a claim, a "not this person" mark, an escalation seen on the
// stream or the alert's expiry cancels it. When a deadline passes it
// publishes a copy of the arrival, marked "escalated", on FeedManager and
// the Escalation on FeedEscalation (screens mark the alert).
//
// Each alert is escalated once, across restarts and even with two daemons:
// both messages carry JetStream message ids derived from the alert id, so
// a repeat is dropped by the stream, and a restarted escalator that reads
// the escalation back forgets the deadline.
type Escalator struct {
	cfg   EscalatorConfig
	log   *slog.Logger
	sub   *Subscriber
	out   *Claimer
	Stats EscalatorStats

	mu      sync.Mutex
	pending map[string]*pendingAlert // by alert id

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// pendingAlert is an alert waiting for a claim.
type pendingAlert struct {
	msg   Message
	after time.Duration
	due   time.Time
}

// NewEscalator returns an unopened escalator.
func NewEscalator(cfg EscalatorConfig) (*Escalator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Escalator{cfg: cfg, log: cfg.Logger.WithGroup("escalator"), pending: map[string]*pendingAlert{}}, nil
}

// Open connects and starts following the stream from Lookback ago and
// checking deadlines every Tick. Like the publisher it succeeds while NATS
// is unreachable and catches up once it is back.
func (e *Escalator) Open(ctx context.Context) error {
	if e.ctx != nil {
		return errors.New("escalator: already open")
	}
	conn := e.cfg.Conn
	if conn.Name == "" {
		conn.Name = "concierge-" + e.cfg.Branch + "-escalator"
	}
	sub, err := NewSubscriber(SubscriberConfig{Branch: e.cfg.Branch, Conn: conn, Logger: e.cfg.Logger})
	if err != nil {
		return concierge.Wrapf(err, "escalator")
	}
	if err := sub.Open(); err != nil {
		return concierge.Wrapf(err, "escalator")
	}
	out, err := NewClaimer(conn, e.cfg.Branch, e.cfg.Logger)
	if err != nil {
		sub.Close()
		return concierge.Wrapf(err, "escalator")
	}
	e.sub, e.out = sub, out
	e.ctx, e.cancel = context.WithCancel(context.Background())
	start := Start{Since: e.cfg.Now().Add(-e.cfg.Lookback)}
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		e.follow(start)
	}()
	go func() {
		defer e.wg.Done()
		e.tick()
	}()
	return nil
}

// Close stops both loops and disconnects; calling it twice is harmless.
func (e *Escalator) Close() error {
	e.once.Do(func() {
		if e.cancel == nil {
			return
		}
		e.cancel()
		// Closing the connection ends the reader however it is blocked.
		e.sub.Close()
		e.wg.Wait()
		e.out.Close()
	})
	return nil
}

// Pending is the number of alerts waiting for a claim.
func (e *Escalator) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending)
}

// follow keeps the deadlines in step with the stream.
func (e *Escalator) follow(start Start) {
	feeds := []Feed{FeedArrival, FeedClaim, FeedRejection, FeedEscalation, FeedErasure}
	for ev, err := range e.sub.Events(e.ctx, start, feeds...) {
		if err != nil {
			e.log.Warn("unreadable message skipped", slog.Any("error", err))
			continue
		}
		e.Stats.Events.Add(1)
		e.observe(ev)
	}
}

// observe applies one stream message to the deadlines.
func (e *Escalator) observe(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case ev.Arrival != nil:
		m := *ev.Arrival
		after := e.cfg.After
		if sl := m.ServiceLevel; sl != nil && sl.EscalateAfter != nil {
			after = time.Duration(*sl.EscalateAfter)
			if after == 0 {
				after = -1 // the tier says never
			}
		}
		if after < 0 || m.ID == "" {
			return
		}
		// Counted from the arrival, not from delivery: an alert the outbox
		// delivered late after an outage is escalated at once, because the
		// customer has been waiting unattended all along.
		e.pending[m.ID] = &pendingAlert{msg: m, after: after, due: m.Time.Add(after)}
	case ev.Claim != nil:
		delete(e.pending, ev.Claim.AlertID)
	case ev.Rejection != nil:
		delete(e.pending, ev.Rejection.AlertID)
	case ev.Erasure != nil:
		// The customer withdrew consent: no copy of the alert may go out.
		for _, id := range ev.Erasure.AlertIDs {
			delete(e.pending, id)
		}
	case ev.Escalation != nil:
		delete(e.pending, ev.Escalation.AlertID)
	}
}

// tick checks the deadlines every Tick until the escalator closes.
func (e *Escalator) tick() {
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		_, err := e.Check(e.ctx)
		switch {
		case err != nil && e.ctx.Err() == nil:
			level := slog.LevelDebug
			if !warned {
				// One warning per outage, not one per tick.
				level, warned = slog.LevelWarn, true
			}
			e.log.Log(e.ctx, level, "escalation failed; retrying", slog.Any("error", err))
		case err == nil:
			warned = false
		}
	}
}

// Check escalates every alert whose deadline has passed by Now, forgets
// the expired ones, and returns how many it escalated. An alert whose
// escalation fails stays pending and is tried again by the next Check.
// The escalator calls it every Tick; tests call it after moving Now.
func (e *Escalator) Check(ctx context.Context) (int, error) {
	now := e.cfg.Now()
	var due []*pendingAlert
	e.mu.Lock()
	for id, p := range e.pending {
		switch {
		case !p.msg.ExpiresAt.IsZero() && !now.Before(p.msg.ExpiresAt):
			delete(e.pending, id) // screens no longer show it
		case !now.Before(p.due):
			due = append(due, p)
		}
	}
	e.mu.Unlock()
	n := 0
	var errs []error
	for _, p := range due {
		e.mu.Lock()
		_, still := e.pending[p.msg.ID] // a claim may have come meanwhile
		e.mu.Unlock()
		if !still {
			continue
		}
		fresh, err := e.escalate(ctx, p, now)
		if err != nil {
			e.Stats.Failures.Add(1)
			errs = append(errs, err)
			continue
		}
		e.mu.Lock()
		delete(e.pending, p.msg.ID)
		e.mu.Unlock()
		if !fresh {
			e.Stats.Duplicates.Add(1)
			continue
		}
		n++
		e.Stats.Escalated.Add(1)
		recordService(ctx, e.cfg.Service, e.log, ServiceEvent{Kind: ServiceEscalation, AlertID: p.msg.ID, Tier: p.msg.Tier, At: now})
		e.log.Info("alert escalated to the manager", slog.String("alert", p.msg.ID), slog.Duration("unclaimed", p.after))
		e.log.Debug("escalated alert's customer", slog.String("alert", p.msg.ID), slog.String("customer", p.msg.Customer.ID))
	}
	return n, errors.Join(errs...)
}

// escalate publishes the manager's copy first and the escalation second:
// a crash in between leaves the alert pending after a restart (the
// escalation is what cancels it), and the copy's message id makes the
// retry harmless. fresh is false when the escalation was already there.
func (e *Escalator) escalate(ctx context.Context, p *pendingAlert, now time.Time) (fresh bool, err error) {
	mark := &Escalated{After: Seconds(p.after), At: now.UTC()}
	mgr := p.msg
	// The staff alert carries no risk flags; the manager already has them
	// from the arrival's own manager copy, if there were any.
	mgr.RiskFlags = nil
	mgr.Escalated = mark
	if _, err := publishOnce(ctx, e.out.js, Subject(e.cfg.Branch, FeedManager), EscalatedMsgID(p.msg.ID), mgr); err != nil {
		return false, fmt.Errorf("escalate %s: manager copy: %w", p.msg.ID, err)
	}
	return e.out.Escalate(ctx, Escalation{AlertID: p.msg.ID, CustomerID: p.msg.Customer.ID, After: mark.After, At: now})
}

// EscalatedMsgID is the JetStream message id of the manager's copy of an
// escalated alert, beside <id>/arrival.manager of the risk copy.
func EscalatedMsgID(alertID string) string { return alertID + "/arrival.manager.escalated" }
