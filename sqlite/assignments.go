package sqlite

import (
	"context"
	"fmt"
	"time"
)

// TierAssignment is a tier an operator set by hand at enrollment
// (`concierge enroll --tier-scheme S --tier T`), for customers whose
// core-banking data has not been imported yet. Imported profiles win.
type TierAssignment struct {
	CustomerID string    `json:"customer_id"`
	Scheme     string    `json:"scheme"`
	Level      string    `json:"level"`
	AssignedAt time.Time `json:"assigned_at"`
	// Language is that of the customer's latest consent still in force
	// (the language they read it in), the only one on record for a
	// customer with no imported tier data: the badge and greeting follow
	// it. Read only; empty when none was recorded.
	Language string `json:"language,omitempty"`
}

var _ = register("tier_assignments",
	`CREATE TABLE tier_assignments (
		customer_id TEXT PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
		scheme      TEXT NOT NULL,
		level       TEXT NOT NULL,
		assigned_at TEXT NOT NULL
	)`,
)

// SetTierAssignment records or replaces the customer's manual tier.
func (d *DB) SetTierAssignment(ctx context.Context, a TierAssignment) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO tier_assignments (customer_id, scheme, level, assigned_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(customer_id) DO UPDATE SET scheme = excluded.scheme, level = excluded.level, assigned_at = excluded.assigned_at`,
		a.CustomerID, a.Scheme, a.Level, a.AssignedAt.UTC().Format(timeFormat))
	if err != nil {
		return fmt.Errorf("set tier of %s: %w", a.CustomerID, err)
	}
	return nil
}

// TierAssignments returns every manual tier, by customer.
func (d *DB) TierAssignments(ctx context.Context) (map[string]TierAssignment, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT a.customer_id, a.scheme, a.level, a.assigned_at,
			COALESCE((SELECT c.language FROM consents c WHERE c.customer_id = a.customer_id AND c.withdrawn_at IS NULL
				ORDER BY c.granted_at DESC, c.id DESC LIMIT 1), '')
		FROM tier_assignments a`)
	if err != nil {
		return nil, fmt.Errorf("tier assignments: %w", err)
	}
	defer rows.Close()
	out := map[string]TierAssignment{}
	for rows.Next() {
		var a TierAssignment
		var at string
		if err := rows.Scan(&a.CustomerID, &a.Scheme, &a.Level, &at, &a.Language); err != nil {
			return nil, err
		}
		a.AssignedAt, _ = time.Parse(timeFormat, at)
		out[a.CustomerID] = a
	}
	return out, rows.Err()
}
