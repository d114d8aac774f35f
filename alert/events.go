package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// FeedEscalation carries escalations: an alert nobody claimed in time
	// was raised to the branch manager. Screens mark the alert.
	FeedEscalation Feed = "arrival.escalated"
	// FeedRejection carries "not this person" marks: staff saw the alert
	// name the wrong customer. Screens withdraw the alert; the daemon
	// tightens that customer's match rule.
	FeedRejection Feed = "arrival.rejected"
)

// EscalationSchema and RejectionSchema are the "schema" fields of the
// messages on FeedEscalation and FeedRejection.
const (
	EscalationSchema = "concierge.escalation.v1"
	RejectionSchema  = "concierge.rejection.v1"
)

// Escalation says that an alert went unclaimed for After and was raised to
// the branch manager. It is published once per alert.
type Escalation struct {
	Schema     string    `json:"schema"`
	AlertID    string    `json:"alert_id"`
	Branch     string    `json:"branch"`
	CustomerID string    `json:"customer_id"`
	After      Seconds   `json:"after_s"`
	At         time.Time `json:"time"`
}

// Rejection says that a staff member marked an alert as naming the wrong
// customer ("not this person").
type Rejection struct {
	Schema     string    `json:"schema"`
	AlertID    string    `json:"alert_id"`
	Branch     string    `json:"branch"`
	CustomerID string    `json:"customer_id"`
	By         string    `json:"by"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"time"`
}

// Seconds is a duration written as a number of seconds on the wire.
type Seconds time.Duration

// MarshalJSON writes whole or fractional seconds.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(s).Seconds())
}

// UnmarshalJSON reads a number of seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*s = Seconds(time.Duration(f * float64(time.Second)))
	return nil
}

// Event is one message of any feed read by Subscriber.Events. Exactly one
// of Arrival, Claim, Escalation, Rejection and Erasure is set when Err is nil.
type Event struct {
	Seq     uint64    // stream sequence; Start{AfterSeq: Seq} resumes after it
	Subject string    // the full subject it came on
	Feed    Feed      // the feed of Subject
	Stored  time.Time // when JetStream stored it
	Data    []byte    // the message exactly as published

	Arrival    *Message // FeedArrival, FeedManager, FeedVisit
	Claim      *Claim
	Escalation *Escalation
	Rejection  *Rejection
	Erasure    *Erasure
	Card       *CardMessage // FeedVerify: a card
	CardAnswer *CardAnswer  // FeedVerify: a card was answered
}

// decodeEvent fills the typed field of e that matches its feed.
func decodeEvent(e *Event) error {
	switch e.Feed {
	case FeedArrival, FeedManager, FeedVisit:
		m, err := Decode(e.Data)
		if err != nil {
			return err
		}
		e.Arrival = &m
	case FeedClaim:
		c, err := DecodeClaim(e.Data)
		if err != nil {
			return err
		}
		e.Claim = &c
	case FeedEscalation:
		var x Escalation
		if err := decodeAs(e.Data, EscalationSchema, &x, func() string { return x.Schema }); err != nil {
			return err
		}
		e.Escalation = &x
	case FeedRejection:
		var x Rejection
		if err := decodeAs(e.Data, RejectionSchema, &x, func() string { return x.Schema }); err != nil {
			return err
		}
		e.Rejection = &x
	case FeedErasure:
		var x Erasure
		if err := decodeAs(e.Data, ErasureSchema, &x, func() string { return x.Schema }); err != nil {
			return err
		}
		e.Erasure = &x
	case FeedVerify:
		var peek struct {
			Schema string `json:"schema"`
		}
		if json.Unmarshal(e.Data, &peek) == nil && peek.Schema == VerifyAnswerSchema {
			var x CardAnswer
			if err := decodeAs(e.Data, VerifyAnswerSchema, &x, func() string { return x.Schema }); err != nil {
				return err
			}
			e.CardAnswer = &x
			return nil
		}
		c, err := DecodeCard(e.Data)
		if err != nil {
			return err
		}
		e.Card = &c
	default:
		return fmt.Errorf("decode event: unknown feed %q", e.Feed)
	}
	return nil
}

func decodeAs(data []byte, schema string, v any, got func() string) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", schema, err)
	}
	if got() != schema {
		return fmt.Errorf("decode %s: schema %q", schema, got())
	}
	return nil
}

// feedOf is the feed of a branch's subject.
func feedOf(branch, subject string) Feed {
	return Feed(strings.TrimPrefix(subject, "concierge."+branch+"."))
}

// Events reads several feeds of the branch as one sequence in stream
// order, from start, with the same outage handling as Alerts: a lobby
// screen reads arrivals, claims, escalations and rejections through one
// position, so catching up after a reconnect replays them in the order
// they happened. A message that cannot be decoded is yielded with its
// error (Seq, Subject, Feed and Data set).
func (s *Subscriber) Events(ctx context.Context, start Start, feeds ...Feed) func(yield func(Event, error) bool) {
	return func(yield func(Event, error) bool) {
		if len(feeds) == 0 {
			yield(Event{}, errors.New("alert subscriber: no feed to read"))
			return
		}
		subjects := make([]string, len(feeds))
		for i, f := range feeds {
			subjects[i] = Subject(s.cfg.Branch, f)
		}
		s.follow(ctx, subjects, start, func(e Event) bool {
			e.Feed = feedOf(s.cfg.Branch, e.Subject)
			var err error
			if err = decodeEvent(&e); err != nil {
				err = fmt.Errorf("event seq %d: %w", e.Seq, err)
			}
			return yield(e, err)
		}, func(err error) bool { return yield(Event{}, err) })
	}
}

// Publish helpers shared by every client that writes feedback to a
// branch's stream (terminals, the lobby page, the daemon).

// publishOnce publishes data once per id: JetStream drops a second message
// with the same id inside its duplicate window and says so.
func publishOnce(ctx context.Context, js jetstream.JetStream, subject, id string, v any) (duplicate bool, err error) {
	data, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	ack, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(id))
	if err != nil {
		return false, err
	}
	return ack.Duplicate, nil
}

// ErrAlreadyRejected is returned to the second staff member who marks the
// same alert "not this person".
var ErrAlreadyRejected = errors.New("alert already marked as the wrong person")

// Reject records that by saw alert alertID name the wrong customer. Like a
// claim, the first mark of an alert stands.
func (c *Claimer) Reject(ctx context.Context, alertID, customerID, by, reason string, at time.Time) error {
	alertID, customerID, by = strings.TrimSpace(alertID), strings.TrimSpace(customerID), strings.TrimSpace(by)
	if alertID == "" || customerID == "" || by == "" {
		return errors.New("reject: alert id, customer id and staff name are required")
	}
	dup, err := publishOnce(ctx, c.js, Subject(c.branch, FeedRejection), "reject/"+alertID, Rejection{
		Schema: RejectionSchema, AlertID: alertID, Branch: c.branch, CustomerID: customerID,
		By: by, Reason: strings.TrimSpace(reason), At: at.UTC(),
	})
	if err != nil {
		return fmt.Errorf("reject %s: %w", alertID, err)
	}
	if dup {
		return fmt.Errorf("reject %s: %w", alertID, ErrAlreadyRejected)
	}
	return nil
}

// Escalate publishes the escalation of an alert. It reports false when the
// alert was already escalated (by this or an earlier run of the daemon).
func (c *Claimer) Escalate(ctx context.Context, e Escalation) (bool, error) {
	e.Schema, e.Branch, e.At = EscalationSchema, c.branch, e.At.UTC()
	if e.AlertID == "" {
		return false, errors.New("escalate: alert id is required")
	}
	dup, err := publishOnce(ctx, c.js, Subject(c.branch, FeedEscalation), "escalate/"+e.AlertID, e)
	if err != nil {
		return false, fmt.Errorf("escalate %s: %w", e.AlertID, err)
	}
	return !dup, nil
}
