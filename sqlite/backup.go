package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"concierge"
)

// BackupTo writes a consistent copy of the database to path, which must
// not exist, while other connections go on reading and writing: VACUUM
// INTO reads one snapshot. The copy is made 0600 before SQLite fills it,
// and holds the templates sealed exactly as the database does.
func (d *DB) BackupTo(ctx context.Context, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return concierge.Errorf(concierge.ECONFLICT, "backup %s: the file exists", path)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f.Close()
	if _, err := d.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("backup %s: %w", path, err)
	}
	return nil
}

// Withdrawal is a consent that ended: the customer and when.
type Withdrawal struct {
	CustomerID string
	At         time.Time
	Reason     string
}

// WithdrawnSince lists the customers whose consent ended after t, oldest
// first: a restore of a backup taken at t applies them again, so that no
// withdrawal is undone by restoring an older copy.
func (d *DB) WithdrawnSince(ctx context.Context, t time.Time) ([]Withdrawal, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT customer_id, MAX(withdrawn_at), COALESCE(MAX(withdrawn_reason), '')
		FROM consents WHERE withdrawn_at IS NOT NULL AND withdrawn_at > ?
		GROUP BY customer_id ORDER BY MAX(withdrawn_at)`, t.UTC().Format(timeFormat))
	if err != nil {
		return nil, fmt.Errorf("withdrawals since %v: %w", t, err)
	}
	defer rows.Close()
	var out []Withdrawal
	for rows.Next() {
		var w Withdrawal
		var at string
		if err := rows.Scan(&w.CustomerID, &at, &w.Reason); err != nil {
			return nil, err
		}
		if w.At, err = time.Parse(timeFormat, at); err != nil {
			return nil, fmt.Errorf("withdrawal of %s: time %q: %w", w.CustomerID, at, err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}
