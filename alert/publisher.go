package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge"
	"concierge/checkin"
)

// OutboxMessage is one NATS message waiting in the outbox.
type OutboxMessage struct {
	Seq     int64  // assigned by the outbox: the publish order
	MsgID   string // Nats-Msg-Id, so JetStream drops a second copy
	Subject string
	Data    []byte
	Created time.Time
}

// Outbox is the durable queue in front of NATS. An implementation keeps
// messages in the order they were enqueued, stores one EnqueueOutbox call
// atomically and ignores a message whose MsgID it already holds.
type Outbox interface {
	// EnqueueOutbox stores msgs (Seq is ignored) in one transaction.
	EnqueueOutbox(ctx context.Context, msgs []OutboxMessage) error
	// PendingOutbox returns up to limit unsent messages, oldest first.
	PendingOutbox(ctx context.Context, limit int) ([]OutboxMessage, error)
	// MarkOutboxSent records that JetStream acknowledged these messages.
	MarkOutboxSent(ctx context.Context, seqs ...int64) error
	// PurgeOutbox deletes messages sent before the given time.
	PurgeOutbox(ctx context.Context, before time.Time) (int64, error)
}

// Stream retention defaults.
const (
	DefaultStreamMaxAge = 7 * 24 * time.Hour
	// DefaultDuplicates is how long JetStream remembers message ids. It
	// spans a daemon restart, when the outbox may resend a message whose
	// acknowledgement was lost in the crash.
	DefaultDuplicates = 24 * time.Hour
)

// StreamConfig is the retention of the branch's stream.
type StreamConfig struct {
	MaxAge     time.Duration // messages older than this are dropped; default 7 days
	Duplicates time.Duration // de-duplication window; default 24h, at most MaxAge
}

// PublisherConfig configures a Publisher. Only Branch and Conn.URL are
// required.
type PublisherConfig struct {
	Branch string
	Conn   ConnConfig
	Stream StreamConfig
	// AlertTTL sets each message's expires_at: how long lobby screens show
	// the alert (default 30 minutes).
	AlertTTL time.Duration
	// Alert picks the arrivals that alert staff on FeedArrival; nil alerts
	// every arrival. Every arrival still goes to FeedVisit, and one with
	// risk flags to FeedManager, whatever Alert says.
	Alert func(checkin.Arrival) bool
	// PublishTimeout bounds the wait for one JetStream acknowledgement
	// (default 5s).
	PublishTimeout time.Duration
	// MinBackoff and MaxBackoff bound the pause between delivery attempts
	// while NATS fails (defaults 100ms and 30s); a reconnect ends the pause.
	MinBackoff, MaxBackoff time.Duration
	// FlushTimeout is how long Close keeps trying to deliver what is
	// pending (default 2s); the rest waits in the outbox for the next Open.
	FlushTimeout time.Duration
	// SentRetention is how long sent messages, which hold masked names,
	// stay in the outbox (default 24h).
	SentRetention time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
}

// VIPOnly is a PublisherConfig.Alert that alerts staff only to customers
// whose tier gives VIP service.
func VIPOnly(a checkin.Arrival) bool { return a.Tier != nil && a.Tier.VIP }

func (c *PublisherConfig) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Stream.MaxAge, DefaultStreamMaxAge)
	def(&c.Stream.Duplicates, min(DefaultDuplicates, c.Stream.MaxAge))
	def(&c.AlertTTL, DefaultAlertTTL)
	def(&c.PublishTimeout, 5*time.Second)
	def(&c.MinBackoff, 100*time.Millisecond)
	def(&c.MaxBackoff, 30*time.Second)
	def(&c.FlushTimeout, 2*time.Second)
	def(&c.SentRetention, 24*time.Hour)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.Branch == "":
		return concierge.Errorf(concierge.EINVALID, "alert publisher: branch must be set")
	case c.Stream.MaxAge < 0 || c.Stream.Duplicates < 0 || c.Stream.Duplicates > c.Stream.MaxAge:
		return concierge.Errorf(concierge.EINVALID, "alert stream: max age must be > 0 and duplicates within (0, max age]")
	case c.AlertTTL < 0 || c.PublishTimeout < 0 || c.FlushTimeout < 0 || c.SentRetention < 0:
		return concierge.Errorf(concierge.EINVALID, "alert publisher: durations must be >= 0")
	case c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff:
		return concierge.Errorf(concierge.EINVALID, "alert publisher: backoff must satisfy 0 <= min <= max")
	}
	return c.Conn.Validate()
}

// PublisherStats counts the publisher's work for metrics.
type PublisherStats struct {
	Enqueued   atomic.Int64 // messages handed to the outbox (which ignores repeats)
	Published  atomic.Int64 // messages JetStream acknowledged
	Duplicates atomic.Int64 // ... of which it already held (a resend)
	Failures   atomic.Int64 // delivery attempts that failed
}

// Publisher implements checkin.Notifier over JetStream with a durable
// outbox: Notify stores the messages and returns; a sender goroutine
// publishes them in order and marks each sent only once JetStream has
// acknowledged it. NATS being down delays alerts, never loses them.
type Publisher struct {
	cfg    PublisherConfig
	outbox Outbox
	log    *slog.Logger
	Stats  PublisherStats

	nc *nats.Conn
	js jetstream.JetStream
	// stream is the stream our subjects land in, "" until found or made.
	// Only the sender goroutine touches it.
	stream string

	kick        chan struct{} // Notify enqueued something
	reconnected chan struct{} // NATS is back: stop any backoff
	closing     chan struct{} // Close asks for a last flush

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ checkin.Notifier = (*Publisher)(nil)

// NewPublisher returns an unopened publisher writing to outbox.
func NewPublisher(cfg PublisherConfig, outbox Outbox) (*Publisher, error) {
	if outbox == nil {
		return nil, concierge.Errorf(concierge.EINVALID, "alert publisher: outbox must be set")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Publisher{
		cfg:         cfg,
		outbox:      outbox,
		log:         cfg.Logger.WithGroup("alert"),
		kick:        make(chan struct{}, 1),
		reconnected: make(chan struct{}, 1),
		closing:     make(chan struct{}),
	}, nil
}

// Open connects to NATS and starts the sender, which first delivers
// whatever an earlier run left in the outbox. It succeeds while NATS is
// unreachable: the connection keeps retrying in the background, so ctx
// bounds nothing here and is taken for symmetry with other components.
func (p *Publisher) Open(ctx context.Context) error {
	if p.ctx != nil {
		return errors.New("alert publisher: already open")
	}
	cc := p.cfg.Conn
	if cc.Name == "" {
		cc.Name = "concierge-" + p.cfg.Branch + "-publisher"
	}
	// No reconnect buffer: a publish while disconnected fails at once and
	// the outbox, not the client's memory, holds the message until then.
	nc, err := cc.connect(p.log, func() { wake(p.reconnected) }, nats.ReconnectBufSize(-1))
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return concierge.Errorf(concierge.EUNAVAILABLE, "jetstream: %w", err)
	}
	p.nc, p.js = nc, js
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.run()
	return nil
}

// Close stops the sender after a last attempt, bounded by FlushTimeout, to
// deliver what is pending, then closes the connection. Undelivered
// messages stay in the outbox. Calling Close twice is harmless.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		if p.cancel == nil {
			return
		}
		close(p.closing)
		t := time.AfterFunc(p.cfg.FlushTimeout, p.cancel)
		p.wg.Wait()
		t.Stop()
		p.cancel()
		p.nc.Close()
	})
	return nil
}

// Notify implements checkin.Notifier. It returns once the messages are in
// the outbox; delivery happens in the background. Risk flags go only into
// the manager's message.
func (p *Publisher) Notify(ctx context.Context, a checkin.Arrival, risk []checkin.RiskFlag) error {
	if a.ID == "" {
		return concierge.Errorf(concierge.EINVALID, "arrival has no id")
	}
	if a.Branch == "" {
		a.Branch = p.cfg.Branch
	} else if a.Branch != p.cfg.Branch {
		return concierge.Errorf(concierge.EINVALID, "arrival %s is for branch %q, publisher for %q", a.ID, a.Branch, p.cfg.Branch)
	}
	msgs, err := p.messages(a, risk)
	if err != nil {
		return fmt.Errorf("notify %s: %w", a.ID, err)
	}
	if err := p.outbox.EnqueueOutbox(ctx, msgs); err != nil {
		return fmt.Errorf("notify %s: %w", a.ID, err)
	}
	p.Stats.Enqueued.Add(int64(len(msgs)))
	wake(p.kick)
	return nil
}

// messages renders an arrival into its outbox messages, in publish order.
func (p *Publisher) messages(a checkin.Arrival, risk []checkin.RiskFlag) ([]OutboxMessage, error) {
	staff := NewMessage(a, p.cfg.AlertTTL)
	staffData, err := json.Marshal(staff)
	if err != nil {
		return nil, err
	}
	now := p.cfg.Now().UTC()
	msg := func(f Feed, data []byte) OutboxMessage {
		return OutboxMessage{MsgID: a.ID + "/" + string(f), Subject: Subject(p.cfg.Branch, f), Data: data, Created: now}
	}
	var out []OutboxMessage
	if p.cfg.Alert == nil || p.cfg.Alert(a) {
		out = append(out, msg(FeedArrival, staffData))
	}
	if len(risk) > 0 {
		mgr := staff
		mgr.RiskFlags = slices.Clone(risk)
		data, err := json.Marshal(mgr)
		if err != nil {
			return nil, err
		}
		out = append(out, msg(FeedManager, data))
	}
	// Visit history and analytics have no use for a face.
	visitData := staffData
	if len(staff.Thumbnail) > 0 {
		visit := staff
		visit.Thumbnail = nil
		if visitData, err = json.Marshal(visit); err != nil {
			return nil, err
		}
	}
	return append(out, msg(FeedVisit, visitData)), nil
}

// run is the sender: drain the outbox, then sleep until there is more to
// send, NATS comes back, the backoff ends or the publisher closes.
func (p *Publisher) run() {
	defer p.wg.Done()
	purge := time.NewTicker(min(p.cfg.SentRetention, time.Hour))
	defer purge.Stop()
	var backoff time.Duration
	failing := 0
	for {
		err := p.drain(p.ctx)
		switch {
		case p.ctx.Err() != nil:
			return
		case err == nil:
			if failing > 0 {
				p.log.Info("alert delivery resumed", slog.Int("failed_attempts", failing))
			}
			failing, backoff = 0, 0
		default:
			p.Stats.Failures.Add(1)
			backoff = min(max(2*backoff, p.cfg.MinBackoff), p.cfg.MaxBackoff)
			level := slog.LevelDebug
			if failing == 0 {
				// One warning per outage, not one per retry.
				level = slog.LevelWarn
			}
			failing++
			p.log.Log(p.ctx, level, "alert delivery failed; alerts wait in the outbox",
				slog.Any("error", err), slog.Duration("retry_in", backoff))
		}
		if !p.wait(backoff, purge.C) {
			// Closing: one last delivery attempt, bounded by FlushTimeout.
			if err := p.drain(p.ctx); err != nil && p.ctx.Err() == nil {
				p.log.Warn("alerts left in the outbox at close", slog.Any("error", err))
			}
			return
		}
	}
}

// wait blocks until the next delivery attempt is due and reports false
// when the publisher is closing. While backing off, new alerts do not cut
// the pause short (they would fail the same way); a reconnect does.
func (p *Publisher) wait(backoff time.Duration, purge <-chan time.Time) bool {
	var retry <-chan time.Time
	kick := p.kick
	if backoff > 0 {
		t := time.NewTimer(backoff)
		defer t.Stop()
		retry, kick = t.C, nil
	}
	for {
		select {
		case <-p.closing:
			return false
		case <-p.ctx.Done():
			return false
		case <-kick:
			return true
		case <-p.reconnected:
			return true
		case <-retry:
			return true
		case <-purge:
			p.purge()
		}
	}
}

func (p *Publisher) purge() {
	n, err := p.outbox.PurgeOutbox(p.ctx, p.cfg.Now().Add(-p.cfg.SentRetention))
	if err != nil {
		p.log.Warn("purge alert outbox", slog.Any("error", err))
		return
	}
	if n > 0 {
		p.log.Debug("purged alert outbox", slog.Int64("messages", n))
	}
}

// drain publishes pending messages one at a time, in order, until none is
// left. It stops at the first failure so that no message overtakes an
// earlier one; the failed one is retried first next time.
func (p *Publisher) drain(ctx context.Context) error {
	// The stream is made as soon as NATS is there, not with the first
	// alert: screens and the escalator consume from it and would otherwise
	// retry "stream not found" until someone arrives.
	if p.stream == "" && p.nc.IsConnected() {
		if err := p.ensureStream(ctx); err != nil {
			return err
		}
	}
	for {
		msgs, err := p.outbox.PendingOutbox(ctx, 64)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		if !p.nc.IsConnected() {
			return fmt.Errorf("nats not connected (%s)", p.nc.Status())
		}
		if p.stream == "" {
			if err := p.ensureStream(ctx); err != nil {
				return err
			}
		}
		for _, m := range msgs {
			if err := p.publish(ctx, m); err != nil {
				return err
			}
		}
	}
}

func (p *Publisher) publish(ctx context.Context, m OutboxMessage) error {
	pctx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
	defer cancel()
	ack, err := p.js.PublishMsg(pctx, &nats.Msg{Subject: m.Subject, Data: m.Data},
		jetstream.WithMsgID(m.MsgID), jetstream.WithExpectStream(p.stream))
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) {
			p.stream = "" // deleted under us: find or make it again
		}
		return fmt.Errorf("publish %s: %w", m.MsgID, err)
	}
	if err := p.outbox.MarkOutboxSent(ctx, m.Seq); err != nil {
		// JetStream has it; resending after this is dropped as a duplicate.
		return fmt.Errorf("publish %s: %w", m.MsgID, err)
	}
	p.Stats.Published.Add(1)
	if ack.Duplicate {
		p.Stats.Duplicates.Add(1)
	}
	return nil
}

// ensureStream finds the stream that holds the branch's subjects, creating
// CONCIERGE_<BRANCH> when there is none. A stream by that name gets our
// retention; a stream by another name (set up by HQ's operators) is used
// as it is.
func (p *Publisher) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
	defer cancel()
	want := jetstream.StreamConfig{
		Name:       StreamName(p.cfg.Branch),
		Subjects:   StreamSubjects(p.cfg.Branch),
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     p.cfg.Stream.MaxAge,
		Duplicates: p.cfg.Stream.Duplicates,
	}
	name, err := p.js.StreamNameBySubject(ctx, Subject(p.cfg.Branch, FeedArrival))
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := p.js.CreateStream(ctx, want); err != nil {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		p.log.Info("alert stream created", slog.String("stream", want.Name), slog.Duration("max_age", want.MaxAge))
		p.stream = want.Name
		return nil
	case err != nil:
		return fmt.Errorf("find stream: %w", err)
	case name != want.Name:
		p.log.Info("alert stream managed elsewhere; using it as it is", slog.String("stream", name))
		p.stream = name
		return nil
	}
	s, err := p.js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	have := s.CachedInfo().Config
	if have.MaxAge != want.MaxAge || have.Duplicates != want.Duplicates || !slices.Equal(have.Subjects, want.Subjects) {
		// Change only what we own, keeping whatever else an operator set.
		have.MaxAge, have.Duplicates, have.Subjects = want.MaxAge, want.Duplicates, want.Subjects
		if _, err := p.js.UpdateStream(ctx, have); err != nil {
			// Publishing still works; only the retention is not ours.
			p.log.Warn("alert stream retention not updated", slog.String("stream", name), slog.Any("error", err))
		}
	}
	p.stream = name
	return nil
}

// wake wakes a goroutine waiting on c without ever blocking the caller.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
