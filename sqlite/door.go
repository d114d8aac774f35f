package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"concierge"
	"concierge/enroll"
)

// SaveDoorTemplates stores what a visit staff confirmed taught the
// gallery (enroll.DoorPolicy.Learn): add, sealed, with source door and the
// visit's id, under the customer's consent in force at this box, and
// deletes the customer's door templates in drop (the oldest, replaced), in
// one transaction. The consent in force must have been given on a text
// that covers door templates (covers, enroll.DoorConsents): it is checked
// in the transaction that stores under it, so a re-consent or withdrawal
// racing the learner cannot slip a template under the wrong text.
// ENOTFOUND when the customer holds no active consent; ECONFLICT when the
// visit was marked "not this person" (such a visit never teaches
// anything) and, wrapping enroll.ErrConsentNotCovered, when the consent's
// text does not cover learning; then nothing is stored or dropped. It
// returns the stored templates with their ids.
func (d *DB) SaveDoorTemplates(ctx context.Context, covers enroll.DoorConsents, customerID, visitID string, add []enroll.Template, drop []int64) ([]enroll.Template, error) {
	if customerID == "" || visitID == "" {
		return nil, concierge.Errorf(concierge.EINVALID, "door templates: customer and visit are required")
	}
	out := make([]enroll.Template, len(add))
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var marked int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM false_matches WHERE alert_id = ?`, visitID).Scan(&marked); err != nil {
			return err
		}
		if marked > 0 {
			return concierge.Errorf(concierge.ECONFLICT, "visit %s was marked \"not this person\"", visitID)
		}
		var consentID int64
		var textVersion string
		err := tx.QueryRowContext(ctx, `SELECT id, text_version FROM consents WHERE customer_id = ? AND withdrawn_at IS NULL
			ORDER BY granted_at DESC, id DESC LIMIT 1`, customerID).Scan(&consentID, &textVersion)
		if errors.Is(err, sql.ErrNoRows) {
			// No customer id in the message: the learner logs it at Info.
			return concierge.Errorf(concierge.ENOTFOUND, "the customer has no consent in force")
		}
		if err != nil {
			return err
		}
		if err := covers.Check(textVersion); err != nil {
			return err
		}
		for _, id := range drop {
			if _, err := tx.ExecContext(ctx, `DELETE FROM templates WHERE id = ? AND customer_id = ? AND source = 'door'`, id, customerID); err != nil {
				return fmt.Errorf("drop door template: %w", err)
			}
		}
		key, err := d.sealingKey(ctx, tx)
		if err != nil {
			return err
		}
		for i, t := range add {
			blob, err := sealEmbedding(key, customerID, &t.Embedding)
			if err != nil {
				return fmt.Errorf("seal template: %w", err)
			}
			r, err := tx.ExecContext(ctx, `INSERT INTO templates
				(customer_id, consent_id, model, embedding, size_px, sharpness, frontal, brightness, created_at, source, visit_id)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'door', ?)`,
				customerID, consentID, t.Model, blob, t.Quality.SizePx, t.Quality.Sharpness,
				t.Quality.Frontal, t.Quality.Brightness, t.Created.UTC().Format(timeFormat), visitID)
			if err != nil {
				return fmt.Errorf("save door template: %w", err)
			}
			if t.ID, err = r.LastInsertId(); err != nil {
				return err
			}
			t.CustomerID, t.ConsentID, t.Source, t.Group = customerID, consentID, enroll.SourceDoor, enroll.DoorGroup
			out[i] = t
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("door templates of visit %s: %w", visitID, err)
	}
	return out, nil
}

// VisitTemplates is how many door templates the visit added that are still
// stored.
func (d *DB) VisitTemplates(ctx context.Context, visitID string) (int, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM templates WHERE visit_id = ? AND source = 'door'`, visitID).Scan(&n); err != nil {
		return 0, fmt.Errorf("visit templates: %w", err)
	}
	return n, nil
}

// DropDoorTemplates deletes every door template: a daemon that no longer
// learns (match.door_templates 0) must not score rows its calibration no
// longer counts. It returns how many there were.
func (d *DB) DropDoorTemplates(ctx context.Context) (int64, error) {
	r, err := d.db.ExecContext(ctx, `DELETE FROM templates WHERE source = 'door'`)
	if err != nil {
		return 0, fmt.Errorf("drop door templates: %w", err)
	}
	return r.RowsAffected()
}
