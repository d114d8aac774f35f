// Package sqlite stores Concierge's data (customers, consents, templates,
// tier profiles, visits, the alert outbox) in one SQLite file through the
// pure-Go modernc driver. Each store component owns its own versioned
// migrations, applied in one transaction per step when the database opens.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// migration is one schema step of a component; steps run in slice order and
// are never edited once shipped, only appended.
type migration struct {
	component string
	steps     []string
}

var (
	registryMu sync.Mutex
	registry   = map[string][]string{}
)

// register adds a component's migrations. It is called from package-level
// var initialisers of the store files, so every component's schema exists
// whichever store a caller uses.
func register(component string, steps ...string) bool {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[component]; dup {
		panic("sqlite: migrations registered twice for " + component)
	}
	registry[component] = steps
	return true
}

// DB is the open database. It is safe for concurrent use.
type DB struct {
	db   *sql.DB
	path string
	// Now is the clock used for created/updated columns; tests replace it.
	Now func() time.Time
}

// Open opens (creating if needed) the database at path and applies pending
// migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open db: empty path")
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("open db: %w", err)
		}
	}
	// busy_timeout lets the daemon and a CLI command share the file; WAL
	// lets readers run beside the one writer; foreign keys make deletes cascade.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=secure_delete(1)&_txlock=immediate"
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open db %s: %w", path, err)
	}
	d := &DB{db: sqldb, path: path, Now: time.Now}
	if err := d.migrate(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open db %s: %w", path, err)
	}
	return d, nil
}

// Close closes the database; calling it twice is harmless.
func (d *DB) Close() error {
	if d == nil || d.db == nil {
		return nil
	}
	return d.db.Close()
}

// SQL exposes the handle for tests and tools that inspect rows directly.
func (d *DB) SQL() *sql.DB { return d.db }

// Path is the file the database lives in.
func (d *DB) Path() string { return d.path }

func (d *DB) migrate(ctx context.Context) error {
	if _, err := d.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL,
		version   INTEGER NOT NULL,
		applied_at TEXT NOT NULL,
		PRIMARY KEY (component, version)
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	registryMu.Lock()
	comps := make([]migration, 0, len(registry))
	for c, s := range registry {
		comps = append(comps, migration{c, s})
	}
	registryMu.Unlock()
	sort.Slice(comps, func(i, j int) bool { return comps[i].component < comps[j].component })
	for _, m := range comps {
		for i, step := range m.steps {
			version := i + 1
			if err := d.apply(ctx, m.component, version, step); err != nil {
				return fmt.Errorf("migrate %s v%d: %w", m.component, version, err)
			}
		}
	}
	return nil
}

func (d *DB) apply(ctx context.Context, component string, version int, step string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE component = ? AND version = ?`,
		component, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, step); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)`,
		component, version, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return err
	}
	return tx.Commit()
}

// tx runs fn in one transaction, committing if it returns nil.
func (d *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (d *DB) now() time.Time { return d.Now().UTC() }

// timeFormat is used for every timestamp column: sortable text in UTC.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"
