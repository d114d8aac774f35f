package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"concierge"
	"concierge/enroll"
	"concierge/seal"
)

// The bank's network of branches (docs/branches.md): each consent has a
// scope, and a consent that came from another branch its origin. Triggers
// queue the box's own network-scope enrollments and its customers'
// withdrawals of them in network_outbox, in the transaction that made
// them, whichever process did (daemon, kiosk, CLI); the daemon publishes
// them to the hub and deletes them. network_position is how far the box
// has applied the hub's stream.
var _ = register("network",
	`ALTER TABLE consents ADD COLUMN scope TEXT NOT NULL DEFAULT 'branch' CHECK (scope IN ('branch', 'network'));
	ALTER TABLE consents ADD COLUMN origin TEXT NOT NULL DEFAULT '';
	CREATE TABLE network_outbox (
		id          INTEGER PRIMARY KEY,
		customer_id TEXT NOT NULL,
		kind        TEXT NOT NULL CHECK (kind IN ('enroll', 'withdraw')),
		at          TEXT NOT NULL
	);
	CREATE TABLE network_position (
		id  INTEGER PRIMARY KEY CHECK (id = 1),
		seq INTEGER NOT NULL
	);
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
	END;`,
)

// NetworkChanges returns up to limit changes for the network, oldest first.
func (d *DB) NetworkChanges(ctx context.Context, limit int) ([]enroll.NetworkChange, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, customer_id, kind, at FROM network_outbox ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("network changes: %w", err)
	}
	defer rows.Close()
	var out []enroll.NetworkChange
	for rows.Next() {
		var c enroll.NetworkChange
		var at string
		if err := rows.Scan(&c.ID, &c.CustomerID, &c.Kind, &at); err != nil {
			return nil, fmt.Errorf("network changes: %w", err)
		}
		c.At, _ = time.Parse(timeFormat, at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// FinishNetworkChange deletes a change the hub has stored.
func (d *DB) FinishNetworkChange(ctx context.Context, id int64) error {
	if _, err := d.db.ExecContext(ctx, `DELETE FROM network_outbox WHERE id = ?`, id); err != nil {
		return fmt.Errorf("finish network change: %w", err)
	}
	return nil
}

// NetworkEnrollment is what this box tells the network of a customer: the
// latest active network-scope consent given here and the enrollment
// templates made under this box's active network-scope consents. Door
// templates (learned from confirmed visits) are not part of it: they
// travel as the box's door set of the customer, on a subject of their own
// (NetworkDoorSet), so that a visit learned never displaces the
// enrollment. ENOTFOUND when there is none (withdrawn since, or never
// given here).
func (d *DB) NetworkEnrollment(ctx context.Context, customerID string) (enroll.NetworkEnrollment, error) {
	var e enroll.NetworkEnrollment
	c, err := d.Customer(ctx, customerID)
	if err != nil {
		return e, err
	}
	e.Customer = c
	var granted string
	err = d.db.QueryRowContext(ctx, `SELECT id, reference, text_version, channel, language, granted_at FROM consents
		WHERE customer_id = ? AND scope = 'network' AND origin = '' AND withdrawn_at IS NULL
		ORDER BY granted_at DESC, id DESC LIMIT 1`, customerID).
		Scan(&e.Consent.ID, &e.Consent.Reference, &e.Consent.TextVersion, &e.Consent.Channel, &e.Consent.Language, &granted)
	if errors.Is(err, sql.ErrNoRows) {
		return e, concierge.Errorf(concierge.ENOTFOUND, "customer %s has no network-scope consent here", customerID)
	}
	if err != nil {
		return e, fmt.Errorf("network consent: %w", err)
	}
	e.Consent.CustomerID, e.Consent.Scope = customerID, enroll.ScopeNetwork
	e.Consent.GrantedAt, _ = time.Parse(timeFormat, granted)
	rows, err := d.db.QueryContext(ctx, `SELECT t.model, t.embedding, t.size_px, t.sharpness, t.frontal, t.brightness, t.created_at
		FROM templates t JOIN consents c ON c.id = t.consent_id
		WHERE t.customer_id = ? AND c.scope = 'network' AND c.origin = '' AND c.withdrawn_at IS NULL
			AND t.source = 'enrollment' ORDER BY t.id`, customerID)
	if err != nil {
		return e, fmt.Errorf("network templates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		t := enroll.Template{CustomerID: customerID}
		var blob []byte
		var created string
		if err := rows.Scan(&t.Model, &blob, &t.Quality.SizePx, &t.Quality.Sharpness, &t.Quality.Frontal, &t.Quality.Brightness, &created); err != nil {
			return e, fmt.Errorf("network templates: %w", err)
		}
		if err := d.openEmbedding(customerID, blob, &t.Embedding); err != nil {
			return e, fmt.Errorf("network template: %w", err)
		}
		t.Created, _ = time.Parse(timeFormat, created)
		e.Templates = append(e.Templates, t)
	}
	return e, rows.Err()
}

// ApplyNetworkEnrollment applies one enrollment from branch origin
// (ApplyNetworkEnrollments).
func (d *DB) ApplyNetworkEnrollment(ctx context.Context, origin string, e enroll.NetworkEnrollment) error {
	e.Origin = origin
	return d.ApplyNetworkEnrollments(ctx, []enroll.NetworkEnrollment{e})
}

// ApplyNetworkEnrollments stores, in order and in one transaction, what
// other branches told the network of customers: each replaces whatever
// active consent and enrollment templates this box held from the network
// about that customer (the latest word wins); the customer's own consents
// given at this box, and the records of consents that ended here, stay.
// Door templates held under the replaced consent (learned here, or
// received from other branches) are kept under the new one: a
// re-enrollment elsewhere is no reason to forget what confirmed visits
// taught, and a mark or a withdrawal still removes them. Applying them
// twice changes nothing. One transaction for many is what lets a new
// box catch up with a large network quickly.
func (d *DB) ApplyNetworkEnrollments(ctx context.Context, es []enroll.NetworkEnrollment) error {
	for _, e := range es {
		if err := e.Check(); err != nil {
			return err
		}
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		key, err := d.sealingKey(ctx, tx)
		if err != nil {
			return err
		}
		st, err := prepareNetworkStmts(ctx, tx)
		if err != nil {
			return err
		}
		defer st.close()
		for _, e := range es {
			if err := applyNetworkEnrollment(ctx, tx, st, key, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// networkStmts are the statements applying an enrollment runs for every
// customer, prepared once per batch: compiling them (and the triggers on
// their tables) each time was a third of a new box's catch-up.
type networkStmts struct {
	customer, held, consent, template *sql.Stmt
}

func prepareNetworkStmts(ctx context.Context, tx *sql.Tx) (*networkStmts, error) {
	st := &networkStmts{}
	for _, p := range []struct {
		to *(*sql.Stmt)
		q  string
	}{
		{&st.customer, `INSERT INTO customers (id, display_name, created_at) VALUES (?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET display_name = excluded.display_name`},
		{&st.held, `SELECT COUNT(*) FROM consents WHERE customer_id = ? AND origin <> '' AND withdrawn_at IS NULL`},
		{&st.consent, `INSERT INTO consents (customer_id, reference, text_version, channel, language, granted_at, scope, origin)
			VALUES (?, ?, ?, ?, ?, ?, 'network', ?)`},
		{&st.template, `INSERT INTO templates
			(customer_id, consent_id, model, embedding, size_px, sharpness, frontal, brightness, created_at, source, origin)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
	} {
		s, err := tx.PrepareContext(ctx, p.q)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("network enrollment: %w", err)
		}
		*p.to = s
	}
	return st, nil
}

func (st *networkStmts) close() {
	for _, s := range []*sql.Stmt{st.customer, st.held, st.consent, st.template} {
		if s != nil {
			s.Close()
		}
	}
}

func applyNetworkEnrollment(ctx context.Context, tx *sql.Tx, st *networkStmts, key *seal.Key, e enroll.NetworkEnrollment) error {
	id := e.Customer.ID
	if _, err := st.customer.ExecContext(ctx, id, e.Customer.DisplayName, e.Customer.Created.UTC().Format(timeFormat)); err != nil {
		return fmt.Errorf("network customer: %w", err)
	}
	// A new box catching up meets most customers for the first time:
	// nothing to replace then.
	var held int
	if err := st.held.QueryRowContext(ctx, id).Scan(&held); err != nil {
		return fmt.Errorf("network consents: %w", err)
	}
	c := e.Consent
	r, err := st.consent.ExecContext(ctx, id, c.Reference, c.TextVersion, c.Channel, c.Language, c.GrantedAt.UTC().Format(timeFormat), e.Origin)
	if err != nil {
		return fmt.Errorf("network consent: %w", err)
	}
	consentID, err := r.LastInsertId()
	if err != nil {
		return err
	}
	if held > 0 {
		// By customer first: templates have no index on their consent.
		const replaced = `(SELECT id FROM consents WHERE customer_id = ?1 AND origin <> '' AND withdrawn_at IS NULL AND id <> ?2)`
		if _, err := tx.ExecContext(ctx, `UPDATE templates SET consent_id = ?2 WHERE customer_id = ?1 AND source = 'door'
			AND consent_id IN `+replaced, id, consentID); err != nil {
			return fmt.Errorf("network door templates: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM templates WHERE customer_id = ?1 AND consent_id IN `+replaced, id, consentID); err != nil {
			return fmt.Errorf("network templates: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM consents WHERE id IN `+replaced, id, consentID); err != nil {
			return fmt.Errorf("network consents: %w", err)
		}
	}
	for _, t := range e.Templates {
		blob, err := sealEmbedding(key, id, &t.Embedding)
		if err != nil {
			return fmt.Errorf("seal template: %w", err)
		}
		if t.Source == "" {
			t.Source = enroll.SourceEnrollment
		}
		if _, err := st.template.ExecContext(ctx,
			id, consentID, t.Model, blob, t.Quality.SizePx, t.Quality.Sharpness,
			t.Quality.Frontal, t.Quality.Brightness, t.Created.UTC().Format(timeFormat), t.Source, e.Origin); err != nil {
			return fmt.Errorf("network template: %w", err)
		}
	}
	return nil
}

// ApplyNetworkWithdrawal carries out at this box a withdrawal made at
// another branch, through Erase, so the alert stream and the screens are
// purged as for a withdrawal here. A customer this box holds nothing
// active of is left alone.
func (d *DB) ApplyNetworkWithdrawal(ctx context.Context, customerID string, at time.Time) error {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM templates WHERE customer_id = ?1)
		+ (SELECT COUNT(*) FROM consents WHERE customer_id = ?1 AND withdrawn_at IS NULL)`, customerID).Scan(&n); err != nil {
		return fmt.Errorf("network withdrawal: %w", err)
	}
	if n == 0 {
		return nil
	}
	if _, err := d.Erase(ctx, customerID, at, enroll.WithdrawnInNetwork); err != nil && concierge.ErrorCode(err) != concierge.ENOTFOUND {
		return err
	}
	return nil
}

// DropUnsharedWithdrawals deletes the queued withdrawals and retractions
// of a box that has never read the hub's stream: their customers never
// left the box, so no other branch needs to hear of them, and the queue
// row would be the last copy of the customer id. Of its queued door
// changes it keeps one per customer still holding a network consent (the
// set is read when it is sent), so that a box learning without a hub does
// not grow its queue visit by visit. The daemon calls it when it runs
// without hq.url.
func (d *DB) DropUnsharedWithdrawals(ctx context.Context) (int, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM network_outbox WHERE kind IN ('withdraw', 'retract')
				AND NOT EXISTS (SELECT 1 FROM network_position)`,
			`DELETE FROM network_outbox WHERE kind = 'door'
				AND id NOT IN (SELECT MAX(id) FROM network_outbox WHERE kind = 'door' GROUP BY customer_id)`,
			`DELETE FROM network_outbox WHERE kind = 'door' AND NOT EXISTS (SELECT 1 FROM network_position)
				AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.customer_id = network_outbox.customer_id
					AND c.scope = 'network' AND c.withdrawn_at IS NULL)`,
		} {
			r, err := tx.ExecContext(ctx, q)
			if err != nil {
				return err
			}
			m, err := r.RowsAffected()
			if err != nil {
				return err
			}
			n += m
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("drop unshared withdrawals: %w", err)
	}
	return int(n), nil
}

// NetworkPosition is the hub stream's sequence this box has applied up
// to; 0 before the first.
func (d *DB) NetworkPosition(ctx context.Context) (uint64, error) {
	var seq uint64
	err := d.db.QueryRowContext(ctx, `SELECT seq FROM network_position WHERE id = 1`).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("network position: %w", err)
	}
	return seq, nil
}

// SetNetworkPosition records that the stream is applied up to seq.
func (d *DB) SetNetworkPosition(ctx context.Context, seq uint64) error {
	if _, err := d.db.ExecContext(ctx, `INSERT INTO network_position (id, seq) VALUES (1, ?)
		ON CONFLICT(id) DO UPDATE SET seq = excluded.seq`, seq); err != nil {
		return fmt.Errorf("network position: %w", err)
	}
	return nil
}
