package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"concierge"
	"concierge/enroll"
	"concierge/face"
)

var _ enroll.Store = (*DB)(nil)

var _ = register("enroll",
	`CREATE TABLE customers (
		id           TEXT PRIMARY KEY,
		display_name TEXT NOT NULL,
		created_at   TEXT NOT NULL
	);
	CREATE TABLE consents (
		id           INTEGER PRIMARY KEY,
		customer_id  TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
		reference    TEXT NOT NULL CHECK (reference <> ''),
		text_version TEXT NOT NULL,
		channel      TEXT NOT NULL,
		language     TEXT NOT NULL DEFAULT '',
		granted_at   TEXT NOT NULL,
		withdrawn_at TEXT
	);
	CREATE INDEX consents_customer ON consents(customer_id);
	CREATE TABLE templates (
		id          INTEGER PRIMARY KEY,
		customer_id TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
		consent_id  INTEGER NOT NULL REFERENCES consents(id) ON DELETE CASCADE,
		model       TEXT NOT NULL,
		embedding   BLOB NOT NULL CHECK (length(embedding) = 512),
		size_px     INTEGER NOT NULL,
		sharpness   REAL NOT NULL,
		frontal     REAL NOT NULL,
		brightness  REAL NOT NULL,
		created_at  TEXT NOT NULL
	);
	CREATE INDEX templates_customer ON templates(customer_id);
	CREATE INDEX templates_model ON templates(model);`,
	// v2, v3: templates sealed at rest (sqlite/keys.go).
	sealKeysSchema,
	goStep(sealTemplates),
	// v4: why a consent ended (withdrawn by the customer, or retention),
	// and when the customer was last recognised, which outlives the
	// visits' own purge and decides retention.
	`ALTER TABLE consents ADD COLUMN withdrawn_reason TEXT;
	ALTER TABLE customers ADD COLUMN last_seen TEXT;`,
	// v5: where a template's face came from (enroll.SourceEnrollment or
	// enroll.SourceDoor).
	`ALTER TABLE templates ADD COLUMN source TEXT NOT NULL DEFAULT 'enrollment';`,
	// v6: the visit (alert id) a door template was learned from, so that a
	// later "not this person" mark on it removes what it added.
	`ALTER TABLE templates ADD COLUMN visit_id TEXT NOT NULL DEFAULT '';
	CREATE INDEX templates_visit ON templates(visit_id) WHERE visit_id <> '';`,
)

// SaveEnrollment implements enroll.Store.
func (d *DB) SaveEnrollment(ctx context.Context, c enroll.Customer, consent enroll.Consent, ts []enroll.Template) ([]enroll.Template, error) {
	out := make([]enroll.Template, len(ts))
	err := d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO customers (id, display_name, created_at) VALUES (?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET display_name = excluded.display_name`,
			c.ID, c.DisplayName, c.Created.UTC().Format(timeFormat)); err != nil {
			return fmt.Errorf("save customer: %w", err)
		}
		scope := consent.Scope
		if scope == "" {
			scope = enroll.ScopeBranch
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO consents (customer_id, reference, text_version, channel, language, granted_at, scope)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			c.ID, consent.Reference, consent.TextVersion, consent.Channel, consent.Language, consent.GrantedAt.UTC().Format(timeFormat), scope)
		if err != nil {
			return fmt.Errorf("save consent: %w", err)
		}
		consentID, err := r.LastInsertId()
		if err != nil {
			return err
		}
		key, err := d.sealingKey(ctx, tx)
		if err != nil {
			return err
		}
		for i, t := range ts {
			blob, err := sealEmbedding(key, c.ID, &t.Embedding)
			if err != nil {
				return fmt.Errorf("seal template: %w", err)
			}
			if t.Source == "" {
				t.Source = enroll.SourceEnrollment
			}
			r, err := tx.ExecContext(ctx, `INSERT INTO templates
				(customer_id, consent_id, model, embedding, size_px, sharpness, frontal, brightness, created_at, source)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				c.ID, consentID, t.Model, blob, t.Quality.SizePx, t.Quality.Sharpness,
				t.Quality.Frontal, t.Quality.Brightness, t.Created.UTC().Format(timeFormat), t.Source)
			if err != nil {
				return fmt.Errorf("save template: %w", err)
			}
			t.ID, err = r.LastInsertId()
			if err != nil {
				return err
			}
			t.CustomerID, t.ConsentID = c.ID, consentID
			out[i] = t
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Templates implements enroll.Store.
func (d *DB) Templates(ctx context.Context, model string) ([]enroll.Template, error) {
	return d.templates(ctx, `t.model = ?`, model)
}

// CustomerTemplates returns the customer's templates of model under
// consents in force: what a confirmed visit's door templates are compared
// with (enroll.DoorPolicy.Learn).
func (d *DB) CustomerTemplates(ctx context.Context, customerID, model string) ([]enroll.Template, error) {
	// +t.model: SQLite would otherwise pick the index on model, which
	// holds every template of the box's model, over the customer's.
	return d.templates(ctx, `t.customer_id = ? AND +t.model = ?`, customerID, model)
}

func (d *DB) templates(ctx context.Context, where string, args ...any) ([]enroll.Template, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT t.id, t.customer_id, t.consent_id, t.model, t.embedding,
			t.size_px, t.sharpness, t.frontal, t.brightness, t.created_at, t.source
		FROM templates t JOIN consents c ON c.id = t.consent_id
		WHERE `+where+` AND c.withdrawn_at IS NULL ORDER BY t.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	defer rows.Close()
	var out []enroll.Template
	for rows.Next() {
		var t enroll.Template
		var blob []byte
		var created string
		if err := rows.Scan(&t.ID, &t.CustomerID, &t.ConsentID, &t.Model, &blob, &t.Quality.SizePx,
			&t.Quality.Sharpness, &t.Quality.Frontal, &t.Quality.Brightness, &created, &t.Source); err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		if err := d.openEmbedding(t.CustomerID, blob, &t.Embedding); err != nil {
			return nil, fmt.Errorf("template %d: %w", t.ID, err)
		}
		t.Created, _ = time.Parse(timeFormat, created)
		if t.Source == enroll.SourceDoor {
			t.Group = enroll.DoorGroup
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Customer implements enroll.Store.
func (d *DB) Customer(ctx context.Context, id string) (enroll.Customer, error) {
	var c enroll.Customer
	var created string
	err := d.db.QueryRowContext(ctx, `SELECT id, display_name, created_at FROM customers WHERE id = ?`, id).
		Scan(&c.ID, &c.DisplayName, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return c, concierge.Errorf(concierge.ENOTFOUND, "customer %s not found", id)
	}
	if err != nil {
		return c, fmt.Errorf("customer %s: %w", id, err)
	}
	c.Created, _ = time.Parse(timeFormat, created)
	return c, nil
}

// Consents implements enroll.Store.
func (d *DB) Consents(ctx context.Context, customerID string) ([]enroll.Consent, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, customer_id, reference, text_version, channel, language, granted_at, withdrawn_at,
			COALESCE(withdrawn_reason, ''), scope
		FROM consents WHERE customer_id = ? ORDER BY granted_at DESC, id DESC`, customerID)
	if err != nil {
		return nil, fmt.Errorf("consents %s: %w", customerID, err)
	}
	defer rows.Close()
	var out []enroll.Consent
	for rows.Next() {
		var c enroll.Consent
		var granted string
		var withdrawn sql.NullString
		if err := rows.Scan(&c.ID, &c.CustomerID, &c.Reference, &c.TextVersion, &c.Channel, &c.Language, &granted, &withdrawn, &c.WithdrawnReason, &c.Scope); err != nil {
			return nil, err
		}
		c.GrantedAt, _ = time.Parse(timeFormat, granted)
		if withdrawn.Valid {
			t, _ := time.Parse(timeFormat, withdrawn.String)
			c.WithdrawnAt = &t
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// encodeEmbedding lays out 128 little-endian float32s, the layout of the
// reference descriptor files, so exports compare byte for byte; the
// database stores them only sealed (sqlite/keys.go).
func encodeEmbedding(e *face.Embedding) []byte {
	b := make([]byte, 4*face.Dim)
	for i, v := range e {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func decodeEmbedding(b []byte, e *face.Embedding) error {
	if len(b) != 4*face.Dim {
		return fmt.Errorf("embedding has %d bytes, want %d", len(b), 4*face.Dim)
	}
	for i := range e {
		e[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return nil
}

// TemplatesVersion changes whenever templates are added or deleted or a
// consent is withdrawn, so a running daemon can notice enrollments made by
// another process (the CLI, a second kiosk service) and reload its gallery.
func (d *DB) TemplatesVersion(ctx context.Context) (string, error) {
	var n, maxID int64
	var withdrawn sql.NullString
	err := d.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM templates), (SELECT COALESCE(MAX(id), 0) FROM templates),
		(SELECT MAX(withdrawn_at) FROM consents)`).Scan(&n, &maxID, &withdrawn)
	if err != nil {
		return "", fmt.Errorf("templates version: %w", err)
	}
	return fmt.Sprintf("%d/%d/%s", n, maxID, withdrawn.String), nil
}
