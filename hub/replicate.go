package hub

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge"
	"concierge/enroll"
	"concierge/face"
)

// Store is the box's database as replication needs it (sqlite.DB).
type Store interface {
	NetworkChanges(ctx context.Context, limit int) ([]enroll.NetworkChange, error)
	FinishNetworkChange(ctx context.Context, id int64) error
	NetworkEnrollment(ctx context.Context, customerID string) (enroll.NetworkEnrollment, error)
	ApplyNetworkEnrollments(ctx context.Context, es []enroll.NetworkEnrollment) error
	ApplyNetworkWithdrawal(ctx context.Context, customerID string, at time.Time) error
	NetworkDoorSet(ctx context.Context, customerID string) (enroll.NetworkDoorSet, error)
	ApplyNetworkDoorSets(ctx context.Context, sets []enroll.NetworkDoorSet, keep int) (skipped []string, err error)
	NetworkPosition(ctx context.Context) (uint64, error)
	SetNetworkPosition(ctx context.Context, seq uint64) error
}

// ReplicatorConfig configures a box's replication with the hub.
type ReplicatorConfig struct {
	Branch string
	// Conn is the daemon's connection to the box's own server, which the
	// hub reaches through the leaf node; the hub's JetStream is addressed
	// by its domain across it.
	Conn *nats.Conn
	// Store is the box's database.
	Store Store
	// NetworkKey seals what the box tells the network (32 bytes, from
	// network.key): the hub stores and relays it without reading it.
	NetworkKey []byte
	// Tiers, when set, imports a core-banking tier file that HQ sent to
	// every box (`concierge tiers import --hub`); source names it. An
	// EINVALID error refuses that file (logged); others are retried.
	Tiers func(ctx context.Context, source string, data []byte) error
	// DoorTemplates is how many door templates of a model a customer
	// keeps at this box (match.door_templates) when the box learns from
	// confirmed visits; 0 when it does not, and then it keeps none from
	// the network either: door sets of other branches are passed over,
	// as the daemon drops its own door templates when learning is off.
	DoorTemplates int
	// Poll is how often the box looks for its own changes (default 1s).
	Poll   time.Duration
	Logger *slog.Logger
}

// Replicator publishes the box's network changes to the hub's stream and
// applies the stream's events from other branches to the box's database,
// remembering its position there. Open starts it; Close stops it and is
// safe to call twice. While the hub is unreachable both sides wait and
// retry: the changes stay queued in the database, the position where it
// was.
type Replicator struct {
	cfg     ReplicatorConfig
	js      jetstream.JetStream
	sealKey []byte
	idKey   []byte
	log     *slog.Logger

	// contact is when the hub last answered (unix nanoseconds).
	contact atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Stale says why the box is out of step with the network when the hub
// has not answered for longer than after (the box's own changes wait, and
// withdrawals made elsewhere are not carried out here); "" otherwise.
func (r *Replicator) Stale(now time.Time, after time.Duration) string {
	last := time.Unix(0, r.contact.Load())
	if now.Sub(last) <= after {
		return ""
	}
	return fmt.Sprintf("the hub has not answered for %v: withdrawals made at other branches wait to be carried out here",
		now.Sub(last).Round(time.Second))
}

func (r *Replicator) touch() { r.contact.Store(time.Now().UnixNano()) }

// NewReplicator checks cfg and returns an unopened replicator.
func NewReplicator(cfg ReplicatorConfig) (*Replicator, error) {
	if cfg.Branch == "" || cfg.Conn == nil || cfg.Store == nil {
		return nil, errors.New("replicator: branch, connection and store must be set")
	}
	if len(cfg.NetworkKey) != 32 {
		return nil, concierge.Errorf(concierge.EINVALID, "replicator: the network key must be 32 bytes")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	js, err := jetstream.NewWithDomain(cfg.Conn, Domain)
	if err != nil {
		return nil, fmt.Errorf("replicator: %w", err)
	}
	l := cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	return &Replicator{cfg: cfg, js: js, sealKey: derive(cfg.NetworkKey, "concierge-net seal v1"),
		idKey: derive(cfg.NetworkKey, "concierge-net subject v1"), log: l.WithGroup("hq")}, nil
}

// Open starts publishing and applying in the background.
func (r *Replicator) Open() error {
	if r.ctx != nil {
		return errors.New("replicator: already open")
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if r.contact.Load() == 0 {
		r.touch() // the hub has until then to answer for the first time
	}
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.publishLoop(r.ctx) }()
	go func() { defer r.wg.Done(); r.applyLoop(r.ctx) }()
	return nil
}

// Close stops both loops and waits for them.
func (r *Replicator) Close() error {
	r.once.Do(func() {
		if r.cancel != nil {
			r.cancel()
			r.wg.Wait()
		}
	})
	return nil
}

// CatchUp applies what the hub's stream holds beyond the box's position,
// until none is left or ctx ends. The daemon calls it before it starts
// recognising, so that withdrawals made elsewhere while the box was off
// are carried out first. It retries until ctx ends while the hub cannot
// be reached (the leaf connection may still be coming up).
func (r *Replicator) CatchUp(ctx context.Context) error {
	for {
		_, err := r.apply(ctx, true)
		if err == nil || ctx.Err() != nil {
			return err
		}
		r.log.Debug("catching up with the hub", slog.Any("error", err))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (r *Replicator) publishLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	failing := false
	for {
		err := r.PublishPending(ctx)
		if err != nil && ctx.Err() == nil && !failing {
			r.log.Warn("network changes wait for the hub", slog.Any("error", err))
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PublishPending sends the box's queued network changes to the hub and
// deletes each once the hub's stream has stored it. A door change is sent
// as the customer's whole door set read when it is sent, so of several
// queued for a customer only the last is sent.
func (r *Replicator) PublishPending(ctx context.Context) error {
	for {
		changes, err := r.cfg.Store.NetworkChanges(ctx, 100)
		if err != nil || len(changes) == 0 {
			return err
		}
		lastDoor := map[string]int64{}
		for _, c := range changes {
			if c.Kind == enroll.ChangeDoor {
				lastDoor[c.CustomerID] = c.ID
			}
		}
		for _, c := range changes {
			if c.Kind != enroll.ChangeDoor || lastDoor[c.CustomerID] == c.ID {
				if err := r.publish(ctx, c); err != nil {
					return err
				}
			}
			if err := r.cfg.Store.FinishNetworkChange(ctx, c.ID); err != nil {
				return err
			}
		}
	}
}

func (r *Replicator) publish(ctx context.Context, c enroll.NetworkChange) error {
	ev := event{V: 1, Kind: c.Kind, CustomerID: c.CustomerID, At: c.At.UTC()}
	subj := r.subject(r.cfg.Branch, subjectCustomer, c.CustomerID)
	switch c.Kind {
	case enroll.ChangeEnroll:
		e, err := r.cfg.Store.NetworkEnrollment(ctx, c.CustomerID)
		if concierge.ErrorCode(err) == concierge.ENOTFOUND {
			return nil // withdrawn since: the withdrawal follows in the queue
		}
		if err != nil {
			return err
		}
		ev.fill(e)
	case enroll.ChangeDoor:
		// Its own subject: a door set never displaces the enrollment,
		// and an empty one overwrites what the box sent before.
		subj = r.subject(r.cfg.Branch, subjectDoor, c.CustomerID)
		s, err := r.cfg.Store.NetworkDoorSet(ctx, c.CustomerID)
		if err != nil {
			return err
		}
		ev.fillDoor(s)
	}
	data, err := r.seal(subj, ev)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msgID := r.cfg.Branch + "/" + strconv.FormatInt(c.ID, 10) + "/" + strconv.FormatInt(c.At.UnixNano(), 10)
	if _, err := r.js.Publish(pctx, subj, data, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish to the hub: %w", err)
	}
	r.touch()
	r.log.Info("network change sent", slog.String("kind", c.Kind), slog.Int("templates", len(ev.Templates)))
	r.log.Debug("network change sent", slog.String("customer", c.CustomerID), slog.String("kind", c.Kind))
	return nil
}

func (r *Replicator) applyLoop(ctx context.Context) {
	failing := false
	for ctx.Err() == nil {
		_, err := r.apply(ctx, false)
		if err != nil && ctx.Err() == nil && !failing {
			r.log.Warn("network events wait for the hub", slog.Any("error", err))
		}
		failing = err != nil
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// apply reads the stream from the box's position on. With untilCurrent
// it returns once nothing is pending; otherwise it goes on until an error.
func (r *Replicator) apply(ctx context.Context, untilCurrent bool) (int, error) {
	pos, err := r.cfg.Store.NetworkPosition(ctx)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	cons, err := r.js.OrderedConsumer(cctx, StreamName, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: pos + 1,
		// One attempt: the client's own resets retry forever and ignore
		// the fetch's context, so Close would wait on a hub that is gone;
		// applyLoop retries with its own pause and stops with ctx.
		MaxResetAttempts: 1})
	cancel()
	if err != nil {
		return 0, fmt.Errorf("hub stream: %w", err)
	}
	r.touch()
	n := 0
	for ctx.Err() == nil {
		msgs, pending, err := fetch(ctx, cons)
		if err != nil {
			return n, err
		}
		a := applier{r: r}
		for _, m := range msgs {
			if err := a.add(ctx, m.Subject(), m.Data()); err != nil {
				return n, err
			}
		}
		got := len(msgs)
		var last uint64
		if got > 0 {
			md, err := msgs[got-1].Metadata()
			if err != nil {
				return n, err
			}
			last = md.Sequence.Stream
		}
		if err := a.flush(ctx); err != nil {
			return n, err
		}
		if got > 0 {
			// Applying is idempotent: a crash before this line applies the
			// batch again, harmlessly.
			if err := r.cfg.Store.SetNetworkPosition(ctx, last); err != nil {
				return n, err
			}
			n += got
			if a.applied > 0 {
				r.log.Info("network events applied", slog.Int("events", a.applied))
			}
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		r.touch()
		if untilCurrent && (got == 0 || pending == 0) {
			return n, nil
		}
	}
	return n, ctx.Err()
}

// fetch reads the next events, waiting a second at most. The fetch ends
// with ctx too, so that Close never waits on a hub gone silent mid-request.
func fetch(ctx context.Context, cons jetstream.Consumer) ([]jetstream.Msg, uint64, error) {
	fctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	batch, err := cons.Fetch(fetchBatch, jetstream.FetchContext(fctx))
	if err != nil {
		return nil, 0, fmt.Errorf("hub stream: %w", err)
	}
	var msgs []jetstream.Msg
	var pending uint64
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return nil, 0, fmt.Errorf("hub stream: %w", err)
		}
		msgs, pending = append(msgs, m), md.NumPending
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return nil, 0, fmt.Errorf("hub stream: %w", err)
	}
	return msgs, pending, nil
}

// fetchBatch is how many events are read, and enrollments stored in one
// transaction, at a time.
const fetchBatch = 500

// applier applies a batch of events in stream order: enrollments are
// gathered and stored together, then the door sets gathered with them (a
// door set hangs on the customer's network consent, which an enrollment
// later in the batch may bring); a withdrawal first stores those before
// it.
type applier struct {
	r       *Replicator
	pending []enroll.NetworkEnrollment
	doors   []enroll.NetworkDoorSet
	applied int
}

func (a *applier) add(ctx context.Context, subj string, data []byte) error {
	r := a.r
	ev, origin, err := r.decode(subj, data)
	if err != nil {
		// An event this box cannot open would block every later one: it
		// is reported and passed over.
		r.log.Error("network event refused", slog.String("subject", subj), slog.Any("error", err))
		return nil
	}
	if ev == nil {
		return nil // the box's own word, already in its database
	}
	r.log.Debug("network event", slog.String("customer", ev.CustomerID), slog.String("kind", ev.Kind), slog.String("from", origin))
	if ev.Kind == KindTiers {
		if err := a.flush(ctx); err != nil {
			return err
		}
		if r.cfg.Tiers == nil {
			return nil
		}
		if err := r.cfg.Tiers(ctx, ev.Source, ev.Tiers); err != nil {
			if concierge.ErrorCode(err) != concierge.EINVALID {
				return err
			}
			r.log.Error("tier file from HQ refused", slog.String("source", ev.Source), slog.Any("error", err))
			return nil
		}
		a.applied++
		r.log.Info("tier file from HQ imported", slog.String("source", ev.Source))
		return nil
	}
	switch ev.Kind {
	case enroll.ChangeEnroll:
		e := ev.enrollment()
		e.Origin = origin
		if err := e.Check(); err != nil {
			r.log.Error("network event refused", slog.String("subject", subj), slog.Any("error", err))
			return nil
		}
		a.pending = append(a.pending, e)
		return nil
	case enroll.ChangeDoor:
		if r.cfg.DoorTemplates <= 0 {
			r.log.Debug("door templates from the network passed over: this box does not learn",
				slog.String("customer", ev.CustomerID), slog.String("from", origin))
			return nil
		}
		s := ev.doorSet()
		s.Origin = origin
		if err := s.Check(); err != nil {
			r.log.Error("network event refused", slog.String("subject", subj), slog.Any("error", err))
			return nil
		}
		a.doors = append(a.doors, s)
		return nil
	case enroll.ChangeRetract:
		// The branch took back what it said (its network consent ended
		// there for another reason than the customer's withdrawal): boxes
		// keep what they hold under their own or other branches' word.
		return nil
	}
	if err := a.flush(ctx); err != nil {
		return err
	}
	a.applied++
	return r.cfg.Store.ApplyNetworkWithdrawal(ctx, ev.CustomerID, ev.At)
}

func (a *applier) flush(ctx context.Context) error {
	if len(a.pending) > 0 {
		if err := a.r.cfg.Store.ApplyNetworkEnrollments(ctx, a.pending); err != nil {
			return err
		}
		a.applied += len(a.pending)
		a.pending = a.pending[:0]
	}
	if len(a.doors) > 0 {
		skipped, err := a.r.cfg.Store.ApplyNetworkDoorSets(ctx, a.doors, a.r.cfg.DoorTemplates)
		if err != nil {
			return err
		}
		for _, id := range skipped {
			a.r.log.Debug("door templates from the network passed over: no network-scope consent here", slog.String("customer", id))
		}
		a.applied += len(a.doors) - len(skipped)
		a.doors = a.doors[:0]
	}
	return nil
}

// decode opens one event of another branch; nil for the box's own.
func (r *Replicator) decode(subj string, data []byte) (*event, string, error) {
	parts := strings.Split(subj, ".")
	if len(parts) != 4 || parts[0] != SubjectPrefix ||
		(parts[2] != subjectCustomer && parts[2] != subjectDoor && parts[2] != "tiers") {
		return nil, "", concierge.Errorf(concierge.EINVALID, "subject %s is not a network event", subj)
	}
	origin := parts[1]
	if origin == r.cfg.Branch {
		return nil, origin, nil
	}
	ev, err := r.open(subj, data)
	if err != nil {
		return nil, origin, err
	}
	if parts[2] == "tiers" {
		// Only HQ publishes there (hub.Permissions), and the subject names
		// the file by its hash.
		if origin != HQ || ev.Kind != KindTiers || tiersSubject(ev.Tiers) != subj {
			return nil, origin, concierge.Errorf(concierge.EINVALID, "tier file event does not match its subject")
		}
		return &ev, origin, nil
	}
	// The subject names the customer by a keyed hash: an event moved to
	// another customer's subject does not open as theirs.
	if r.subject(origin, parts[2], ev.CustomerID) != subj {
		return nil, origin, concierge.Errorf(concierge.EINVALID, "event for another customer than its subject")
	}
	switch {
	case parts[2] == subjectDoor && ev.Kind == enroll.ChangeDoor,
		parts[2] == subjectCustomer && (ev.Kind == enroll.ChangeEnroll || ev.Kind == enroll.ChangeWithdraw || ev.Kind == enroll.ChangeRetract):
		return &ev, origin, nil
	}
	return nil, origin, concierge.Errorf(concierge.EINVALID, "event kind %q on subject %s", ev.Kind, subj)
}

// The kinds of a branch's subjects about a customer: "c" carries the
// customer's enrollment and its end (withdrawal or retraction), "d" the
// branch's door set of them. Each keeps one message (the stream's limit
// per subject), so the hub holds the current state, never the history.
const (
	subjectCustomer = "c"
	subjectDoor     = "d"
)

// subject is where branch's events of a kind about a customer go: the id
// appears only as a keyed hash, so the hub's store does not list the
// bank's customers, and the stream keeps one event per customer, kind and
// branch.
func (r *Replicator) subject(branch, kind, customerID string) string {
	m := hmac.New(sha256.New, r.idKey)
	m.Write([]byte(customerID))
	return SubjectPrefix + "." + branch + "." + kind + "." + hex.EncodeToString(m.Sum(nil)[:16])
}

// event is the plaintext of a network message.
type event struct {
	V          int             `json:"v"`
	Kind       string          `json:"kind"`
	CustomerID string          `json:"customer_id"`
	At         time.Time       `json:"at"`
	Name       string          `json:"name,omitempty"`
	Created    time.Time       `json:"created,omitzero"`
	Consent    *enroll.Consent `json:"consent,omitempty"`
	Templates  []wireTemplate  `json:"templates,omitempty"`
	// Tiers is a core-banking tier file from HQ, Source its name.
	Tiers  []byte `json:"tiers,omitempty"`
	Source string `json:"source,omitempty"`
}

type wireTemplate struct {
	Model     string       `json:"model"`
	Embedding []float32    `json:"embedding"`
	Quality   face.Quality `json:"quality"`
	Created   time.Time    `json:"created"`
	// VisitID is the visit a door template was learned from.
	VisitID string `json:"visit_id,omitempty"`
}

func (ev *event) fill(e enroll.NetworkEnrollment) {
	ev.Name, ev.Created = e.Customer.DisplayName, e.Customer.Created.UTC()
	c := e.Consent
	c.ID = 0
	ev.Consent = &c
	for _, t := range e.Templates {
		ev.Templates = append(ev.Templates, wireTemplate{Model: t.Model, Embedding: t.Embedding[:],
			Quality: t.Quality, Created: t.Created.UTC()})
	}
}

func (ev *event) fillDoor(s enroll.NetworkDoorSet) {
	for _, t := range s.Templates {
		ev.Templates = append(ev.Templates, wireTemplate{Model: t.Model, Embedding: t.Embedding[:],
			Quality: t.Quality, Created: t.Created.UTC(), VisitID: t.VisitID})
	}
}

func (ev event) doorSet() enroll.NetworkDoorSet {
	s := enroll.NetworkDoorSet{CustomerID: ev.CustomerID, At: ev.At}
	for _, w := range ev.Templates {
		t := enroll.NetworkDoorTemplate{Template: enroll.Template{CustomerID: ev.CustomerID, Model: w.Model,
			Quality: w.Quality, Created: w.Created, Source: enroll.SourceDoor, Group: enroll.DoorGroup}, VisitID: w.VisitID}
		if len(w.Embedding) != len(t.Embedding) {
			continue
		}
		copy(t.Embedding[:], w.Embedding)
		s.Templates = append(s.Templates, t)
	}
	return s
}

func (ev event) enrollment() enroll.NetworkEnrollment {
	e := enroll.NetworkEnrollment{Customer: enroll.Customer{ID: ev.CustomerID, DisplayName: ev.Name, Created: ev.Created}}
	if ev.Consent != nil {
		e.Consent = *ev.Consent
	}
	for _, w := range ev.Templates {
		t := enroll.Template{CustomerID: ev.CustomerID, Model: w.Model, Quality: w.Quality, Created: w.Created}
		if len(w.Embedding) != len(t.Embedding) {
			continue // enrollment below refuses an enrollment left with none
		}
		copy(t.Embedding[:], w.Embedding)
		e.Templates = append(e.Templates, t)
	}
	return e
}

// seal encrypts an event under the network key, bound to its subject.
func (r *Replicator) seal(subj string, ev event) ([]byte, error) {
	plain, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	g, err := gcm(r.sealKey)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, plain, []byte(subj)), nil
}

func (r *Replicator) open(subj string, data []byte) (event, error) {
	var ev event
	g, err := gcm(r.sealKey)
	if err != nil {
		return ev, err
	}
	if len(data) < g.NonceSize() {
		return ev, concierge.Errorf(concierge.EINVALID, "network event too short")
	}
	plain, err := g.Open(nil, data[:g.NonceSize()], data[g.NonceSize():], []byte(subj))
	if err != nil {
		return ev, concierge.Errorf(concierge.EINVALID, "network event does not open with this box's network key")
	}
	if err := json.Unmarshal(plain, &ev); err != nil || ev.V != 1 {
		return ev, concierge.Errorf(concierge.EINVALID, "network event: not a v1 event")
	}
	return ev, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}
