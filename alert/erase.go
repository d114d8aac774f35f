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
)

// FeedErasure carries erasures: a customer withdrew consent, their alerts
// were deleted from the stream, and every screen drops the cards listed.
// The message names alerts only, never the customer.
const FeedErasure Feed = "erasure"

// ErasureSchema is the "schema" of a message on FeedErasure.
const ErasureSchema = "concierge.erasure.v1"

// Erasure lists the alerts of a customer who withdrew consent.
type Erasure struct {
	Schema   string    `json:"schema"`
	Branch   string    `json:"branch"`
	AlertIDs []string  `json:"alert_ids"`
	At       time.Time `json:"time"`
}

// ErasureRequest is a withdrawal that the stream and the screens have not
// yet been cleared of: the customer and the alerts the database knew.
type ErasureRequest struct {
	ID         int64
	CustomerID string
	AlertIDs   []string
}

// ErasureQueue is where withdrawals wait for the eraser (the database,
// which queues one in the same transaction that deletes the customer's
// rows, so no withdrawal is forgotten by a crash).
type ErasureQueue interface {
	PendingErasures(ctx context.Context) ([]ErasureRequest, error)
	// FinishErasure ends a request; ECONFLICT when alerts of the customer
	// arrived since (the queue adds them to the request, to erase again).
	FinishErasure(ctx context.Context, id int64) error
}

// EraserConfig configures an Eraser.
type EraserConfig struct {
	Branch string
	Conn   ConnConfig // the daemon's identity: it deletes from the stream
	Queue  ErasureQueue
	// Every is how often the queue is looked at (default 2s); Wake looks
	// at once.
	Every time.Duration
	// Settle is how long after a pass that deleted something another pass
	// runs before the request is finished (default 3s): an alert the outbox
	// was sending while the customer withdrew lands after the first pass.
	Settle time.Duration
	Logger *slog.Logger
	Now    func() time.Time
}

// Eraser deletes from the branch's stream every message that names a
// customer who withdrew consent, overwriting each on disk (JetStream's
// secure delete), and tells every screen to drop their cards. A request
// is finished only after a pass that found nothing more.
type Eraser struct {
	cfg EraserConfig
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream
	pub *Claimer

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// settling holds requests whose last pass deleted something, and when.
	settling map[int64]time.Time

	// Stats for metrics and health: requests finished, messages deleted,
	// and failed passes (a failure keeps the request for the next pass).
	Stats struct {
		Finished, Deleted, Failures atomic.Int64
	}
	// Pending is the number of requests not finished at the last pass.
	Pending atomic.Int64
}

// NewEraser returns an unopened eraser.
func NewEraser(cfg EraserConfig) (*Eraser, error) {
	if cfg.Branch == "" || cfg.Queue == nil {
		return nil, concierge.Errorf(concierge.EINVALID, "eraser: branch and queue are required")
	}
	if err := cfg.Conn.Validate(); err != nil {
		return nil, concierge.Wrapf(err, "eraser")
	}
	if cfg.Every <= 0 {
		cfg.Every = 2 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Eraser{cfg: cfg, log: cfg.Logger.WithGroup("alert").With(slog.String("component", "eraser")),
		wake: make(chan struct{}, 1), settling: map[int64]time.Time{}}, nil
}

// Open connects and starts the loop.
func (e *Eraser) Open() error {
	nc, err := e.cfg.Conn.connect(e.log, nil)
	if err != nil {
		return concierge.Wrapf(err, "eraser")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return concierge.Wrapf(err, "eraser")
	}
	e.nc, e.js = nc, js
	e.pub = &Claimer{branch: e.cfg.Branch, nc: nc, js: js}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.wg.Add(1)
	go e.run()
	return nil
}

// Wake makes the eraser look at its queue now (after a withdrawal made by
// this process).
func (e *Eraser) Wake() { wake(e.wake) }

// Close stops the loop and closes the connection; safe twice.
func (e *Eraser) Close() error {
	e.once.Do(func() {
		if e.cancel != nil {
			e.cancel()
		}
		e.wg.Wait()
		if e.nc != nil {
			e.nc.Close()
		}
	})
	return nil
}

func (e *Eraser) run() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.Every)
	defer t.Stop()
	for {
		e.pass(e.ctx)
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		case <-e.wake:
		}
	}
}

// pass works through the queue once.
func (e *Eraser) pass(ctx context.Context) {
	reqs, err := e.cfg.Queue.PendingErasures(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.Stats.Failures.Add(1)
			e.log.Error("erasure queue unreadable", slog.Any("error", err))
		}
		return
	}
	e.Pending.Store(int64(len(reqs)))
	now := e.cfg.Now()
	for _, r := range reqs {
		if since, ok := e.settling[r.ID]; ok && now.Sub(since) < e.cfg.Settle {
			continue
		}
		_, settling := e.settling[r.ID]
		n, err := e.erase(ctx, r, !settling)
		if err != nil {
			if ctx.Err() == nil {
				e.Stats.Failures.Add(1)
				e.log.Warn("erasure from the alert stream failed; retrying", slog.Int64("erasure", r.ID), slog.Any("error", err))
			}
			continue
		}
		if n > 0 || !settling {
			e.settling[r.ID] = now
			continue
		}
		if err := e.cfg.Queue.FinishErasure(ctx, r.ID); err != nil {
			if concierge.ErrorCode(err) == concierge.ECONFLICT {
				// Alerts of the customer were sent after the withdrawal;
				// the queue added them: erase again after settling.
				e.settling[r.ID] = now
				continue
			}
			e.Stats.Failures.Add(1)
			e.log.Error("erasure not finished", slog.Int64("erasure", r.ID), slog.Any("error", err))
			continue
		}
		delete(e.settling, r.ID)
		e.Stats.Finished.Add(1)
		e.Pending.Add(-1)
		e.log.Info("withdrawn customer erased from the alert stream and screens", slog.Int64("erasure", r.ID))
	}
}

// Erase deletes every message of the branch's stream that names the
// customer or one of the request's alerts, and publishes an Erasure of
// those alerts so open screens drop them. It returns how many messages it
// deleted.
func (e *Eraser) Erase(ctx context.Context, r ErasureRequest) (int, error) {
	return e.erase(ctx, r, true)
}

// erase is Erase that tells screens only when asked to or when it deleted
// something: a settling pass that finds nothing has nothing to announce.
func (e *Eraser) erase(ctx context.Context, r ErasureRequest, announce bool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// Open verify cards carry the customer's live face: they go first.
	cardIDs, err := eraseCards(ctx, e.js, e.cfg.Branch, r.CustomerID)
	if err != nil {
		return 0, err
	}
	cards := len(cardIDs)
	e.Stats.Deleted.Add(int64(cards))
	name, err := e.js.StreamNameBySubject(ctx, Subject(e.cfg.Branch, FeedArrival))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return cards, nil // no alert was ever published
	}
	if err != nil {
		return 0, fmt.Errorf("find stream: %w", err)
	}
	stream, err := e.js.Stream(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	ids := map[string]bool{}
	for _, id := range r.AlertIDs {
		ids[id] = true
	}
	// The erasure message takes the cards off the screens too.
	for _, id := range cardIDs {
		ids[id] = true
	}
	seqs, err := e.scan(ctx, stream, r.CustomerID, ids)
	if err != nil {
		return 0, err
	}
	for _, seq := range seqs {
		// Secure delete overwrites the message where it lies on disk.
		if err := stream.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, fmt.Errorf("delete message %d: %w", seq, err)
		}
	}
	e.Stats.Deleted.Add(int64(len(seqs)))
	if len(ids) > 0 && (announce || len(seqs) > 0) {
		list := make([]string, 0, len(ids))
		for id := range ids {
			list = append(list, id)
		}
		slices.Sort(list)
		msg := Erasure{Schema: ErasureSchema, Branch: e.cfg.Branch, AlertIDs: list, At: e.cfg.Now().UTC()}
		data, err := json.Marshal(msg)
		if err != nil {
			return 0, err
		}
		if _, err := e.js.Publish(ctx, Subject(e.cfg.Branch, FeedErasure), data); err != nil {
			return 0, fmt.Errorf("publish erasure: %w", err)
		}
	}
	return cards + len(seqs), nil
}

// scan reads the whole stream and returns the sequences of the messages
// that name the customer or one of ids; it adds to ids the alerts it found
// naming the customer, so screens drop those too.
func (e *Eraser) scan(ctx context.Context, stream jetstream.Stream, customerID string, ids map[string]bool) ([]uint64, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream info: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy,
		// One attempt: the client's resets retry forever and would hold Close.
		MaxResetAttempts: 1})
	if err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	var seqs []uint64
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read stream: %w", err)
		}
		got := 0
		var seq uint64
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return nil, fmt.Errorf("read stream: %w", err)
			}
			seq = md.Sequence.Stream
			if names(msg.Subject(), msg.Data(), e.cfg.Branch, customerID, ids) {
				seqs = append(seqs, seq)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("read stream: %w", err)
		}
		if got == 0 || seq >= last {
			return seqs, nil
		}
	}
}

// names reports whether a stream message names the customer or one of
// ids, adding the alert of a message that names the customer to ids.
func names(subject string, data []byte, branch, customerID string, ids map[string]bool) bool {
	e := Event{Subject: subject, Feed: feedOf(branch, subject), Data: data}
	if err := decodeEvent(&e); err != nil {
		return false // not ours to judge; nothing of ours is undecodable
	}
	switch {
	case e.Arrival != nil:
		if e.Arrival.Customer.ID == customerID && customerID != "" {
			ids[e.Arrival.ID] = true
			return true
		}
		return ids[e.Arrival.ID]
	case e.Claim != nil:
		return ids[e.Claim.AlertID]
	case e.Escalation != nil:
		return ids[e.Escalation.AlertID] || e.Escalation.CustomerID == customerID && customerID != ""
	case e.Rejection != nil:
		return ids[e.Rejection.AlertID] || e.Rejection.CustomerID == customerID && customerID != ""
	}
	return false
}
