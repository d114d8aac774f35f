package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"concierge"
	"concierge/enroll"
)

var _ enroll.RetentionStore = (*DB)(nil)

// An erasure is the part of a withdrawal that SQLite cannot do itself:
// the alerts naming the customer in JetStream and on lobby screens. Erase
// queues it in the same transaction that deletes the rows, with the ids of
// the alerts it found, so nothing is lost if the process stops before the
// NATS side purges them; that side calls FinishErasure when done. The row
// holds the customer id until then, and nothing else of them.
var _ = register("erasures",
	`CREATE TABLE erasures (
		id           INTEGER PRIMARY KEY,
		customer_id  TEXT NOT NULL CHECK (customer_id <> ''),
		alert_ids    TEXT NOT NULL DEFAULT '[]',
		requested_at TEXT NOT NULL
	);`,
)

// Erasure is a withdrawal still to be carried out outside the database.
type Erasure struct {
	ID         int64
	CustomerID string
	// AlertIDs are the customer's alerts (visits and outbox messages)
	// found when the data was erased.
	AlertIDs  []string
	Requested time.Time
}

// Forget implements enroll.Store: Erase with the customer's withdrawal as
// the reason.
func (d *DB) Forget(ctx context.Context, customerID string, at time.Time) (int, error) {
	return d.Erase(ctx, customerID, at, enroll.WithdrawnByCustomer)
}

// Erase deletes everything the database holds of the customer but the
// record of their consent, in one transaction, and queues the erasure of
// their alerts outside it (PendingErasures). It returns how many templates
// it deleted; ENOTFOUND for a customer never enrolled.
//
// Deleted: templates, "not this person" marks, visits, the alert outbox's
// messages about them (sent or not, face thumbnails included), a tier set
// by hand at enrollment, the display name, the last-seen time. Kept: the
// customers row as the anchor of the consent rows (id and creation time,
// name emptied) and the consent rows, now withdrawn at `at` for reason.
// Audit rows stay (they prove what the kiosks did) but lose the customer
// id. Tier data imported from core banking is the bank's record, not face
// data, and stays.
//
// secure_delete zeroes freed space, and the WAL checkpoint after the
// commit leaves no older copy of the pages in the -wal file.
func (d *DB) Erase(ctx context.Context, customerID string, at time.Time, reason string) (int, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM customers WHERE id = ?`, customerID).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return concierge.Errorf(concierge.ENOTFOUND, "customer %s is not enrolled", customerID)
		}
		alerts, err := customerAlerts(ctx, tx, customerID)
		if err != nil {
			return fmt.Errorf("find alerts: %w", err)
		}
		r, err := tx.ExecContext(ctx, `DELETE FROM templates WHERE customer_id = ?`, customerID)
		if err != nil {
			return fmt.Errorf("delete templates: %w", err)
		}
		if n, err = r.RowsAffected(); err != nil {
			return err
		}
		if err := eraseAlerts(ctx, tx, customerID, alerts); err != nil {
			return err
		}
		for _, st := range []struct{ what, q string }{
			{"false matches", `DELETE FROM false_matches WHERE customer_id = ?1`},
			{"manual tier", `DELETE FROM tier_assignments WHERE customer_id = ?1`},
			{"audit", `UPDATE audit SET customer_id = '', detail = replace(detail, ?1, '') WHERE customer_id = ?1`},
			{"name", `UPDATE customers SET display_name = '', last_seen = NULL WHERE id = ?1`},
		} {
			if _, err := tx.ExecContext(ctx, st.q, customerID); err != nil {
				return fmt.Errorf("erase %s: %w", st.what, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE consents SET withdrawn_at = ?, withdrawn_reason = ? WHERE customer_id = ? AND withdrawn_at IS NULL`,
			at.UTC().Format(timeFormat), reason, customerID); err != nil {
			return fmt.Errorf("withdraw consent: %w", err)
		}
		ids, _ := json.Marshal(alerts)
		if _, err := tx.ExecContext(ctx, `INSERT INTO erasures (customer_id, alert_ids, requested_at) VALUES (?, ?, ?)`,
			customerID, string(ids), d.now().Format(timeFormat)); err != nil {
			return fmt.Errorf("queue erasure: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// No customer id in this error: retention logs it above Debug.
	if err := d.checkpoint(context.WithoutCancel(ctx)); err != nil {
		return int(n), fmt.Errorf("erase: %w", err)
	}
	return int(n), nil
}

// eraseAlerts deletes the customer's visits and the outbox messages about
// them: those naming the customer, and those of the alerts found, whatever
// their payload (the visit feed's).
func eraseAlerts(ctx context.Context, tx *sql.Tx, customerID string, alerts []string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM visits WHERE customer_id = ?1`, customerID); err != nil {
		return fmt.Errorf("erase visits: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM alert_outbox WHERE `+outboxOfCustomer, customerID); err != nil {
		return fmt.Errorf("erase outbox: %w", err)
	}
	for _, a := range alerts {
		if _, err := tx.ExecContext(ctx, `DELETE FROM alert_outbox WHERE substr(msg_id, 1, ?) = ?`, len(a)+1, a+"/"); err != nil {
			return fmt.Errorf("erase outbox: %w", err)
		}
	}
	return nil
}

// outboxOfCustomer matches outbox messages whose JSON payload names the
// customer (?1): alerts (concierge.arrival.v1) as customer.id, events as
// customer_id. Payloads that are not JSON match nothing.
const outboxOfCustomer = `CASE WHEN json_valid(CAST(payload AS TEXT))
		THEN json_extract(CAST(payload AS TEXT), '$.customer.id') = ?1 OR json_extract(CAST(payload AS TEXT), '$.customer_id') = ?1
		ELSE 0 END`

// customerAlerts lists the ids of the customer's alerts: their visits and
// the outbox messages about them (a message id is "<alert id>/<feed>").
func customerAlerts(ctx context.Context, tx *sql.Tx, customerID string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM visits WHERE customer_id = ?1
		UNION SELECT msg_id FROM alert_outbox WHERE `+outboxOfCustomer, customerID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if i := strings.LastIndexByte(id, '/'); i > 0 {
			id = id[:i]
		}
		seen[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// PendingErasures returns the erasures not yet finished, oldest first.
func (d *DB) PendingErasures(ctx context.Context) ([]Erasure, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, customer_id, alert_ids, requested_at FROM erasures ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("pending erasures: %w", err)
	}
	defer rows.Close()
	var out []Erasure
	for rows.Next() {
		var e Erasure
		var ids, at string
		if err := rows.Scan(&e.ID, &e.CustomerID, &ids, &at); err != nil {
			return nil, fmt.Errorf("pending erasures: %w", err)
		}
		if err := json.Unmarshal([]byte(ids), &e.AlertIDs); err != nil {
			return nil, fmt.Errorf("erasure %d: alert ids: %w", e.ID, err)
		}
		if e.Requested, err = time.Parse(timeFormat, at); err != nil {
			return nil, fmt.Errorf("erasure %d: %w", e.ID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending erasures: %w", err)
	}
	return out, nil
}

// FinishErasure deletes a carried-out erasure, the last row naming the
// customer outside their consent record, and checkpoints. ENOTFOUND for an
// unknown id.
//
// A camera may still have recognised the customer in the moment between
// the erasure and the daemon's gallery dropping them. If visits or outbox
// messages naming a customer who has not enrolled again appeared since,
// FinishErasure deletes them too, adds their alert ids to the erasure and
// returns ECONFLICT: the erasure stays pending, to be purged outside the
// database again and finished once more.
func (d *DB) FinishErasure(ctx context.Context, id int64) error {
	var late int
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var customerID, ids string
		err := tx.QueryRowContext(ctx, `SELECT customer_id, alert_ids FROM erasures WHERE id = ?`, id).Scan(&customerID, &ids)
		if errors.Is(err, sql.ErrNoRows) {
			return concierge.Errorf(concierge.ENOTFOUND, "erasure %d not found", id)
		}
		if err != nil {
			return err
		}
		var enrolled bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM consents WHERE customer_id = ? AND withdrawn_at IS NULL)`,
			customerID).Scan(&enrolled); err != nil {
			return err
		}
		if !enrolled {
			alerts, err := customerAlerts(ctx, tx, customerID)
			if err != nil {
				return err
			}
			if late = len(alerts); late > 0 {
				if err := eraseAlerts(ctx, tx, customerID, alerts); err != nil {
					return err
				}
				var all []string
				if err := json.Unmarshal([]byte(ids), &all); err != nil {
					return fmt.Errorf("alert ids: %w", err)
				}
				for _, a := range alerts {
					if !slices.Contains(all, a) {
						all = append(all, a)
					}
				}
				sort.Strings(all)
				b, _ := json.Marshal(all)
				_, err = tx.ExecContext(ctx, `UPDATE erasures SET alert_ids = ? WHERE id = ?`, string(b), id)
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM erasures WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish erasure %d: %w", id, err)
	}
	if err := d.checkpoint(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("finish erasure %d: %w", id, err)
	}
	if late > 0 {
		return concierge.Errorf(concierge.ECONFLICT,
			"erasure %d: %d alerts naming the customer arrived after it; they are deleted here and added to the erasure: purge them too, then finish it again", id, late)
	}
	return nil
}

// StaleCustomers implements enroll.RetentionStore: customers holding
// templates who were last recognised, or else last enrolled, before the
// given time. Door templates (learned from confirmed visits) are not an
// enrollment: they do not extend retention. The visit that taught them
// moved last_seen, which is all the retention rule credits a visit.
func (d *DB) StaleCustomers(ctx context.Context, before time.Time) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT c.id FROM customers c
		JOIN (SELECT customer_id, COALESCE(MAX(CASE WHEN source = 'enrollment' THEN created_at END), '') AS enrolled
			FROM templates GROUP BY customer_id) t ON t.customer_id = c.id
		WHERE MAX(COALESCE(c.last_seen, ''), t.enrolled) < ? ORDER BY c.id`, before.UTC().Format(timeFormat))
	if err != nil {
		return nil, fmt.Errorf("stale customers: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("stale customers: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// FaceDataSubjects implements enroll.RetentionStore: how many people the
// database holds face templates of.
func (d *DB) FaceDataSubjects(ctx context.Context) (int, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT customer_id) FROM templates`).Scan(&n); err != nil {
		return 0, fmt.Errorf("face data subjects: %w", err)
	}
	return n, nil
}
