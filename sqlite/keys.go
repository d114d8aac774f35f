package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"concierge"
	"concierge/face"
	"concierge/seal"
)

// Templates are stored sealed (package seal) under the keyring's keys,
// which never enter the database. What the database keeps of each key is a
// check value: a known constant sealed under it, so that opening with a
// wrong or missing key is refused at once instead of matching faces
// against garbage. The key marked current seals new templates; every
// process reads the mark inside its write transaction, so a key rotation
// by another process is followed at once. The table is the enroll
// component's (sqlite/enroll.go), since its templates need it.
const sealKeysSchema = `CREATE TABLE seal_keys (
		key_id      INTEGER PRIMARY KEY CHECK (key_id > 0),
		check_value BLOB NOT NULL,
		current     INTEGER NOT NULL DEFAULT 0 CHECK (current IN (0, 1)),
		added_at    TEXT NOT NULL
	);
	CREATE UNIQUE INDEX seal_keys_one_current ON seal_keys(current) WHERE current = 1;`

var (
	checkAAD       = []byte("concierge/key-check/v1")
	checkPlaintext = []byte("concierge template key check")
)

// templateAAD binds a template blob to its customer: a blob copied onto
// another customer's row does not open.
func templateAAD(customerID string) []byte {
	return []byte("concierge/template/v1\x00" + customerID)
}

// Keyring is the template keyring the database was opened with.
func (d *DB) Keyring() *seal.Keyring { return d.keys }

// loadKeys sets d.keys from the options, else from the key sources. A new
// key file is made only while the database holds no sealed template.
func (d *DB) loadKeys(ctx context.Context, o options) error {
	if o.keys != nil {
		d.keys = o.keys
		return nil
	}
	if d.path == ":memory:" && o.source == nil {
		// Nothing outlives the connection, so neither need the key.
		k, err := seal.GenerateKey()
		if err != nil {
			return err
		}
		d.keys, err = seal.NewKeyring(k)
		return err
	}
	src := seal.DefaultSource(DefaultKeyFile(d.path))
	if o.source != nil {
		src = *o.source
	}
	sealed, err := d.holdsSealKeys(ctx)
	if err != nil {
		return err
	}
	kr, err := src.Load(!sealed)
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "template key: %v (the database holds sealed face templates that only their key opens)", err)
	}
	d.keys = kr
	return nil
}

// holdsSealKeys reports, before migrations run, whether the database
// holds templates sealed under some key: only then may no new key be made.
func (d *DB) holdsSealKeys(ctx context.Context) (bool, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'seal_keys'`).Scan(&n); err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	if n == 0 {
		return false, nil // plain templates, if any, are sealed by the migration
	}
	if err := d.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM seal_keys) AND EXISTS (SELECT 1 FROM templates)`).Scan(&n); err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	return n == 1, nil
}

type keyRow struct {
	check   []byte
	current bool
}

func keyRows(ctx context.Context, tx *sql.Tx) (map[seal.KeyID]keyRow, error) {
	rows, err := tx.QueryContext(ctx, `SELECT key_id, check_value, current FROM seal_keys`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[seal.KeyID]keyRow{}
	for rows.Next() {
		var id int64
		var r keyRow
		if err := rows.Scan(&id, &r.check, &r.current); err != nil {
			return nil, err
		}
		out[seal.KeyID(id)] = r
	}
	return out, rows.Err()
}

// usedKeys counts templates per key id.
func usedKeys(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (map[seal.KeyID]int, error) {
	rows, err := q.QueryContext(ctx, `SELECT substr(embedding, 2, 4), COUNT(*) FROM templates GROUP BY 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[seal.KeyID]int{}
	for rows.Next() {
		var b []byte
		var n int
		if err := rows.Scan(&b, &n); err != nil {
			return nil, err
		}
		if len(b) != 4 {
			return nil, fmt.Errorf("a template is not a sealed blob")
		}
		out[seal.KeyID(binary.BigEndian.Uint32(b))] = n
	}
	return out, rows.Err()
}

func keyIDBlob(id seal.KeyID) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(id))
	return b
}

// addKey records k's check value; current makes it the sealing key.
func (d *DB) addKey(ctx context.Context, tx *sql.Tx, k *seal.Key, current bool) error {
	check, err := k.Seal(checkPlaintext, checkAAD)
	if err != nil {
		return err
	}
	if current {
		if _, err := tx.ExecContext(ctx, `UPDATE seal_keys SET current = 0 WHERE current = 1`); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO seal_keys (key_id, check_value, current, added_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(key_id) DO UPDATE SET current = excluded.current`,
		int64(k.ID()), check, current, d.now().Format(timeFormat))
	return err
}

func verifyKey(k *seal.Key, check []byte) error {
	pt, err := k.Open(check, checkAAD)
	if err != nil || string(pt) != string(checkPlaintext) {
		return concierge.Errorf(concierge.EUNAVAILABLE, "template key %s does not match the database's check value: wrong key", k.ID())
	}
	return nil
}

// missingKey is the error for a database whose templates need a key the
// keyring lacks.
func (d *DB) missingKey(id seal.KeyID) error {
	return concierge.Errorf(concierge.EUNAVAILABLE,
		"wrong or missing template key: the database's face templates are sealed with key %s, which the keys from %s do not include "+
			"(restore the key file, or set %s to the right key; a new key cannot open them)", id, d.keys.Origin(), seal.EnvVar)
}

// checkKeys compares the keyring with the database's check values: every
// key the database needs must be there and match. A database without
// templates or check values takes the keyring's current key.
func (d *DB) checkKeys(ctx context.Context) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		rows, err := keyRows(ctx, tx)
		if err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		used, err := usedKeys(ctx, tx)
		if err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		have := map[seal.KeyID]*seal.Key{}
		for _, k := range d.keys.Keys() {
			have[k.ID()] = k
		}
		var current seal.KeyID
		for id, r := range rows {
			if r.current {
				current = id
			}
		}
		if len(used) == 0 && (current == 0 || have[current] == nil) {
			// Nothing sealed yet: the keyring decides.
			if _, err := tx.ExecContext(ctx, `DELETE FROM seal_keys`); err != nil {
				return err
			}
			return d.addKey(ctx, tx, d.keys.Current(), true)
		}
		if have[current] == nil {
			return d.missingKey(current)
		}
		for id := range used {
			if have[id] == nil {
				return d.missingKey(id)
			}
			if _, ok := rows[id]; !ok {
				return concierge.Errorf(concierge.EUNAVAILABLE, "templates are sealed with key %s, which has no check value in the database", id)
			}
		}
		for id, r := range rows {
			if k := have[id]; k != nil {
				if err := verifyKey(k, r.check); err != nil {
					return err
				}
			}
		}
		// A key in the keyring the database has not seen (a rotation that
		// stopped after writing the key file) gets a check value too.
		for id, k := range have {
			if _, ok := rows[id]; !ok {
				if err := d.addKey(ctx, tx, k, false); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// sealingKey is the database's current key, read in the caller's
// transaction; a key the keyring lacks makes it re-read its source.
func (d *DB) sealingKey(ctx context.Context, tx *sql.Tx) (*seal.Key, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT key_id FROM seal_keys WHERE current = 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		k := d.keys.Current()
		return k, d.addKey(ctx, tx, k, true)
	}
	if err != nil {
		return nil, err
	}
	k, err := d.keys.Key(seal.KeyID(id))
	if err != nil {
		return nil, d.missingKey(seal.KeyID(id))
	}
	return k, nil
}

func sealEmbedding(k *seal.Key, customerID string, e *face.Embedding) ([]byte, error) {
	return k.Seal(encodeEmbedding(e), templateAAD(customerID))
}

// openEmbedding decodes a stored template; a plain vector is refused.
func (d *DB) openEmbedding(customerID string, blob []byte, e *face.Embedding) error {
	pt, err := d.keys.Open(blob, templateAAD(customerID))
	if errors.Is(err, seal.ErrUnknownKey) {
		id, _ := seal.BlobKeyID(blob)
		return d.missingKey(id)
	}
	if err != nil {
		return err
	}
	return decodeEmbedding(pt, e)
}

// sealTemplates is the one-time migration to sealed templates: the table
// is rebuilt without the plain vector's length check, with one that only a
// sealed blob passes, and every plain row is sealed on the way.
func sealTemplates(ctx context.Context, tx *sql.Tx, d *DB) error {
	if _, err := tx.ExecContext(ctx, `CREATE TABLE templates_sealed (
		id          INTEGER PRIMARY KEY,
		customer_id TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
		consent_id  INTEGER NOT NULL REFERENCES consents(id) ON DELETE CASCADE,
		model       TEXT NOT NULL,
		embedding   BLOB NOT NULL CHECK (length(embedding) = 545 AND substr(embedding, 1, 1) = x'01'),
		size_px     INTEGER NOT NULL,
		sharpness   REAL NOT NULL,
		frontal     REAL NOT NULL,
		brightness  REAL NOT NULL,
		created_at  TEXT NOT NULL
	)`); err != nil {
		return err
	}
	key, err := d.sealingKey(ctx, tx)
	if err != nil {
		return err
	}
	type row struct {
		id, consent          int64
		customer, model, at  string
		blob                 []byte
		size                 int
		sharp, front, bright float64
	}
	var last int64
	for {
		rows, err := tx.QueryContext(ctx, `SELECT id, customer_id, consent_id, model, embedding, size_px, sharpness, frontal, brightness, created_at
			FROM templates WHERE id > ? ORDER BY id LIMIT 500`, last)
		if err != nil {
			return err
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.customer, &r.consent, &r.model, &r.blob, &r.size, &r.sharp, &r.front, &r.bright, &r.at); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		for _, r := range batch {
			var e face.Embedding
			if err := decodeEmbedding(r.blob, &e); err != nil {
				return fmt.Errorf("template %d: %w", r.id, err)
			}
			sealed, err := sealEmbedding(key, r.customer, &e)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO templates_sealed
				(id, customer_id, consent_id, model, embedding, size_px, sharpness, frontal, brightness, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.id, r.customer, r.consent, r.model, sealed, r.size, r.sharp, r.front, r.bright, r.at); err != nil {
				return fmt.Errorf("template %d: %w", r.id, err)
			}
			last = r.id
		}
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE templates;
		ALTER TABLE templates_sealed RENAME TO templates;
		CREATE INDEX templates_customer ON templates(customer_id);
		CREATE INDEX templates_model ON templates(model);`)
	return err
}

// KeyUse is one template key as the database sees it.
type KeyUse struct {
	ID        seal.KeyID `json:"id"`
	Current   bool       `json:"current"`
	Templates int        `json:"templates"`
	// InKeyring: the keys this process loaded include it.
	InKeyring bool `json:"in_keyring"`
}

// KeyStatus lists the keys the database knows or uses, current first.
func (d *DB) KeyStatus(ctx context.Context) ([]KeyUse, error) {
	var out []KeyUse
	err := d.tx(ctx, func(tx *sql.Tx) error {
		rows, err := keyRows(ctx, tx)
		if err != nil {
			return err
		}
		used, err := usedKeys(ctx, tx)
		if err != nil {
			return err
		}
		ids := map[seal.KeyID]bool{}
		for id := range rows {
			ids[id] = true
		}
		for id := range used {
			ids[id] = true
		}
		for id := range ids {
			_, err := d.keys.Key(id)
			u := KeyUse{ID: id, Current: rows[id].current, Templates: used[id], InKeyring: err == nil}
			if u.Current {
				out = append([]KeyUse{u}, out...)
			} else {
				out = append(out, u)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("key status: %w", err)
	}
	return out, nil
}

// UseKey makes the keyring's key id the one that seals new templates. The
// key must be in the keyring (write it to the key file first, so that
// other processes find it when they meet it).
func (d *DB) UseKey(ctx context.Context, id seal.KeyID) error {
	k, err := d.keys.Key(id)
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "use key %s: %v", id, err)
	}
	if err := d.tx(ctx, func(tx *sql.Tx) error { return d.addKey(ctx, tx, k, true) }); err != nil {
		return fmt.Errorf("use key %s: %w", id, err)
	}
	return nil
}

// Reseal re-encrypts up to batch templates sealed under a key other than
// the current one, in one short transaction, and returns how many; call it
// until it returns 0. Small transactions let a running daemon write
// between them.
func (d *DB) Reseal(ctx context.Context, batch int) (int, error) {
	if batch <= 0 {
		batch = 100
	}
	n := 0
	err := d.tx(ctx, func(tx *sql.Tx) error {
		key, err := d.sealingKey(ctx, tx)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, customer_id, embedding FROM templates
			WHERE substr(embedding, 2, 4) <> ? ORDER BY id LIMIT ?`, keyIDBlob(key.ID()), batch)
		if err != nil {
			return err
		}
		type row struct {
			id       int64
			customer string
			blob     []byte
		}
		var todo []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.customer, &r.blob); err != nil {
				rows.Close()
				return err
			}
			todo = append(todo, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range todo {
			var e face.Embedding
			if err := d.openEmbedding(r.customer, r.blob, &e); err != nil {
				return fmt.Errorf("template %d: %w", r.id, err)
			}
			sealed, err := sealEmbedding(key, r.customer, &e)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE templates SET embedding = ? WHERE id = ?`, sealed, r.id); err != nil {
				return fmt.Errorf("template %d: %w", r.id, err)
			}
		}
		n = len(todo)
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("reseal: %w", err)
	}
	return n, nil
}

// RetireKey forgets a key's check value once no template is sealed with
// it; ECONFLICT while some are, or while it is current. The caller then
// removes it from the key file.
func (d *DB) RetireKey(ctx context.Context, id seal.KeyID) error {
	err := d.tx(ctx, func(tx *sql.Tx) error {
		var current bool
		err := tx.QueryRowContext(ctx, `SELECT current FROM seal_keys WHERE key_id = ?`, int64(id)).Scan(&current)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if current {
			return concierge.Errorf(concierge.ECONFLICT, "key %s is the current key", id)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM templates WHERE substr(embedding, 2, 4) = ?`, keyIDBlob(id)).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return concierge.Errorf(concierge.ECONFLICT, "key %s still seals %d templates", id, n)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM seal_keys WHERE key_id = ?`, int64(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("retire key %s: %w", id, err)
	}
	return d.checkpoint(context.WithoutCancel(ctx))
}

// checkpoint moves the WAL into the database file and truncates it, so
// that pages overwritten by secure_delete leave no older copy in the WAL.
// A reader holding an old snapshot can stop it; it is retried briefly.
func (d *DB) checkpoint(ctx context.Context) error {
	var busy, logFrames, done int
	for attempt := 0; attempt < 20; attempt++ {
		if err := d.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeAfter(attempt):
		}
	}
	return concierge.Errorf(concierge.EUNAVAILABLE, "checkpoint: readers kept the WAL busy; the erased data is deleted but older pages stay in %s-wal until the next checkpoint", d.path)
}

func timeAfter(attempt int) <-chan time.Time {
	return time.After(time.Duration(attempt+1) * 10 * time.Millisecond)
}
