package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"concierge/alert"
)

var _ alert.Outbox = (*DB)(nil)

// The alert outbox holds NATS messages between Notify and JetStream's
// acknowledgement. seq is the publish order; AUTOINCREMENT keeps a purged
// seq from ever being reused, so order holds across purges. msg_id is
// unique so that notifying the same arrival twice queues it once.
var _ = register("outbox",
	`CREATE TABLE alert_outbox (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		msg_id     TEXT NOT NULL UNIQUE CHECK (msg_id <> ''),
		subject    TEXT NOT NULL CHECK (subject <> ''),
		payload    BLOB NOT NULL,
		created_at TEXT NOT NULL,
		sent_at    TEXT
	);
	CREATE INDEX alert_outbox_pending ON alert_outbox(seq) WHERE sent_at IS NULL;
	CREATE INDEX alert_outbox_sent ON alert_outbox(sent_at) WHERE sent_at IS NOT NULL;`,
)

// EnqueueOutbox implements alert.Outbox: all of msgs are stored, in order,
// or none is. A message whose id is already queued or sent is skipped.
func (d *DB) EnqueueOutbox(ctx context.Context, msgs []alert.OutboxMessage) error {
	err := d.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO alert_outbox (msg_id, subject, payload, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT(msg_id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, m := range msgs {
			created := m.Created
			if created.IsZero() {
				created = d.now()
			}
			if _, err := stmt.ExecContext(ctx, m.MsgID, m.Subject, m.Data, created.UTC().Format(timeFormat)); err != nil {
				return fmt.Errorf("%s: %w", m.MsgID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("enqueue alerts: %w", err)
	}
	return nil
}

// PendingOutbox implements alert.Outbox: unsent messages, oldest first.
func (d *DB) PendingOutbox(ctx context.Context, limit int) ([]alert.OutboxMessage, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT seq, msg_id, subject, payload, created_at
		FROM alert_outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending alerts: %w", err)
	}
	defer rows.Close()
	var out []alert.OutboxMessage
	for rows.Next() {
		var m alert.OutboxMessage
		var created string
		if err := rows.Scan(&m.Seq, &m.MsgID, &m.Subject, &m.Data, &created); err != nil {
			return nil, fmt.Errorf("pending alerts: %w", err)
		}
		if m.Created, err = time.Parse(timeFormat, created); err != nil {
			return nil, fmt.Errorf("pending alerts: %s: %w", m.MsgID, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending alerts: %w", err)
	}
	return out, nil
}

// MarkOutboxSent implements alert.Outbox. Marking a message twice keeps the
// first time.
func (d *DB) MarkOutboxSent(ctx context.Context, seqs ...int64) error {
	if len(seqs) == 0 {
		return nil
	}
	args := make([]any, 0, len(seqs)+1)
	args = append(args, d.now().Format(timeFormat))
	for _, s := range seqs {
		args = append(args, s)
	}
	q := `UPDATE alert_outbox SET sent_at = ? WHERE sent_at IS NULL AND seq IN (?` +
		strings.Repeat(", ?", len(seqs)-1) + `)`
	if _, err := d.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("mark alerts sent: %w", err)
	}
	return nil
}

// PurgeOutbox implements alert.Outbox: it deletes messages sent before the
// given time and returns how many. Unsent messages stay whatever their age:
// only delivery removes them.
func (d *DB) PurgeOutbox(ctx context.Context, before time.Time) (int64, error) {
	r, err := d.db.ExecContext(ctx, `DELETE FROM alert_outbox WHERE sent_at IS NOT NULL AND sent_at < ?`,
		before.UTC().Format(timeFormat))
	if err != nil {
		return 0, fmt.Errorf("purge alerts: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge alerts: %w", err)
	}
	return n, nil
}
