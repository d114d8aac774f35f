package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// The audit log records every decision of the enrollment kiosks: who (the
// kiosk), what (start, consent, photo, liveness, finish, withdraw, refused
// requests), about whom, with what outcome. It holds no biometric data and
// no photos; detail is a short caller-made text of reasons and numbers.
// Rows are append-only and survive a customer's withdrawal: the log is the
// bank's record that the withdrawal happened. It also records who read
// customer records (`concierge customers`, actions customers.*), the actor
// being the reader's name.
var _ = register("audit",
	`CREATE TABLE audit (
		id          INTEGER PRIMARY KEY,
		at          TEXT NOT NULL,
		actor       TEXT NOT NULL CHECK (actor <> ''),
		action      TEXT NOT NULL CHECK (action <> ''),
		session     TEXT NOT NULL DEFAULT '',
		customer_id TEXT NOT NULL DEFAULT '',
		outcome     TEXT NOT NULL CHECK (outcome <> ''),
		detail      TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_customer ON audit(customer_id, at);
	CREATE INDEX audit_at ON audit(at);`,
)

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`  // kiosk id, or "-" for an unauthenticated caller
	Action     string    `json:"action"` // start, consent, photo, liveness, finish, abort, withdraw, auth, ...
	Session    string    `json:"session,omitempty"`
	CustomerID string    `json:"customer_id,omitempty"`
	Outcome    string    `json:"outcome"` // ok, refused, failed, ...
	Detail     string    `json:"detail,omitempty"`
}

// maxAuditDetail bounds a row; details are summaries, never payloads.
const maxAuditDetail = 500

// AppendAudit adds one entry. A zero At means now.
func (d *DB) AppendAudit(ctx context.Context, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = d.now()
	}
	if len(e.Detail) > maxAuditDetail {
		e.Detail = strings.ToValidUTF8(e.Detail[:maxAuditDetail], "") + "…"
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO audit (at, actor, action, session, customer_id, outcome, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.At.UTC().Format(timeFormat), e.Actor, e.Action, e.Session, e.CustomerID, e.Outcome, e.Detail)
	if err != nil {
		return fmt.Errorf("append audit %s/%s: %w", e.Action, e.Outcome, err)
	}
	return nil
}

// AuditFilter selects audit entries; zero fields match everything.
type AuditFilter struct {
	CustomerID string
	Actor      string
	Action     string
	Since      time.Time
	Limit      int // 0 means 1000
}

// Audit returns matching entries, oldest first.
func (d *DB) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q := `SELECT at, actor, action, session, customer_id, outcome, detail FROM audit WHERE 1=1`
	var args []any
	if f.CustomerID != "" {
		q += ` AND customer_id = ?`
		args = append(args, f.CustomerID)
	}
	if f.Actor != "" {
		q += ` AND actor = ?`
		args = append(args, f.Actor)
	}
	if f.Action != "" {
		q += ` AND action = ?`
		args = append(args, f.Action)
	}
	if !f.Since.IsZero() {
		q += ` AND at >= ?`
		args = append(args, f.Since.UTC().Format(timeFormat))
	}
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, f.Limit)
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at string
		if err := rows.Scan(&at, &e.Actor, &e.Action, &e.Session, &e.CustomerID, &e.Outcome, &e.Detail); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		e.At, _ = time.Parse(timeFormat, at)
		out = append(out, e)
	}
	return out, rows.Err()
}
