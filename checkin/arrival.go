// Package checkin decides when a face seen at the door is the arrival of an
// enrolled customer: it links detections into tracks, picks a track's best
// frames, fuses their matches into a vote, applies the cooldown, and hands
// one Arrival per visit to a Notifier. It is pure Go: cameras, models, NATS
// and SQLite are reached through the small interfaces defined here.
package checkin

import (
	"context"
	"log/slog"
	"time"
)

// Arrival is one recognised visit of a customer: the fact that staff are
// alerted about and the visit log records.
type Arrival struct {
	ID         string    `json:"id"` // ULID: unique and time-sortable
	Branch     string    `json:"branch"`
	Camera     string    `json:"camera"`
	At         time.Time `json:"time"`
	CustomerID string    `json:"customer_id"`
	// DisplayName is the name as staff may see it, already masked by policy.
	DisplayName string  `json:"display_name"`
	Distance    float64 `json:"distance"` // fused distance to the customer's templates
	// Margin is how much closer the fused embedding is to the customer than
	// to the runner-up customer, capped at 1 (no runner-up at all).
	Margin float64 `json:"margin"`
	Votes  int     `json:"votes"` // embeddings of the track that agreed
	Tier   *Tier   `json:"tier,omitempty"`
	// FirstSeen is the frame time of the track's first usable face (quality
	// at least Config.MinQuality): At minus FirstSeen is the decision
	// latency, and staff can see how long the customer has been inside.
	FirstSeen time.Time `json:"first_seen"`
	// Thumbnail is a small JPEG of the customer's face from the deciding
	// frame, only when the camera offers one (alerts.thumbnail_px). It
	// travels with the alert and is never written to the visit log.
	Thumbnail []byte `json:"-"`
	// VerifiedBy names the member of staff who confirmed a verify card,
	// which made this arrival (Service.ConfirmCard); empty for arrivals
	// the rule announced on its own.
	VerifiedBy string `json:"verified_by,omitempty"`
}

// Tier is what staff need to know of the customer's standing with the bank.
// Risk flags travel separately (RiskFlags) so that the staff alert can never
// carry them by accident.
type Tier struct {
	Scheme              string        `json:"scheme"`
	Level               string        `json:"level"`
	LevelName           string        `json:"level_name"`
	VIP                 bool          `json:"vip"`
	Service             *ServiceLevel `json:"service_level,omitempty"`
	RelationshipManager string        `json:"relationship_manager,omitempty"`
	FormOfAddress       string        `json:"form_of_address,omitempty"`
	Language            string        `json:"language,omitempty"`
}

// ServiceLevel tells staff how to treat the customer.
type ServiceLevel struct {
	Priority      int           `json:"priority"` // 1 is most urgent
	Greeting      string        `json:"greeting,omitempty"`
	Lane          string        `json:"lane,omitempty"` // lane, counter or room
	NotifyRM      bool          `json:"notify_rm"`
	Cooldown      time.Duration `json:"-"`
	EscalateAfter time.Duration `json:"-"` // unclaimed alert to the manager after this; 0: branch default, < 0: never
}

// RiskFlag is a credit, fraud or AML flag from core banking. It is routed to
// the branch manager only.
type RiskFlag struct {
	Kind   string `json:"kind"`   // credit, fraud, aml
	Reason string `json:"reason"` // core banking's reason code
}

// LogValue keeps names out of logs, and customer ids too: those may only
// be logged at Debug level, which a value cannot know, so a caller adds
// the id itself to a Debug record.
func (a Arrival) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", a.ID),
		slog.String("camera", a.Camera),
		slog.Float64("distance", a.Distance),
		slog.Int("votes", a.Votes),
	)
}

// Notifier delivers arrivals to staff. risk is empty for most customers;
// when it is not, the notifier routes the arrival to the branch manager as
// well, and only there with the flags.
type Notifier interface {
	Notify(ctx context.Context, a Arrival, risk []RiskFlag) error
}

// VisitLog records arrivals (the visit history) and forgets old ones.
type VisitLog interface {
	RecordVisit(ctx context.Context, a Arrival) error
	PurgeVisits(ctx context.Context, before time.Time) (int64, error)
}
