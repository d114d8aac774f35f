package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge"
	"concierge/checkin"
)

// FeedVerify carries "please verify" cards (checkin.Card): a near match
// that staff confirm or dismiss. It is the one feed outside the branch's
// stream: a card carries the live face of someone who may be a stranger,
// so it lives in its own stream, VerifyStreamName, kept in memory for the
// card's life (CardsConfig.TTL) instead of the main stream's days.
const FeedVerify Feed = "verify"

// VerifySchema is the "schema" of a card message (docs/verify.v1.schema.json).
const VerifySchema = "concierge.verify.v1"

// VerifyAnswerSchema is the "schema" of the message that closes a card on
// every screen once staff answered it: the card's id and the answer, never
// the face or the customer.
const VerifyAnswerSchema = "concierge.verify.answer.v1"

// CardAnswer is one concierge.verify.answer.v1 message, on FeedVerify.
type CardAnswer struct {
	Schema string    `json:"schema"`
	CardID string    `json:"card_id"`
	Answer string    `json:"answer"` // "confirmed" or "dismissed"
	By     string    `json:"by"`
	Time   time.Time `json:"time"`
}

// DefaultVerifyTTL is how long a card waits for an answer.
const DefaultVerifyTTL = 5 * time.Minute

// VerifyStreamName is the stream of a branch's cards: CONCIERGE_<B>_VERIFY.
func VerifyStreamName(branch string) string { return StreamName(branch) + "_VERIFY" }

// CardMessage is one concierge.verify.v1 message: only what the card shows.
type CardMessage struct {
	Schema    string     `json:"schema"`
	ID        string     `json:"id"` // ULID; the arrival's id if staff confirm it
	Branch    string     `json:"branch"`
	Camera    string     `json:"camera"`
	Time      time.Time  `json:"time"`
	FirstSeen *time.Time `json:"first_seen,omitempty"`
	Customer  Customer   `json:"customer"` // id and masked name
	Tier      *Tier      `json:"tier,omitempty"`
	Match     Match      `json:"match"`
	ExpiresAt time.Time  `json:"expires_at"`
	// Thumbnail is the live face, the point of a card: always there when
	// the camera could render it.
	Thumbnail []byte `json:"thumbnail,omitempty"`
}

// NewCardMessage builds the message of a card that stays open for ttl.
func NewCardMessage(c checkin.Card, ttl time.Duration) CardMessage {
	m := CardMessage{
		Schema:    VerifySchema,
		ID:        c.ID,
		Branch:    c.Branch,
		Camera:    c.Camera,
		Time:      c.At.UTC(),
		Customer:  Customer{ID: c.CustomerID, DisplayName: c.DisplayName},
		Match:     Match{Distance: c.Distance, Margin: c.Margin, Votes: c.Votes},
		ExpiresAt: c.At.Add(ttl).UTC(),
		Thumbnail: c.Thumbnail,
	}
	if !c.FirstSeen.IsZero() {
		fs := c.FirstSeen.UTC()
		m.FirstSeen = &fs
	}
	if t := c.Tier; t != nil {
		m.Tier = &Tier{Scheme: t.Scheme, Level: t.Level, LevelName: t.LevelName, VIP: t.VIP}
		m.Customer.FormOfAddress = t.FormOfAddress
		m.Customer.Language = t.Language
	}
	return m
}

// DecodeCard parses a card message.
func DecodeCard(data []byte) (CardMessage, error) {
	var m CardMessage
	if err := decodeAs(data, VerifySchema, &m, func() string { return m.Schema }); err != nil {
		return m, err
	}
	if m.ID == "" || m.Customer.ID == "" {
		return m, fmt.Errorf("decode %s: id and customer id are required", VerifySchema)
	}
	return m, nil
}

// card is the check-in card a confirmed message stands for; the face
// stays behind, the member of staff has seen it.
func (m CardMessage) card() checkin.Card {
	c := checkin.Card{ID: m.ID, Branch: m.Branch, Camera: m.Camera, At: m.Time, CustomerID: m.Customer.ID,
		DisplayName: m.Customer.DisplayName, Distance: m.Match.Distance, Margin: m.Match.Margin, Votes: m.Match.Votes}
	if m.FirstSeen != nil {
		c.FirstSeen = *m.FirstSeen
	}
	return c
}

// CardsConfig configures Cards.
type CardsConfig struct {
	Branch string
	Conn   ConnConfig // the daemon's identity: it owns the verify stream
	// TTL is how long a card stays open and its message, face included,
	// stays in the stream (alerts.verify_ttl; default DefaultVerifyTTL).
	TTL time.Duration
	// Confirmed turns a card staff confirmed into an arrival
	// (checkin.Service.ConfirmCard). Required.
	Confirmed func(ctx context.Context, c checkin.Card, by string) error
	// PublishTimeout bounds one publish or stream call (default 5s).
	PublishTimeout time.Duration
	// Service records staff's answers for the manager's report; nil: not
	// recorded.
	Service ServiceLog
	Logger  *slog.Logger
	Now     func() time.Time
}

// Cards publishes verify cards and takes staff's answers. Cards skip the
// durable outbox on purpose: the outbox keeps what it sent for a day on
// disk, and a card's face must not outlive the card. A card NATS cannot
// take at once is dropped (logged and counted by checkin) rather than
// kept: a late card is no use at the door. The stream is the one record
// of an open card, so a restart, an expiry or an erasure closes it.
type Cards struct {
	cfg  CardsConfig
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream
	mu   sync.Mutex // one answer at a time: find then delete
	once sync.Once

	// ready: the verify stream is made or updated. NATS may come up after
	// the daemon; the first card or answer then makes the stream.
	readyMu sync.Mutex
	ready   bool
	failed  string // why the latest card could not be published; "" after a success
}

// Err says why the latest card could not be published, "" when it was
// (or none was tried): for the daemon's /healthz.
func (c *Cards) Err() string {
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	return c.failed
}

func (c *Cards) setFailed(s string) {
	c.readyMu.Lock()
	c.failed = s
	c.readyMu.Unlock()
}

var _ checkin.CardNotifier = (*Cards)(nil)

// NewCards checks cfg; Open connects.
func NewCards(cfg CardsConfig) (*Cards, error) {
	if cfg.Branch == "" || cfg.Confirmed == nil {
		return nil, concierge.Errorf(concierge.EINVALID, "verify cards: branch and Confirmed are required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultVerifyTTL
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Conn.Validate(); err != nil {
		return nil, concierge.Wrapf(err, "verify cards")
	}
	return &Cards{cfg: cfg, log: cfg.Logger.WithGroup("alert").With(slog.String("component", "cards"))}, nil
}

// Open connects and makes or updates the verify stream. Like the
// publisher it succeeds while NATS is unreachable: the connection retries
// in the background and the stream is made when a card first needs it.
func (c *Cards) Open(ctx context.Context) error {
	if c.nc != nil {
		return errors.New("verify cards: already open")
	}
	cc := c.cfg.Conn
	if cc.Name == "" {
		cc.Name = "concierge-" + c.cfg.Branch + "-cards"
	}
	nc, err := cc.connect(c.log, nil)
	if err != nil {
		return concierge.Wrapf(err, "verify cards")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return concierge.Wrapf(err, "verify cards")
	}
	c.nc, c.js = nc, js
	if !nc.IsConnected() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
	defer cancel()
	if err := c.ensureStream(ctx); err != nil {
		// A server that is up but refuses the stream (permissions, a
		// conflicting stream) will not change its mind: say so now.
		nc.Close()
		c.nc = nil
		return err
	}
	return nil
}

// Close closes the connection; safe twice. Open cards stay in the stream
// until they expire.
func (c *Cards) Close() error {
	c.once.Do(func() {
		if c.nc != nil {
			c.nc.Close()
		}
	})
	return nil
}

// ensureStream makes CONCIERGE_<B>_VERIFY, in memory: a card's face never
// reaches the disk, and a restart closes every card. Once made, it is not
// looked at again.
func (c *Cards) ensureStream(ctx context.Context) error {
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	if c.ready {
		return nil
	}
	want := jetstream.StreamConfig{
		Name:       VerifyStreamName(c.cfg.Branch),
		Subjects:   []string{Subject(c.cfg.Branch, FeedVerify)},
		Storage:    jetstream.MemoryStorage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     c.cfg.TTL,
		Duplicates: min(c.cfg.TTL, 2*time.Minute),
	}
	if _, err := c.js.CreateOrUpdateStream(ctx, want); err != nil {
		return fmt.Errorf("verify stream %s: %w", want.Name, err)
	}
	c.ready = true
	return nil
}

// lost forgets that the stream was made, after any failure to publish or
// find it: a restarted NATS server does not keep a memory stream, and a
// publish to a stream that is gone may fail with a timeout rather than
// say so. Making the stream again is idempotent and cheap.
func (c *Cards) lost(error) {
	c.readyMu.Lock()
	c.ready = false
	c.readyMu.Unlock()
}

// NotifyCard implements checkin.CardNotifier: the card goes to FeedVerify.
func (c *Cards) NotifyCard(ctx context.Context, card checkin.Card) error {
	if card.ID == "" {
		return concierge.Errorf(concierge.EINVALID, "card has no id")
	}
	if card.Branch == "" {
		card.Branch = c.cfg.Branch
	} else if card.Branch != c.cfg.Branch {
		return concierge.Errorf(concierge.EINVALID, "card %s is for branch %q, not %q", card.ID, card.Branch, c.cfg.Branch)
	}
	data, err := json.Marshal(NewCardMessage(card, c.cfg.TTL))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
	defer cancel()
	if err := c.ensureStream(ctx); err != nil {
		c.setFailed(err.Error())
		return concierge.Errorf(concierge.EUNAVAILABLE, "publish card %s: %w", card.ID, err)
	}
	_, err = c.js.Publish(ctx, Subject(c.cfg.Branch, FeedVerify), data,
		jetstream.WithMsgID(card.ID+"/"+string(FeedVerify)), jetstream.WithExpectStream(VerifyStreamName(c.cfg.Branch)))
	if err != nil {
		c.lost(err)
		c.setFailed("publish: " + err.Error())
		return concierge.Errorf(concierge.EUNAVAILABLE, "publish card %s: %w", card.ID, err)
	}
	c.setFailed("")
	return nil
}

// Confirm: by, a signed-in member of staff, says the card is the customer.
// The card's message, face and all, is deleted, and the card becomes an
// arrival (CardsConfig.Confirmed). ENOTFOUND for a card that is not open
// (never sent, expired, erased); ECONFLICT when it was answered already.
func (c *Cards) Confirm(ctx context.Context, cardID, by string) error {
	m, err := c.take(ctx, cardID, by)
	if err != nil {
		return err
	}
	if err := c.cfg.Confirmed(ctx, m.card(), strings.TrimSpace(by)); err != nil {
		return fmt.Errorf("confirm card %s: %w", cardID, err)
	}
	c.log.Info("card confirmed", slog.String("id", cardID))
	recordService(ctx, c.cfg.Service, c.log, ServiceEvent{Kind: ServiceCardConfirmed, AlertID: cardID, Tier: m.Tier, At: c.cfg.Now()})
	c.announce(ctx, cardID, "confirmed", by)
	return nil
}

// Dismiss: by says the card is not the customer. Its message and face are
// deleted at once; nothing else is recorded.
func (c *Cards) Dismiss(ctx context.Context, cardID, by string) error {
	m, err := c.take(ctx, cardID, by)
	if err != nil {
		return err
	}
	c.log.Info("card dismissed", slog.String("id", cardID))
	recordService(ctx, c.cfg.Service, c.log, ServiceEvent{Kind: ServiceCardDismissed, AlertID: cardID, Tier: m.Tier, At: c.cfg.Now()})
	c.announce(ctx, cardID, "dismissed", by)
	return nil
}

// announce tells every screen that a card was answered, so that other
// tablets take it, and its face, off at once. The answer stands if this
// fails: the card then leaves the other screens when it expires.
func (c *Cards) announce(ctx context.Context, cardID, answer, by string) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
	defer cancel()
	_, err := publishOnce(ctx, c.js, Subject(c.cfg.Branch, FeedVerify), cardID+"/answer", CardAnswer{
		Schema: VerifyAnswerSchema, CardID: cardID, Answer: answer, By: strings.TrimSpace(by), Time: c.cfg.Now().UTC()})
	if err != nil {
		c.log.Warn("card answer not announced; other screens drop the card when it expires", slog.String("id", cardID), slog.Any("error", err))
	}
}

// take finds an open card and deletes its message, so that one answer
// only is ever acted on.
func (c *Cards) take(ctx context.Context, cardID, by string) (CardMessage, error) {
	cardID, by = strings.TrimSpace(cardID), strings.TrimSpace(by)
	switch {
	case cardID == "" || len(cardID) > 64 || strings.ContainsAny(cardID, " \t\r\n*>."):
		return CardMessage{}, concierge.Errorf(concierge.EINVALID, "card id %q is not a card id", cardID)
	case by == "":
		return CardMessage{}, concierge.Errorf(concierge.EINVALID, "the member of staff is required")
	}
	if c.js == nil {
		return CardMessage{}, concierge.Errorf(concierge.EUNAVAILABLE, "verify cards are not available (NATS)")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
	defer cancel()
	if err := c.ensureStream(ctx); err != nil {
		return CardMessage{}, concierge.Errorf(concierge.EUNAVAILABLE, "verify stream: %w", err)
	}
	stream, err := c.js.Stream(ctx, VerifyStreamName(c.cfg.Branch))
	if err != nil {
		c.lost(err)
		return CardMessage{}, concierge.Errorf(concierge.EUNAVAILABLE, "verify stream: %w", err)
	}
	var found *CardMessage
	var seq uint64
	err = scanStream(ctx, stream, func(_ string, data []byte, s uint64) {
		if m, err := DecodeCard(data); err == nil && m.ID == cardID {
			found, seq = &m, s
		}
	})
	if err != nil {
		return CardMessage{}, concierge.Errorf(concierge.EUNAVAILABLE, "verify stream: %w", err)
	}
	if found == nil {
		return CardMessage{}, concierge.Errorf(concierge.ENOTFOUND, "card %s: no open card (answered, expired or withdrawn)", cardID)
	}
	if !c.cfg.Now().Before(found.ExpiresAt) {
		return CardMessage{}, concierge.Errorf(concierge.ECONFLICT, "card %s has expired", cardID)
	}
	if err := stream.SecureDeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return CardMessage{}, concierge.Errorf(concierge.ECONFLICT, "card %s was answered already", cardID)
		}
		return CardMessage{}, concierge.Errorf(concierge.EUNAVAILABLE, "delete card %s: %w", cardID, err)
	}
	return *found, nil
}

// eraseCards deletes every card of a withdrawn customer from the verify
// stream and returns the ids of those it deleted, for the erasure message
// that takes them off the screens.
func eraseCards(ctx context.Context, js jetstream.JetStream, branch, customerID string) ([]string, error) {
	if customerID == "" {
		return nil, nil
	}
	stream, err := js.Stream(ctx, VerifyStreamName(branch))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil // the band was never on
	}
	if err != nil {
		return nil, fmt.Errorf("verify stream: %w", err)
	}
	var seqs []uint64
	var ids []string
	err = scanStream(ctx, stream, func(_ string, data []byte, seq uint64) {
		if m, err := DecodeCard(data); err == nil && m.Customer.ID == customerID {
			seqs, ids = append(seqs, seq), append(ids, m.ID)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("verify stream: %w", err)
	}
	for _, seq := range seqs {
		if err := stream.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("delete card %d: %w", seq, err)
		}
	}
	return ids, nil
}

// scanStream hands every message the stream holds now to f.
func scanStream(ctx context.Context, stream jetstream.Stream, f func(subject string, data []byte, seq uint64)) error {
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last, total := info.State.LastSeq, uint64(0)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy,
		// One attempt: the client's resets retry forever and would hold Close.
		MaxResetAttempts: 1})
	if err != nil {
		return err
	}
	for {
		// Ask for no more than the stream holds: a fetch waits for its
		// batch to fill.
		batch, err := cons.Fetch(int(min(500, max(info.State.Msgs-total, 1))), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		got := 0
		var seq uint64
		for msg := range batch.Messages() {
			got++
			total++
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			seq = md.Sequence.Stream
			f(msg.Subject(), msg.Data(), seq)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		// A deleted last message leaves LastSeq behind: count too.
		if got == 0 || seq >= last || total >= info.State.Msgs {
			return nil
		}
	}
}
