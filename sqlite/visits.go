package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"concierge/checkin"
)

var _ checkin.VisitLog = (*DB)(nil)

// Visits hold no name and no biometric data: which customer came in where
// and when, and how sure the match was, for the visit history and for
// auditing alerts. The tier is copied as it was at the visit, since it
// changes monthly.
var _ = register("visits",
	`CREATE TABLE visits (
		id          TEXT PRIMARY KEY CHECK (id <> ''),
		branch      TEXT NOT NULL,
		camera      TEXT NOT NULL,
		customer_id TEXT NOT NULL CHECK (customer_id <> ''),
		at          TEXT NOT NULL,
		first_seen  TEXT,
		distance    REAL NOT NULL,
		margin      REAL NOT NULL,
		votes       INTEGER NOT NULL,
		tier_scheme TEXT NOT NULL,
		tier_level  TEXT NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX visits_customer_at ON visits(customer_id, at);
	CREATE INDEX visits_at ON visits(at);`,
)

// RecordVisit implements checkin.VisitLog. Recording the same arrival id
// again changes nothing, so a retried delivery cannot double a visit.
func (d *DB) RecordVisit(ctx context.Context, a checkin.Arrival) error {
	var scheme, level string
	if a.Tier != nil {
		scheme, level = a.Tier.Scheme, a.Tier.Level
	}
	var firstSeen sql.NullString
	if !a.FirstSeen.IsZero() {
		firstSeen = sql.NullString{String: a.FirstSeen.UTC().Format(timeFormat), Valid: true}
	}
	at := a.At.UTC().Format(timeFormat)
	err := d.tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `INSERT INTO visits
			(id, branch, camera, customer_id, at, first_seen, distance, margin, votes, tier_scheme, tier_level)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(id) DO NOTHING`,
			a.ID, a.Branch, a.Camera, a.CustomerID, at, firstSeen,
			a.Distance, a.Margin, a.Votes, scheme, level)
		if err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			// Counted once, for the manager's report (report.go).
			if err := recordArrival(ctx, tx, a); err != nil {
				return err
			}
		}
		// last_seen outlives the visit purge: retention counts from it.
		_, err = tx.ExecContext(ctx, `UPDATE customers SET last_seen = ?1
			WHERE id = ?2 AND (last_seen IS NULL OR last_seen < ?1)`, at, a.CustomerID)
		return err
	})
	if err != nil {
		return fmt.Errorf("record visit %s: %w", a.ID, err)
	}
	return nil
}

// PurgeVisits implements checkin.VisitLog: it deletes visits before the
// given time and returns how many.
func (d *DB) PurgeVisits(ctx context.Context, before time.Time) (int64, error) {
	r, err := d.db.ExecContext(ctx, `DELETE FROM visits WHERE at < ?`, before.UTC().Format(timeFormat))
	if err != nil {
		return 0, fmt.Errorf("purge visits: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge visits: %w", err)
	}
	return n, nil
}

// Visits returns the visits at or after since, oldest first: one customer's,
// or every customer's when customerID is empty. The arrivals carry no
// display name, and their tier only the scheme and level recorded.
func (d *DB) Visits(ctx context.Context, customerID string, since time.Time) ([]checkin.Arrival, error) {
	q := `SELECT id, branch, camera, customer_id, at, first_seen, distance, margin, votes, tier_scheme, tier_level
		FROM visits WHERE at >= ?`
	args := []any{since.UTC().Format(timeFormat)}
	if customerID != "" {
		q += ` AND customer_id = ?`
		args = append(args, customerID)
	}
	rows, err := d.db.QueryContext(ctx, q+` ORDER BY at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("visits: %w", err)
	}
	defer rows.Close()
	var out []checkin.Arrival
	for rows.Next() {
		var a checkin.Arrival
		var at string
		var firstSeen sql.NullString
		var scheme, level string
		if err := rows.Scan(&a.ID, &a.Branch, &a.Camera, &a.CustomerID, &at, &firstSeen,
			&a.Distance, &a.Margin, &a.Votes, &scheme, &level); err != nil {
			return nil, fmt.Errorf("visits: %w", err)
		}
		if a.At, err = time.Parse(timeFormat, at); err != nil {
			return nil, fmt.Errorf("visit %s: %w", a.ID, err)
		}
		if firstSeen.Valid {
			if a.FirstSeen, err = time.Parse(timeFormat, firstSeen.String); err != nil {
				return nil, fmt.Errorf("visit %s: %w", a.ID, err)
			}
		}
		if scheme != "" || level != "" {
			a.Tier = &checkin.Tier{Scheme: scheme, Level: level}
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("visits: %w", err)
	}
	return out, nil
}
