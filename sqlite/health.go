package sqlite

import (
	"context"
	"database/sql"

	"concierge"
)

// health has one row, rewritten by every ProbeWrite: a write that touches
// the file, its WAL and its directory, and nothing anyone reads.
var _ = register("health",
	`CREATE TABLE health (
		id        INTEGER PRIMARY KEY CHECK (id = 1),
		probed_at TEXT NOT NULL
	);`,
)

// ProbeWrite proves the database takes writes now by committing a
// one-row update in a transaction. The daemon runs it before it starts,
// so a read-only file is a refusal to start rather than arrivals failing
// one by one, and then periodically for its health endpoint. The error
// is EUNAVAILABLE: the file, the disk or its permissions, not the caller,
// are at fault.
func (d *DB) ProbeWrite(ctx context.Context) error {
	err := d.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO health (id, probed_at) VALUES (1, ?)
			ON CONFLICT(id) DO UPDATE SET probed_at = excluded.probed_at`, d.now().Format(timeFormat))
		return err
	})
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "database %s is not writable: %v", d.path, err)
	}
	return nil
}

// CheckWritable opens the database at path, probes a write and closes it:
// the daemon's check before it starts. A file that cannot even be opened
// read-write (its directory refuses the WAL, say) fails here too, with
// the same EUNAVAILABLE error naming the file.
func CheckWritable(ctx context.Context, path string) error {
	d, err := Open(ctx, path)
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "database %s is not writable: %v", path, err)
	}
	defer d.Close()
	return d.ProbeWrite(ctx)
}

// defaultMaxIdle is database/sql's own default number of idle
// connections, which Open leaves as it is.
const defaultMaxIdle = 2

// ResetConnections closes the pool's idle connections so that the next
// ones open the file afresh. A connection SQLite opened while the file
// could not be written is read-only for the rest of its life, so without
// this a database that became writable again would keep failing some
// writes, the ones that happen to get such a connection. Connections in
// use at the moment are kept; the daemon calls this on the first write
// probes that pass after a failure.
func (d *DB) ResetConnections() {
	d.db.SetMaxIdleConns(0)
	d.db.SetMaxIdleConns(defaultMaxIdle)
}
