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

// Door templates travel too (docs/branches.md, "Door templates"): the box
// tells the network its whole current set of door templates of each
// customer holding an active network-scope consent here, whenever that
// set changes, and boxes that learn keep each branch's latest set.
//
// templates.origin is empty for the box's own templates and the sending
// branch for those received from the network, so that only the box's own
// door templates queue a change: a received set never travels again.
//
// network_outbox is rebuilt (SQLite cannot change a CHECK) to take the
// kinds 'door' and 'retract', with AUTOINCREMENT so that an id, and with
// it the hub's message id, is never reused after the queue emptied. The
// triggers that fill it are made again around it:
//
//   - network_door_added / network_door_removed: the box's own door
//     templates of a customer with an active network-scope consent
//     changed. Erase deletes templates before it ends the consents, so an
//     erasure queues a change too, whose set is then empty: the box's
//     copy in the hub is overwritten by nothing.
//   - network_door_consent: a new network-scope consent (given here or
//     received) makes the box send the door set it holds again, so that
//     a box replaying the hub's stream, where the door set may come
//     before the enrollment it hangs on, still ends up with it.
//   - network_retracted: a network-scope consent given here ended for
//     another reason than the customer's withdrawal here (a withdrawal
//     applied from the network, retention): the box overwrites its
//     enrollment event with a tombstone that erases nothing elsewhere.
var _ = register("network_door",
	`ALTER TABLE templates ADD COLUMN origin TEXT NOT NULL DEFAULT '';
	DROP TRIGGER network_enrolled;
	DROP TRIGGER network_ended;
	DROP TRIGGER network_withdrawn;
	CREATE TABLE network_outbox_v2 (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		customer_id TEXT NOT NULL,
		kind        TEXT NOT NULL CHECK (kind IN ('enroll', 'withdraw', 'retract', 'door')),
		at          TEXT NOT NULL
	);
	INSERT INTO network_outbox_v2 (id, customer_id, kind, at) SELECT id, customer_id, kind, at FROM network_outbox;
	DROP TABLE network_outbox;
	ALTER TABLE network_outbox_v2 RENAME TO network_outbox;
	CREATE TRIGGER network_enrolled AFTER INSERT ON consents
		WHEN NEW.scope = 'network' AND NEW.origin = ''
	BEGIN
		INSERT INTO network_outbox (customer_id, kind, at) VALUES (NEW.customer_id, 'enroll', NEW.granted_at);
	END;
	CREATE TRIGGER network_ended AFTER UPDATE OF withdrawn_at ON consents
		WHEN OLD.withdrawn_at IS NULL AND NEW.withdrawn_at IS NOT NULL
	BEGIN
		DELETE FROM network_outbox WHERE customer_id = NEW.customer_id AND kind = 'enroll';
	END;
	CREATE TRIGGER network_withdrawn AFTER UPDATE OF withdrawn_at ON consents
		WHEN OLD.withdrawn_at IS NULL AND NEW.withdrawn_at IS NOT NULL
			AND NEW.scope = 'network' AND NEW.withdrawn_reason = 'withdrawn'
	BEGIN
		INSERT INTO network_outbox (customer_id, kind, at) VALUES (NEW.customer_id, 'withdraw', NEW.withdrawn_at);
	END;
	CREATE TRIGGER network_retracted AFTER UPDATE OF withdrawn_at ON consents
		WHEN OLD.withdrawn_at IS NULL AND NEW.withdrawn_at IS NOT NULL
			AND NEW.scope = 'network' AND NEW.origin = '' AND COALESCE(NEW.withdrawn_reason, '') <> 'withdrawn'
	BEGIN
		INSERT INTO network_outbox (customer_id, kind, at) VALUES (NEW.customer_id, 'retract', NEW.withdrawn_at);
	END;
	CREATE TRIGGER network_door_added AFTER INSERT ON templates
		WHEN NEW.source = 'door' AND NEW.origin = ''
			AND EXISTS (SELECT 1 FROM consents WHERE customer_id = NEW.customer_id AND scope = 'network' AND withdrawn_at IS NULL)
	BEGIN
		INSERT INTO network_outbox (customer_id, kind, at)
			VALUES (NEW.customer_id, 'door', strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000000Z');
	END;
	CREATE TRIGGER network_door_removed AFTER DELETE ON templates
		WHEN OLD.source = 'door' AND OLD.origin = ''
			AND EXISTS (SELECT 1 FROM consents WHERE customer_id = OLD.customer_id AND scope = 'network' AND withdrawn_at IS NULL)
	BEGIN
		INSERT INTO network_outbox (customer_id, kind, at)
			VALUES (OLD.customer_id, 'door', strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000000Z');
	END;
	CREATE TRIGGER network_door_consent AFTER INSERT ON consents
		WHEN NEW.scope = 'network'
			AND EXISTS (SELECT 1 FROM templates WHERE customer_id = NEW.customer_id AND source = 'door' AND origin = '')
	BEGIN
		INSERT INTO network_outbox (customer_id, kind, at)
			VALUES (NEW.customer_id, 'door', strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000000Z');
	END;`,
)

// NetworkDoorSet is what this box tells the network of a customer's door
// templates: every door template it learned itself (empty origin) under a
// consent in force, while the customer holds an active network-scope
// consent here; an empty set otherwise (withdrawn, expired, marks removed
// them, learning turned off), which takes back what the box sent before.
func (d *DB) NetworkDoorSet(ctx context.Context, customerID string) (enroll.NetworkDoorSet, error) {
	s := enroll.NetworkDoorSet{CustomerID: customerID}
	rows, err := d.db.QueryContext(ctx, `SELECT t.model, t.embedding, t.size_px, t.sharpness, t.frontal, t.brightness,
			t.created_at, t.visit_id
		FROM templates t JOIN consents c ON c.id = t.consent_id
		WHERE t.customer_id = ?1 AND t.source = 'door' AND t.origin = '' AND c.withdrawn_at IS NULL
			AND EXISTS (SELECT 1 FROM consents n WHERE n.customer_id = ?1 AND n.scope = 'network' AND n.withdrawn_at IS NULL)
		ORDER BY t.id`, customerID)
	if err != nil {
		return s, fmt.Errorf("network door templates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		t := enroll.NetworkDoorTemplate{Template: enroll.Template{CustomerID: customerID, Source: enroll.SourceDoor, Group: enroll.DoorGroup}}
		var blob []byte
		var created string
		if err := rows.Scan(&t.Model, &blob, &t.Quality.SizePx, &t.Quality.Sharpness, &t.Quality.Frontal,
			&t.Quality.Brightness, &created, &t.VisitID); err != nil {
			return s, fmt.Errorf("network door templates: %w", err)
		}
		if err := d.openEmbedding(customerID, blob, &t.Embedding); err != nil {
			return s, fmt.Errorf("network door template: %w", err)
		}
		t.Created, _ = time.Parse(timeFormat, created)
		s.Templates = append(s.Templates, t)
	}
	return s, rows.Err()
}

// ApplyNetworkDoorSets stores, in order and in one transaction, door sets
// other branches sent: each replaces the door templates this box held from
// that branch of that customer (the latest word wins), stored sealed under
// the customer's latest active network-scope consent here. A customer who
// holds none here is skipped: their ids are returned (for the caller's
// Debug log). keep is how many door templates of a model a customer keeps
// at this box (match.door_templates): beyond it the oldest received ones
// go, never the box's own, which its own learning trims, so that the door
// centroid holds no more faces than the calibration measured. Applying a
// set twice changes nothing.
func (d *DB) ApplyNetworkDoorSets(ctx context.Context, sets []enroll.NetworkDoorSet, keep int) (skipped []string, err error) {
	for _, s := range sets {
		if err := s.Check(); err != nil {
			return nil, err
		}
	}
	if keep <= 0 {
		return nil, concierge.Errorf(concierge.EINVALID, "network door templates: keep must be positive")
	}
	err = d.tx(ctx, func(tx *sql.Tx) error {
		skipped = skipped[:0]
		key, err := d.sealingKey(ctx, tx)
		if err != nil {
			return err
		}
		// Prepared once for the batch, as for enrollments (a new box
		// catching up applies one set per customer and branch).
		var st [4]*sql.Stmt
		defer func() {
			for _, s := range st {
				if s != nil {
					s.Close()
				}
			}
		}()
		for i, q := range []string{
			`SELECT id FROM consents WHERE customer_id = ? AND scope = 'network' AND withdrawn_at IS NULL
				ORDER BY granted_at DESC, id DESC LIMIT 1`,
			`DELETE FROM templates WHERE customer_id = ? AND source = 'door' AND origin = ?`,
			`INSERT INTO templates
				(customer_id, consent_id, model, embedding, size_px, sharpness, frontal, brightness, created_at, source, visit_id, origin)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'door', ?, ?)`,
			// +model: by the customer's index, never the model's, which
			// holds every row of the box's model.
			`DELETE FROM templates WHERE id IN (
				SELECT id FROM templates WHERE customer_id = ?1 AND +model = ?2 AND source = 'door' AND origin <> ''
				ORDER BY created_at, id
				LIMIT max(0, (SELECT COUNT(*) FROM templates WHERE customer_id = ?1 AND +model = ?2 AND source = 'door') - ?3))`,
		} {
			if st[i], err = tx.PrepareContext(ctx, q); err != nil {
				return fmt.Errorf("network door templates: %w", err)
			}
		}
		consent, clear, insert, trim := st[0], st[1], st[2], st[3]
		for _, s := range sets {
			var consentID int64
			err := consent.QueryRowContext(ctx, s.CustomerID).Scan(&consentID)
			if errors.Is(err, sql.ErrNoRows) {
				skipped = append(skipped, s.CustomerID)
				continue
			}
			if err != nil {
				return fmt.Errorf("network door templates: %w", err)
			}
			if _, err := clear.ExecContext(ctx, s.CustomerID, s.Origin); err != nil {
				return fmt.Errorf("network door templates: %w", err)
			}
			models := map[string]bool{}
			for _, t := range s.Templates {
				blob, err := sealEmbedding(key, s.CustomerID, &t.Embedding)
				if err != nil {
					return fmt.Errorf("seal template: %w", err)
				}
				if _, err := insert.ExecContext(ctx, s.CustomerID, consentID, t.Model, blob, t.Quality.SizePx, t.Quality.Sharpness,
					t.Quality.Frontal, t.Quality.Brightness, t.Created.UTC().Format(timeFormat), t.VisitID, s.Origin); err != nil {
					return fmt.Errorf("network door template: %w", err)
				}
				models[t.Model] = true
			}
			for m := range models {
				if _, err := trim.ExecContext(ctx, s.CustomerID, m, keep); err != nil {
					return fmt.Errorf("network door templates: %w", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return skipped, nil
}
