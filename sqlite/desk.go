package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"concierge"
	"concierge/alert"
)

var _ alert.AlertBook = (*DB)(nil)

// AlertRecord implements alert.AlertBook from the visit log: the visit id
// is the alert id. An alert with no visit is ENOTFOUND, so a claim or mark
// of it is refused; a withdrawal deletes the customer's visits (Forget), so
// their alerts can no longer be claimed or marked either.
func (d *DB) AlertRecord(ctx context.Context, alertID string) (alert.AlertRecord, error) {
	var rec alert.AlertRecord
	var at string
	var rejected int
	err := d.db.QueryRowContext(ctx, `SELECT v.customer_id, v.at,
			EXISTS (SELECT 1 FROM false_matches f WHERE f.alert_id = v.id)
		FROM visits v WHERE v.id = ?`, alertID).Scan(&rec.CustomerID, &at, &rejected)
	if errors.Is(err, sql.ErrNoRows) {
		return alert.AlertRecord{}, concierge.Errorf(concierge.ENOTFOUND, "alert %s: no such alert", alertID)
	}
	if err != nil {
		return rec, fmt.Errorf("alert %s: %w", alertID, err)
	}
	rec.At, err = time.Parse(timeFormat, at)
	if err != nil {
		return rec, fmt.Errorf("alert %s: time %q: %w", alertID, at, err)
	}
	rec.Rejected = rejected == 1
	return rec, nil
}
