package alert

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge"
)

// Start says where in the stream a subscription begins. Set at most one
// field; the zero Start delivers only messages published from now on.
type Start struct {
	All      bool      // every message the stream still keeps
	Since    time.Time // messages stored at or after Since
	AfterSeq uint64    // messages after this stream sequence: resume where a reader stopped
}

// Alert is one message read from a branch's stream.
type Alert struct {
	Message
	Seq     uint64    // stream sequence; Start{AfterSeq: Seq} resumes after this alert
	Subject string    // the feed it came on
	Stored  time.Time // when JetStream stored it
	Data    []byte    // the message exactly as published
}

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	Branch string
	Conn   ConnConfig
	// RetryMax caps the pause between attempts to (re)start reading while
	// the stream or the server is missing (default 10s).
	RetryMax time.Duration
	Logger   *slog.Logger
}

// Subscriber reads a branch's feeds for staff terminals and pages. Open
// connects; Alerts reads; Close disconnects.
type Subscriber struct {
	cfg  SubscriberConfig
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream
	once sync.Once
}

// NewSubscriber returns an unopened subscriber.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.Branch == "" {
		return nil, concierge.Errorf(concierge.EINVALID, "alert subscriber: branch must be set")
	}
	if err := cfg.Conn.Validate(); err != nil {
		return nil, err
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Subscriber{cfg: cfg, log: cfg.Logger.WithGroup("alert")}, nil
}

// Open connects to NATS. It succeeds while NATS is unreachable; reading
// starts once the connection is up.
func (s *Subscriber) Open() error {
	if s.nc != nil {
		return errors.New("alert subscriber: already open")
	}
	cc := s.cfg.Conn
	if cc.Name == "" {
		cc.Name = "concierge-" + s.cfg.Branch + "-subscriber"
	}
	// Without a reconnect buffer, requests made while disconnected fail at
	// once, so Alerts notices an outage and resumes from its own position.
	nc, err := cc.connect(s.log, nil, nats.ReconnectBufSize(-1))
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return concierge.Errorf(concierge.EUNAVAILABLE, "jetstream: %w", err)
	}
	s.nc, s.js = nc, js
	return nil
}

// Close disconnects; any Alerts loop ends. Calling it twice is harmless.
func (s *Subscriber) Close() error {
	s.once.Do(func() {
		if s.nc != nil {
			s.nc.Close()
		}
	})
	return nil
}

// Alerts reads one feed of the branch in stream order from start, until
// ctx ends, the subscriber closes or the caller stops ranging. Outages are
// ridden out: reading resumes after the last alert yielded, so none is
// skipped or repeated. A message that cannot be decoded is yielded with
// its error (and its Seq, Subject and Data); ranging may go on past it.
func (s *Subscriber) Alerts(ctx context.Context, feed Feed, start Start) iter.Seq2[Alert, error] {
	return func(yield func(Alert, error) bool) {
		s.follow(ctx, []string{Subject(s.cfg.Branch, feed)}, start, func(e Event) bool {
			a := Alert{Seq: e.Seq, Subject: e.Subject, Stored: e.Stored, Data: e.Data}
			var err error
			if a.Message, err = Decode(a.Data); err != nil {
				err = fmt.Errorf("alert seq %d: %w", a.Seq, err)
			}
			return yield(a, err)
		}, func(err error) bool { return yield(Alert{}, err) })
	}
}

// follow reads subjects in stream order from start and hands each message
// to yield until ctx ends, the subscriber closes or yield returns false.
// Outages are ridden out: reading resumes after the last message yielded.
// fail reports a subscriber that cannot read at all.
func (s *Subscriber) follow(ctx context.Context, subjects []string, start Start, yield func(Event) bool, fail func(error) bool) {
	if s.js == nil {
		fail(errors.New("alert subscriber: not open"))
		return
	}
	pos := start
	called := time.Now()
	var backoff time.Duration
	warned := false
	for {
		delivered := false
		stopped, err := s.read(ctx, subjects, &pos, func(e Event) bool {
			delivered = true
			return yield(e)
		})
		if stopped || ctx.Err() != nil || s.nc.IsClosed() {
			return
		}
		if pos == (Start{}) {
			// "From now on" could not be pinned to a sequence. With no
			// stream yet, everything it will hold is newer than the
			// call; otherwise the call's time is the best bound.
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				pos = Start{All: true}
			} else {
				pos = Start{Since: called}
			}
		}
		if delivered {
			backoff = 0
		}
		backoff = min(max(2*backoff, 250*time.Millisecond), s.cfg.RetryMax)
		level := slog.LevelDebug
		if !warned {
			level, warned = slog.LevelWarn, true
		}
		s.log.Log(ctx, level, "alert feed unavailable; retrying", slog.Any("subjects", subjects),
			slog.Any("error", err), slog.Duration("retry_in", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// read consumes subjects from *pos with an ordered consumer, advancing
// *pos past every message it yields. stopped reports that the caller wants
// no more; otherwise err says why reading ended.
func (s *Subscriber) read(ctx context.Context, subjects []string, pos *Start, yield func(Event) bool) (stopped bool, err error) {
	if !s.nc.IsConnected() {
		return false, fmt.Errorf("nats not connected (%s)", s.nc.Status())
	}
	stream, err := s.js.StreamNameBySubject(ctx, subjects[0])
	if err != nil {
		return false, fmt.Errorf("find stream for %s: %w", subjects[0], err)
	}
	if *pos == (Start{}) {
		// Pin "from now on" to a sequence, so that resuming after an
		// outage does not skip what was published meanwhile.
		st, err := s.js.Stream(ctx, stream)
		if err != nil {
			return false, fmt.Errorf("stream %s: %w", stream, err)
		}
		*pos = Start{AfterSeq: st.CachedInfo().State.LastSeq}
		if *pos == (Start{}) {
			*pos = Start{All: true}
		}
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		// One attempt: on failure Next returns, and follow restarts from
		// its own position with a backoff it controls.
		MaxResetAttempts: 1,
	}
	switch {
	case pos.AfterSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, pos.AfterSeq+1
	case !pos.Since.IsZero():
		since := pos.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	default:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := s.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return false, fmt.Errorf("consume %v: %w", subjects, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return false, fmt.Errorf("consume %v: %w", subjects, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return false, fmt.Errorf("consume %v: %w", subjects, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return false, fmt.Errorf("consume %v: %w", subjects, err)
		}
		*pos = Start{AfterSeq: md.Sequence.Stream}
		if !yield(Event{Seq: md.Sequence.Stream, Subject: msg.Subject(), Stored: md.Timestamp, Data: msg.Data()}) {
			return true, nil
		}
	}
}
