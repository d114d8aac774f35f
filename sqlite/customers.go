package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"concierge"
	"concierge/enroll"
)

// CustomerRecord is everything the database holds of one customer, as an
// auditor answering "what do you hold about me" needs it: the name as
// enrolled (the caller masks it where policy asks), every consent, and of
// the face templates, visits and "not this person" marks only counts and
// dates, never an embedding. After a withdrawal Erase has left only the
// consent rows (and the emptied customers row that anchors them), so that
// is all a record of a withdrawn customer shows.
type CustomerRecord struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Created  time.Time  `json:"created_at"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
	// Consents are newest first.
	Consents  []enroll.Consent `json:"consents"`
	Templates []TemplateGroup  `json:"templates"`
	Visits    VisitSummary     `json:"visits"`
	// FalseMatches are the alerts staff marked "not this person", oldest
	// first: when, by whom, why, at which camera.
	FalseMatches []FalseMatchMark `json:"false_matches"`
	// ManualTier is a tier set by hand at enrollment, if any.
	ManualTier *TierAssignment `json:"manual_tier,omitempty"`
}

// Active reports whether the customer has a consent not withdrawn.
func (r CustomerRecord) Active() bool {
	for _, c := range r.Consents {
		if c.WithdrawnAt == nil {
			return true
		}
	}
	return false
}

// TemplateGroup counts a customer's templates of one source
// (enroll.SourceEnrollment or enroll.SourceDoor) and model.
type TemplateGroup struct {
	Source string    `json:"source"`
	Model  string    `json:"model"`
	Count  int       `json:"count"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
}

// VisitSummary counts the visits still in the log (the visit log is
// purged after its retention; LastSeen outlives it).
type VisitSummary struct {
	Count int        `json:"count"`
	First *time.Time `json:"first,omitempty"`
	Last  *time.Time `json:"last,omitempty"`
}

// FalseMatchMark is one "not this person" mark on the customer's alert.
type FalseMatchMark struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	Camera string    `json:"camera"`
}

// CustomerIDs lists every customer the database holds a row of, withdrawn
// ones included (their consent record stays), by id.
func (d *DB) CustomerIDs(ctx context.Context) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id FROM customers ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("customers: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("customers: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// CustomerRecord returns what the database holds of the customer, read in
// one transaction so the parts agree; ENOTFOUND for an unknown id.
func (d *DB) CustomerRecord(ctx context.Context, id string) (CustomerRecord, error) {
	r := CustomerRecord{ID: id, Consents: []enroll.Consent{}, Templates: []TemplateGroup{}, FalseMatches: []FalseMatchMark{}}
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return r, fmt.Errorf("customer %s: %w", id, err)
	}
	defer tx.Rollback()
	var created string
	var lastSeen sql.NullString
	err = tx.QueryRowContext(ctx, `SELECT display_name, created_at, last_seen FROM customers WHERE id = ?`, id).
		Scan(&r.Name, &created, &lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return r, concierge.Errorf(concierge.ENOTFOUND, "customer %s: no such customer in this database", id)
	}
	if err != nil {
		return r, fmt.Errorf("customer %s: %w", id, err)
	}
	r.Created = parseTime(created)
	r.LastSeen = parseNullTime(lastSeen)
	if err := r.readConsents(ctx, tx); err != nil {
		return r, fmt.Errorf("customer %s: consents: %w", id, err)
	}
	if err := r.readTemplates(ctx, tx); err != nil {
		return r, fmt.Errorf("customer %s: templates: %w", id, err)
	}
	var first, last sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), MIN(at), MAX(at) FROM visits WHERE customer_id = ?`, id).
		Scan(&r.Visits.Count, &first, &last); err != nil {
		return r, fmt.Errorf("customer %s: visits: %w", id, err)
	}
	r.Visits.First, r.Visits.Last = parseNullTime(first), parseNullTime(last)
	if err := r.readFalseMatches(ctx, tx); err != nil {
		return r, fmt.Errorf("customer %s: false matches: %w", id, err)
	}
	var a TierAssignment
	var at string
	err = tx.QueryRowContext(ctx, `SELECT scheme, level, assigned_at FROM tier_assignments WHERE customer_id = ?`, id).
		Scan(&a.Scheme, &a.Level, &at)
	switch {
	case err == nil:
		a.CustomerID, a.AssignedAt = id, parseTime(at)
		r.ManualTier = &a
	case !errors.Is(err, sql.ErrNoRows):
		return r, fmt.Errorf("customer %s: tier: %w", id, err)
	}
	return r, nil
}

func (r *CustomerRecord) readConsents(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, customer_id, reference, text_version, channel, language, granted_at, withdrawn_at,
			COALESCE(withdrawn_reason, ''), scope
		FROM consents WHERE customer_id = ? ORDER BY granted_at DESC, id DESC`, r.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var c enroll.Consent
		var granted string
		var withdrawn sql.NullString
		if err := rows.Scan(&c.ID, &c.CustomerID, &c.Reference, &c.TextVersion, &c.Channel, &c.Language, &granted,
			&withdrawn, &c.WithdrawnReason, &c.Scope); err != nil {
			return err
		}
		c.GrantedAt, c.WithdrawnAt = parseTime(granted), parseNullTime(withdrawn)
		r.Consents = append(r.Consents, c)
	}
	return rows.Err()
}

func (r *CustomerRecord) readTemplates(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT source, model, COUNT(*), MIN(created_at), MAX(created_at)
		FROM templates WHERE customer_id = ? GROUP BY source, model ORDER BY source, model`, r.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var g TemplateGroup
		var first, last string
		if err := rows.Scan(&g.Source, &g.Model, &g.Count, &first, &last); err != nil {
			return err
		}
		g.First, g.Last = parseTime(first), parseTime(last)
		r.Templates = append(r.Templates, g)
	}
	return rows.Err()
}

func (r *CustomerRecord) readFalseMatches(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT at, marked_by, reason, camera FROM false_matches
		WHERE customer_id = ? ORDER BY at, alert_id`, r.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var m FalseMatchMark
		var at string
		if err := rows.Scan(&at, &m.By, &m.Reason, &m.Camera); err != nil {
			return err
		}
		m.At = parseTime(at)
		r.FalseMatches = append(r.FalseMatches, m)
	}
	return rows.Err()
}

// TemplateCount is how many templates the record holds, of any source.
func (r CustomerRecord) TemplateCount() int {
	n := 0
	for _, g := range r.Templates {
		n += g.Count
	}
	return n
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeFormat, s)
	return t
}

func parseNullTime(s sql.NullString) *time.Time {
	if !s.Valid || s.String == "" {
		return nil
	}
	t := parseTime(s.String)
	return &t
}
