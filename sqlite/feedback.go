package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"concierge"
	"concierge/checkin"
)

// False matches are the audit trail of "not this person": which alert
// staff marked as naming the wrong customer, who did and why, and how sure
// the match had been. Nothing of the stranger is kept: no face, no
// embedding. The customer, camera and match come from our own visit
// record, not from the client that sent the mark. Rows stay until the
// customer is forgotten (Forget deletes them), since the repeat rule
// lasts until re-enrollment.
var _ = register("feedback",
	`CREATE TABLE false_matches (
		alert_id    TEXT PRIMARY KEY CHECK (alert_id <> ''),
		customer_id TEXT NOT NULL CHECK (customer_id <> ''),
		camera      TEXT NOT NULL,
		distance    REAL NOT NULL,
		margin      REAL NOT NULL,
		marked_by   TEXT NOT NULL CHECK (marked_by <> ''),
		reason      TEXT NOT NULL DEFAULT '',
		at          TEXT NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX false_matches_customer_at ON false_matches(customer_id, at);`,
)

// RecordFalseMatch records that by marked alert alertID "not this person"
// at time at. The customer and the match are those of the visit with the
// alert's id. It reports whether the mark is new: recording the same
// alert again changes nothing, so replaying the feed is harmless. An
// alert with no visit, or whose customer has withdrawn consent, is
// ENOTFOUND.
func (d *DB) RecordFalseMatch(ctx context.Context, alertID, by, reason string, at time.Time) (checkin.FalseMatch, bool, error) {
	m := checkin.FalseMatch{AlertID: alertID, By: by, Reason: reason, At: at.UTC()}
	fresh := false
	err := d.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT customer_id, camera, distance, margin FROM visits WHERE id = ?`, alertID).
			Scan(&m.CustomerID, &m.Camera, &m.Distance, &m.Margin)
		if errors.Is(err, sql.ErrNoRows) {
			return concierge.Errorf(concierge.ENOTFOUND, "alert %s: no such visit", alertID)
		}
		if err != nil {
			return err
		}
		// A customer who withdrew consent keeps nothing, marks included.
		var enrolled int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consents WHERE customer_id = ? AND withdrawn_at IS NULL`,
			m.CustomerID).Scan(&enrolled); err != nil {
			return err
		}
		if enrolled == 0 {
			return concierge.Errorf(concierge.ENOTFOUND, "alert %s: customer %s is no longer enrolled", alertID, m.CustomerID)
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO false_matches
			(alert_id, customer_id, camera, distance, margin, marked_by, reason, at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(alert_id) DO NOTHING`,
			alertID, m.CustomerID, m.Camera, m.Distance, m.Margin, by, reason, m.At.Format(timeFormat))
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		fresh = n == 1
		// What the visit taught the gallery goes with the mark: it was
		// not the customer.
		if _, err := tx.ExecContext(ctx, `DELETE FROM templates WHERE visit_id = ? AND source = 'door'`, alertID); err != nil {
			return fmt.Errorf("door templates: %w", err)
		}
		return nil
	})
	if err != nil {
		return m, false, fmt.Errorf("record false match %s: %w", alertID, err)
	}
	return m, fresh, nil
}

// FalseMatches returns every false match kept, oldest first, each marked
// Reenrolled when the customer enrolled templates after it (door templates
// learned from visits are no re-enrollment).
func (d *DB) FalseMatches(ctx context.Context) ([]checkin.FalseMatch, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT f.alert_id, f.customer_id, f.camera, f.distance, f.margin,
			f.marked_by, f.reason, f.at,
			f.at < COALESCE((SELECT MAX(t.created_at) FROM templates t WHERE t.customer_id = f.customer_id AND t.source = 'enrollment'), '')
		FROM false_matches f ORDER BY f.at, f.alert_id`)
	if err != nil {
		return nil, fmt.Errorf("false matches: %w", err)
	}
	defer rows.Close()
	var out []checkin.FalseMatch
	for rows.Next() {
		var m checkin.FalseMatch
		var at string
		if err := rows.Scan(&m.AlertID, &m.CustomerID, &m.Camera, &m.Distance, &m.Margin, &m.By, &m.Reason, &at,
			&m.Reenrolled); err != nil {
			return nil, fmt.Errorf("false matches: %w", err)
		}
		if m.At, err = time.Parse(timeFormat, at); err != nil {
			return nil, fmt.Errorf("false match %s: %w", m.AlertID, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("false matches: %w", err)
	}
	return out, nil
}
