// Package alert publishes arrivals to lobby staff over NATS JetStream and
// reads them back for staff terminals and pages. It runs the branch's
// embedded NATS server (Server), writes every alert to a durable outbox
// before sending it so that an unreachable server or a crash never loses
// one (Publisher), and consumes the branch's stream from any point
// (Subscriber). The wire format is the concierge.arrival.v1 JSON message,
// described by docs/arrival.v1.schema.json.
package alert

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"concierge/checkin"
)

// Schema is the value of every message's "schema" field. A change that
// breaks readers gets a new version and a new schema file.
const Schema = "concierge.arrival.v1"

// Feed is one kind of message in a branch's stream; each has its own subject.
type Feed string

const (
	// FeedArrival is the staff alert: one per visit, never with risk flags.
	FeedArrival Feed = "arrival"
	// FeedManager is the branch manager's copy of an arrival of a customer
	// with risk flags, and the only message that carries them.
	FeedManager Feed = "arrival.manager"
	// FeedVisit is every recognised check-in, for visit history and
	// analytics consumers; like FeedArrival it carries no risk flags.
	FeedVisit Feed = "visit"
)

// ParseFeed accepts a feed by its subject suffix or its short name
// ("manager" for FeedManager).
func ParseFeed(s string) (Feed, error) {
	switch s {
	case "", string(FeedArrival):
		return FeedArrival, nil
	case "manager", string(FeedManager):
		return FeedManager, nil
	case string(FeedVisit):
		return FeedVisit, nil
	case "claim", string(FeedClaim):
		return FeedClaim, nil
	case "escalation", string(FeedEscalation):
		return FeedEscalation, nil
	case "rejection", string(FeedRejection):
		return FeedRejection, nil
	case string(FeedErasure):
		return FeedErasure, nil
	case string(FeedVerify):
		return FeedVerify, nil
	}
	return "", fmt.Errorf("feed %q is not one of: arrival, manager, visit, claim, escalation, rejection, erasure, verify", s)
}

// Subject is the NATS subject of a branch's feed: concierge.<branch>.<feed>.
func Subject(branch string, f Feed) string {
	return "concierge." + branch + "." + string(f)
}

// streamFeeds are the feeds the branch's stream keeps. They are listed
// one by one rather than captured by concierge.<branch>.> so that
// FeedVerify, whose faces must not stay for the stream's days, can have a
// stream of its own: a new feed of the main stream must be added here.
var streamFeeds = []Feed{FeedArrival, FeedManager, FeedVisit, FeedClaim, FeedEscalation, FeedRejection, FeedErasure}

// StreamSubjects is what a branch's stream captures: each of its feeds,
// the acknowledgements staff send back among them.
func StreamSubjects(branch string) []string {
	out := make([]string, len(streamFeeds))
	for i, f := range streamFeeds {
		out[i] = Subject(branch, f)
	}
	return out
}

// StreamName is the JetStream stream of a branch: CONCIERGE_<BRANCH>, with
// any character a stream name may not hold replaced by '_'.
func StreamName(branch string) string {
	var b strings.Builder
	b.WriteString("CONCIERGE_")
	for _, r := range strings.ToUpper(branch) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Message is one concierge.arrival.v1 message. Staff messages (FeedArrival,
// FeedVisit) and the manager's (FeedManager) share it; only the manager's
// has RiskFlags.
type Message struct {
	Schema string    `json:"schema"`
	ID     string    `json:"id"` // the arrival's ULID, the same on every feed
	Branch string    `json:"branch"`
	Camera string    `json:"camera"`
	Time   time.Time `json:"time"`
	// FirstSeen is when the customer was first seen at the door: lobby
	// screens show how long they have been waiting.
	FirstSeen           *time.Time    `json:"first_seen,omitempty"`
	Customer            Customer      `json:"customer"`
	Tier                *Tier         `json:"tier,omitempty"`          // absent for a customer without a tier
	ServiceLevel        *ServiceLevel `json:"service_level,omitempty"` // absent when the tier sets none
	RelationshipManager string        `json:"relationship_manager,omitempty"`
	Match               Match         `json:"match"`
	// ExpiresAt is when lobby screens stop showing the alert.
	ExpiresAt time.Time          `json:"expires_at"`
	RiskFlags []checkin.RiskFlag `json:"risk_flags,omitempty"`
	// Escalated marks the manager's copy of an alert nobody claimed in
	// time (see Escalator); absent on every other message.
	Escalated *Escalated `json:"escalated,omitempty"`
	// Thumbnail is a small JPEG of the customer's face from the deciding
	// frame, only when the branch enabled it (alerts.thumbnail_px), so that
	// staff can tell a look-alike at a glance. Never on the visit feed.
	Thumbnail []byte `json:"thumbnail,omitempty"`
	// VerifiedBy names the member of staff who confirmed the verify card
	// this arrival came from; absent when the rule announced it alone.
	VerifiedBy string `json:"verified_by,omitempty"`
}

// Customer is who arrived, as staff may see them.
type Customer struct {
	ID string `json:"id"`
	// DisplayName is already masked by the branch's policy (王*).
	DisplayName   string `json:"display_name"`
	FormOfAddress string `json:"form_of_address,omitempty"`
	Language      string `json:"language,omitempty"`
}

// Tier is the customer's standing with the bank.
type Tier struct {
	Scheme    string `json:"scheme"`
	Level     string `json:"level"`
	LevelName string `json:"level_name"`
	VIP       bool   `json:"vip"`
}

// ServiceLevel tells staff how to treat the customer.
type ServiceLevel struct {
	Priority int    `json:"priority"` // 1 is most urgent
	Greeting string `json:"greeting,omitempty"`
	Lane     string `json:"lane,omitempty"`
	NotifyRM bool   `json:"notify_rm"`
	// EscalateAfter is how long the alert may stay unclaimed before it is
	// raised to the branch manager: absent for the branch's default, 0 for
	// never.
	EscalateAfter *Seconds `json:"escalate_after_s,omitempty"`
}

// Match is how sure the recognition was, so staff can judge a doubtful one.
type Match struct {
	Distance float64 `json:"distance"`
	Margin   float64 `json:"margin"`
	Votes    int     `json:"votes"`
}

// NewMessage builds the staff message of an arrival; it never carries risk
// flags, whatever the caller holds.
func NewMessage(a checkin.Arrival, ttl time.Duration) Message {
	m := Message{
		Schema: Schema,
		ID:     a.ID,
		Branch: a.Branch,
		Camera: a.Camera,
		Time:   a.At.UTC(),
		Customer: Customer{
			ID:          a.CustomerID,
			DisplayName: a.DisplayName,
		},
		Match:      Match{Distance: a.Distance, Margin: a.Margin, Votes: a.Votes},
		ExpiresAt:  a.At.Add(ttl).UTC(),
		Thumbnail:  a.Thumbnail,
		VerifiedBy: a.VerifiedBy,
	}
	if !a.FirstSeen.IsZero() {
		fs := a.FirstSeen.UTC()
		m.FirstSeen = &fs
	}
	if t := a.Tier; t != nil {
		m.Tier = &Tier{Scheme: t.Scheme, Level: t.Level, LevelName: t.LevelName, VIP: t.VIP}
		m.RelationshipManager = t.RelationshipManager
		m.Customer.FormOfAddress = t.FormOfAddress
		m.Customer.Language = t.Language
		if s := t.Service; s != nil {
			m.ServiceLevel = &ServiceLevel{Priority: s.Priority, Greeting: s.Greeting, Lane: s.Lane, NotifyRM: s.NotifyRM}
			if s.EscalateAfter != 0 {
				after := Seconds(max(s.EscalateAfter, 0)) // never is 0 on the wire
				m.ServiceLevel.EscalateAfter = &after
			}
		}
	}
	return m
}

// Decode parses a message and checks that it is one this package can read.
func Decode(data []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("decode alert: %w", err)
	}
	if m.Schema != Schema {
		return m, fmt.Errorf("decode alert %s: schema %q, want %q", m.ID, m.Schema, Schema)
	}
	return m, nil
}
