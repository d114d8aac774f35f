// Package enroll is the biometric enrollment of customers who opted in:
// consent records, face templates, the in-memory gallery with its 1:N
// search, and the rules that decide whether a face is a known customer.
// It is pure Go; faces come from a Detector and rows go to a Store.
package enroll

import (
	"context"
	"log/slog"
	"time"

	"concierge"
	"concierge/face"
)

// Customer is a person the bank knows, enrolled or not.
type Customer struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"display_name"`
	Created     time.Time `json:"created"`
}

// LogValue keeps the name out of logs.
func (c Customer) LogValue() slog.Value { return slog.StringValue(c.ID) }

// Consent is the record of a customer's agreement to be recognised. A
// template may exist only while its consent is not withdrawn.
type Consent struct {
	ID          int64  `json:"id"`
	CustomerID  string `json:"customer_id"`
	Reference   string `json:"reference"`    // signed form number, core-banking reference …
	TextVersion string `json:"text_version"` // which consent text the customer saw
	Channel     string `json:"channel"`      // cli, kiosk, counter
	Language    string `json:"language,omitempty"`
	// Scope is where the customer agreed to be recognised: ScopeBranch
	// (the templates never leave this box) or ScopeNetwork (a separate
	// consent that they travel, sealed, to the bank's other branches).
	Scope       string     `json:"scope"`
	GrantedAt   time.Time  `json:"granted_at"`
	WithdrawnAt *time.Time `json:"withdrawn_at,omitempty"`
	// WithdrawnReason says why it ended: WithdrawnByCustomer or
	// WithdrawnRetention.
	WithdrawnReason string `json:"withdrawn_reason,omitempty"`
}

// Why a consent ended, as recorded with it.
const (
	WithdrawnByCustomer = "withdrawn"
	WithdrawnRetention  = "retention"
)

// Consent scopes.
const (
	ScopeBranch  = "branch"
	ScopeNetwork = "network"
)

// CheckScope returns nil for a known scope.
func CheckScope(scope string) error {
	if scope != ScopeBranch && scope != ScopeNetwork {
		return concierge.Errorf(concierge.EINVALID, "consent scope %q is not one of: %s, %s", scope, ScopeBranch, ScopeNetwork)
	}
	return nil
}

// Active reports whether the consent still allows recognition.
func (c Consent) Active() bool { return c.WithdrawnAt == nil }

// Template is one stored face embedding of a customer.
type Template struct {
	ID         int64          `json:"id"`
	CustomerID string         `json:"customer_id"`
	ConsentID  int64          `json:"consent_id"`
	Embedding  face.Embedding `json:"-"`
	Quality    face.Quality   `json:"quality"`
	Model      string         `json:"model"`
	Created    time.Time      `json:"created"`
	// Source is where the face came from: SourceEnrollment (kiosk, counter,
	// CLI, with the customer present and consenting) or SourceDoor (a face
	// of a visit that staff confirmed). Stored with the template.
	Source string `json:"source"`
	// Group is the gallery's scoring key, never stored: the gallery keeps
	// one centroid per customer and group, and a customer's distance is the
	// nearest of their centroids. "" is the enrollment group.
	Group string `json:"-"`
}

// Template sources.
const (
	SourceEnrollment = "enrollment"
	SourceDoor       = "door"
)

// Store keeps customers, consents and templates. Implementations apply each
// method atomically: a failed call changes nothing.
type Store interface {
	// SaveEnrollment creates or updates the customer, records the consent
	// and adds the templates, all in one transaction. It returns the
	// templates with their IDs set.
	SaveEnrollment(ctx context.Context, c Customer, consent Consent, ts []Template) ([]Template, error)
	// Forget deletes every template of the customer and marks every active
	// consent withdrawn at the given time, in one transaction. It returns
	// the number of templates removed; ENOTFOUND for an unknown customer.
	Forget(ctx context.Context, customerID string, at time.Time) (int, error)
	// Templates returns the templates of the model whose consent is active.
	Templates(ctx context.Context, model string) ([]Template, error)
	// Customer returns one customer; ENOTFOUND when absent.
	Customer(ctx context.Context, id string) (Customer, error)
	// Consents returns the customer's consent history, newest first.
	Consents(ctx context.Context, customerID string) ([]Consent, error)
}

// Detector finds and embeds faces in an encoded image (vision.Engine).
type Detector interface {
	Detect(ctx context.Context, img []byte) ([]face.Face, error)
	Model() string
}
