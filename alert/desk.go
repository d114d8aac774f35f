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
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"concierge"
)

// The desk is the only way a claim or a "not this person" mark reaches
// the stream. Staff terminals cannot publish into the stream; they ask the
// daemon's desk, which checks that a signed-in member of staff asks and
// that the alert is real and open, then publishes with the daemon's
// identity. A forged claim or mark therefore never shows on a screen and
// never tightens a customer's rule.

// AlertRecord is what the daemon knows of an alert it sent.
type AlertRecord struct {
	CustomerID string
	At         time.Time // when the arrival was decided
	Rejected   bool      // staff marked it "not this person"
}

// AlertBook finds the alerts the daemon sent (its visit log: the visit id
// is the alert id). ENOTFOUND for an alert it never sent or whose customer
// has withdrawn consent.
type AlertBook interface {
	AlertRecord(ctx context.Context, alertID string) (AlertRecord, error)
}

// StaffVerifier checks a member of staff's name and password or PIN;
// EUNAUTHORIZED when they do not match.
type StaffVerifier interface {
	VerifyStaff(ctx context.Context, name, secret string) error
}

// DeskConfig configures a Desk.
type DeskConfig struct {
	Branch string
	Conn   ConnConfig // the daemon's identity: it publishes into the stream
	Book   AlertBook
	// Staff checks terminals' credentials; nil refuses every request that
	// comes over NATS (in-process callers have signed their staff in).
	Staff StaffVerifier
	// Cards answers verify cards ("confirm", "dismiss"); nil: the branch
	// has no verify band and the desk refuses those requests.
	Cards CardDesk
	// TTL is how long an alert is open after its arrival (the alerts'
	// expires_at; default DefaultAlertTTL).
	TTL time.Duration
	// Service records claims and marks for the manager's report; nil:
	// not recorded.
	Service ServiceLog
	Logger  *slog.Logger
	Now     func() time.Time
}

// CardDesk answers verify cards for a signed-in member of staff (Cards).
type CardDesk interface {
	Confirm(ctx context.Context, cardID, by string) error
	Dismiss(ctx context.Context, cardID, by string) error
}

var _ CardDesk = (*Cards)(nil)

// Desk takes claims and marks, in process (the lobby page) or as NATS
// requests on DeskSubject (terminals), and publishes the ones that pass.
type Desk struct {
	cfg  DeskConfig
	log  *slog.Logger
	pub  *Claimer
	subs []*nats.Subscription
	once sync.Once
}

// NewDesk connects the desk; Listen starts answering terminals.
func NewDesk(cfg DeskConfig) (*Desk, error) {
	if cfg.Branch == "" || cfg.Book == nil {
		return nil, concierge.Errorf(concierge.EINVALID, "desk: branch and alert book are required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultAlertTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger.WithGroup("alert").With(slog.String("component", "desk"))
	pub, err := NewClaimer(cfg.Conn, cfg.Branch, log)
	if err != nil {
		return nil, concierge.Wrapf(err, "desk")
	}
	return &Desk{cfg: cfg, log: log, pub: pub}, nil
}

// Listen answers terminals' requests until Close. The queue group lets a
// replacement daemon overlap the old one without double answers.
func (d *Desk) Listen() error {
	for _, verb := range []string{"claim", "reject", "confirm", "dismiss"} {
		sub, err := d.pub.nc.QueueSubscribe(DeskSubject(d.cfg.Branch, verb), "desk", d.serve)
		if err != nil {
			return concierge.Wrapf(err, "desk")
		}
		d.subs = append(d.subs, sub)
	}
	// The server must know the subscriptions before Listen returns, or a
	// terminal asking at once finds no responder. Not yet connected, they
	// go out with the connection: nothing to wait for.
	if d.pub.nc.IsConnected() {
		if err := d.pub.nc.FlushTimeout(5 * time.Second); err != nil && d.pub.nc.IsConnected() {
			return concierge.Wrapf(err, "desk")
		}
	}
	return nil
}

// Close stops answering and closes the connection; safe twice.
func (d *Desk) Close() error {
	d.once.Do(func() {
		for _, s := range d.subs {
			s.Unsubscribe()
		}
		d.pub.Close()
	})
	return nil
}

// Claim records that by, a member of staff the caller has signed in, took
// the alert. The first claim stands (ErrAlreadyClaimed after it).
func (d *Desk) Claim(ctx context.Context, alertID, by string) error {
	rec, err := d.open(ctx, alertID, by)
	if err != nil {
		return err
	}
	if rec.Rejected {
		return concierge.Errorf(concierge.ECONFLICT, "alert %s was withdrawn as not this person", alertID)
	}
	now := d.cfg.Now()
	if err := d.pub.Claim(ctx, alertID, by, now); err != nil {
		if errors.Is(err, ErrAlreadyClaimed) {
			return &deskError{concierge.Errorf(concierge.ECONFLICT, "alert %s was already claimed", alertID), err}
		}
		return concierge.Errorf(concierge.EUNAVAILABLE, "claim not recorded: %w", err)
	}
	recordService(ctx, d.cfg.Service, d.log, ServiceEvent{Kind: ServiceClaim, AlertID: alertID, At: now})
	return nil
}

// Reject records that by saw the alert name the wrong customer. The
// customer is the one the daemon's own record names, never the caller's.
func (d *Desk) Reject(ctx context.Context, alertID, by, reason string) error {
	rec, err := d.open(ctx, alertID, by)
	if err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > 200 || !utf8.ValidString(reason) {
		return concierge.Errorf(concierge.EINVALID, "reason: at most 200 characters of text")
	}
	now := d.cfg.Now()
	if err := d.pub.Reject(ctx, alertID, rec.CustomerID, by, reason, now); err != nil {
		if errors.Is(err, ErrAlreadyRejected) {
			return &deskError{concierge.Errorf(concierge.ECONFLICT, "alert %s was already marked as not this person", alertID), err}
		}
		return concierge.Errorf(concierge.EUNAVAILABLE, "mark not recorded: %w", err)
	}
	recordService(ctx, d.cfg.Service, d.log, ServiceEvent{Kind: ServiceReject, AlertID: alertID, At: now})
	return nil
}

// Confirm: by, a member of staff the caller has signed in, says the verify
// card is the customer; it becomes an arrival with verified_by.
func (d *Desk) Confirm(ctx context.Context, cardID, by string) error {
	if d.cfg.Cards == nil {
		return concierge.Errorf(concierge.ENOTFOUND, "card %s: this branch sends no verify cards", cardID)
	}
	return d.cfg.Cards.Confirm(ctx, cardID, by)
}

// Dismiss: by says the verify card is not the customer; its face is
// deleted at once.
func (d *Desk) Dismiss(ctx context.Context, cardID, by string) error {
	if d.cfg.Cards == nil {
		return concierge.Errorf(concierge.ENOTFOUND, "card %s: this branch sends no verify cards", cardID)
	}
	return d.cfg.Cards.Dismiss(ctx, cardID, by)
}

// open checks the request and finds the alert: real, sent by this daemon,
// of a customer who still consents, and not expired.
func (d *Desk) open(ctx context.Context, alertID, by string) (AlertRecord, error) {
	alertID, by = strings.TrimSpace(alertID), strings.TrimSpace(by)
	switch {
	case alertID == "" || len(alertID) > 64 || strings.ContainsAny(alertID, " \t\r\n*>."):
		return AlertRecord{}, concierge.Errorf(concierge.EINVALID, "alert id %q is not an alert id", alertID)
	case by == "":
		return AlertRecord{}, concierge.Errorf(concierge.EINVALID, "the member of staff is required")
	}
	rec, err := d.cfg.Book.AlertRecord(ctx, alertID)
	if concierge.ErrorCode(err) == concierge.ENOTFOUND {
		return rec, concierge.Errorf(concierge.ENOTFOUND, "alert %s: no such alert on this branch", alertID)
	}
	if err != nil {
		return rec, fmt.Errorf("desk: %w", err)
	}
	if d.cfg.Now().After(rec.At.Add(d.cfg.TTL)) {
		return rec, concierge.Errorf(concierge.ECONFLICT, "alert %s has expired", alertID)
	}
	return rec, nil
}

// deskError is a caller-safe error that still matches the sentinel it
// came from (errors.Is(err, ErrAlreadyClaimed)).
type deskError struct {
	err   *concierge.Error
	cause error
}

func (e *deskError) Error() string   { return e.err.Error() }
func (e *deskError) Unwrap() []error { return []error{e.err, e.cause} }

// DeskRequest is a terminal's claim or mark, or its answer to a verify
// card (AlertID is then the card's id). Secret is the staff member's
// password or PIN, checked like a sign-in on the lobby page.
type DeskRequest struct {
	AlertID string `json:"alert_id"`
	By      string `json:"by"`
	Secret  string `json:"secret"`
	Reason  string `json:"reason,omitempty"`
}

// deskReply is the desk's answer: ok, or a caller-safe error.
type deskReply struct {
	OK    bool `json:"ok"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func (d *Desk) serve(m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	verb := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	err := d.handle(ctx, verb, m.Data)
	var reply deskReply
	if err == nil {
		reply.OK = true
	} else {
		code := concierge.ErrorCode(err)
		if code == concierge.EINTERNAL {
			d.log.Error("desk request failed", slog.String("verb", verb), slog.Any("error", err))
		} else {
			d.log.Info("desk request refused", slog.String("verb", verb), slog.String("code", code),
				slog.String("why", concierge.ErrorMessage(err)))
		}
		reply.Error = &struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}{code, concierge.ErrorMessage(err)}
	}
	data, _ := json.Marshal(reply)
	if m.Reply != "" {
		m.Respond(data)
	}
}

func (d *Desk) handle(ctx context.Context, verb string, data []byte) error {
	var req DeskRequest
	if len(data) > 4096 {
		return concierge.Errorf(concierge.EINVALID, "request too large")
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return concierge.Errorf(concierge.EINVALID, "request is not JSON: %w", err)
	}
	if d.cfg.Staff == nil {
		return concierge.Errorf(concierge.EUNAUTHORIZED, "no staff accounts are configured on this box (web.staff)")
	}
	if strings.TrimSpace(req.By) == "" || req.Secret == "" {
		return concierge.Errorf(concierge.EUNAUTHORIZED, "a member of staff's name and password or PIN are required")
	}
	if err := d.cfg.Staff.VerifyStaff(ctx, strings.TrimSpace(req.By), req.Secret); err != nil {
		if c := concierge.ErrorCode(err); c == concierge.EUNAUTHORIZED {
			return err
		}
		return fmt.Errorf("verify staff: %w", err)
	}
	switch verb {
	case "claim":
		return d.Claim(ctx, req.AlertID, req.By)
	case "reject":
		return d.Reject(ctx, req.AlertID, req.By, req.Reason)
	case "confirm":
		return d.Confirm(ctx, req.AlertID, req.By)
	case "dismiss":
		return d.Dismiss(ctx, req.AlertID, req.By)
	}
	return concierge.Errorf(concierge.EINVALID, "unknown desk request %q", verb)
}

// AskDesk sends a terminal's claim ("claim") or mark ("reject") to the
// daemon's desk and returns its answer as an error with the desk's code.
func AskDesk(ctx context.Context, conn ConnConfig, branch, verb string, req DeskRequest, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	nc, err := conn.connect(log, nil)
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "%w", err)
	}
	defer nc.Close()
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	msg, err := nc.RequestWithContext(ctx, DeskSubject(branch, verb), data)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return concierge.Errorf(concierge.EUNAVAILABLE, "the branch daemon is not answering (is `concierge run` up?)")
		}
		if errors.Is(err, nats.ErrPermissionViolation) || errors.Is(err, nats.ErrAuthorization) {
			return concierge.Errorf(concierge.EUNAUTHORIZED, "this NATS identity may not ask the desk: %w", err)
		}
		return concierge.Errorf(concierge.EUNAVAILABLE, "desk: %w", err)
	}
	var reply deskReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return fmt.Errorf("desk reply: %w", err)
	}
	if reply.OK {
		return nil
	}
	if reply.Error == nil {
		return errors.New("desk reply: neither ok nor an error")
	}
	e := concierge.Errorf(reply.Error.Code, "%s", reply.Error.Message)
	switch {
	case reply.Error.Code == concierge.ECONFLICT && verb == "claim" && strings.Contains(reply.Error.Message, "already claimed"):
		return &deskError{e, ErrAlreadyClaimed}
	case reply.Error.Code == concierge.ECONFLICT && verb == "reject" && strings.Contains(reply.Error.Message, "already marked"):
		return &deskError{e, ErrAlreadyRejected}
	}
	return e
}

// DefaultAlertTTL is how long an alert stays on screens (expires_at) and
// can be claimed or marked.
const DefaultAlertTTL = 30 * time.Minute
