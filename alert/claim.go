package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge"
)

// ClaimSchema is the "schema" of a claim message on FeedClaim.
const ClaimSchema = "concierge.claim.v1"

// FeedClaim carries staff claims of alerts ("I'm on it"); every screen
// reads it to show who took which alert.
const FeedClaim Feed = "arrival.ack"

// Claim says that a staff member took care of an alert.
type Claim struct {
	Schema  string    `json:"schema"`
	AlertID string    `json:"alert_id"`
	Branch  string    `json:"branch"`
	By      string    `json:"by"`
	At      time.Time `json:"time"`
}

// ErrAlreadyClaimed is returned to the second staff member who claims an
// alert: the first claim stands.
var ErrAlreadyClaimed = errors.New("alert already claimed")

// DecodeClaim reads a claim message.
func DecodeClaim(data []byte) (Claim, error) {
	var c Claim
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("decode claim: %w", err)
	}
	if c.Schema != ClaimSchema {
		return c, fmt.Errorf("decode claim: schema %q, want %q", c.Schema, ClaimSchema)
	}
	return c, nil
}

// Claimer publishes claims for one branch.
type Claimer struct {
	branch string
	nc     *nats.Conn
	js     jetstream.JetStream
}

// NewClaimer connects to NATS.
func NewClaimer(conn ConnConfig, branch string, log *slog.Logger) (*Claimer, error) {
	if log == nil {
		log = slog.Default()
	}
	nc, err := conn.connect(log, nil)
	if err != nil {
		return nil, concierge.Wrapf(err, "claimer")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, concierge.Wrapf(err, "claimer")
	}
	return &Claimer{branch: branch, nc: nc, js: js}, nil
}

// Close closes the connection.
func (c *Claimer) Close() { c.nc.Close() }

// Claim records that by took the alert. The message id is the alert's, so
// JetStream keeps only the first claim of an alert: a later one gets
// ErrAlreadyClaimed, and a retried one after a lost acknowledgement is
// harmless.
func (c *Claimer) Claim(ctx context.Context, alertID, by string, at time.Time) error {
	alertID, by = strings.TrimSpace(alertID), strings.TrimSpace(by)
	if alertID == "" || by == "" {
		return errors.New("claim: alert id and claimer are required")
	}
	data, err := json.Marshal(Claim{Schema: ClaimSchema, AlertID: alertID, Branch: c.branch, By: by, At: at.UTC()})
	if err != nil {
		return err
	}
	ack, err := c.js.Publish(ctx, Subject(c.branch, FeedClaim), data, jetstream.WithMsgID("claim/"+alertID))
	if err != nil {
		return fmt.Errorf("claim %s: %w", alertID, err)
	}
	if ack.Duplicate {
		return fmt.Errorf("claim %s: %w", alertID, ErrAlreadyClaimed)
	}
	return nil
}
