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

	"concierge/seal"
)

// migration is one schema step of a component; steps run in slice order and
// are never edited once shipped, only appended. A step is SQL text or, for
// data that SQL cannot transform (sealing templates), a goStep.
type migration struct {
	component string
	steps     []any
}

// goStep is a migration written in Go, run in the step's transaction.
type goStep func(ctx context.Context, tx *sql.Tx, d *DB) error

var (
	registryMu sync.Mutex
	registry   = map[string][]any{}
)

// register adds a component's migrations. It is called from package-level
// var initialisers of the store files, so every component's schema exists
// whichever store a caller uses.
func register(component string, steps ...any) bool {
	for _, s := range steps {
		switch s.(type) {
		case string, goStep:
		default:
			panic(fmt.Sprintf("sqlite: migration step of %s is a %T", component, s))
		}
	}
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
	// keys seal and open face templates; never stored in the database.
	keys *seal.Keyring
	// Now is the clock used for created/updated columns; tests replace it.
	Now func() time.Time
}

// Option changes how Open opens the database.
type Option func(*options)

type options struct {
	keys   *seal.Keyring
	source *seal.Source
}

// WithKeyring seals templates with kr instead of the default key source.
func WithKeyring(kr *seal.Keyring) Option { return func(o *options) { o.keys = kr } }

// WithKeySource reads the template keys from src instead of the default:
// CONCIERGE_TEMPLATE_KEY, the systemd credential template.key, or
// template.key beside the database.
func WithKeySource(src seal.Source) Option { return func(o *options) { o.source = &src } }

// DefaultKeyFile is the key file used when no other is configured:
// template.key in the database's directory.
func DefaultKeyFile(dbPath string) string {
	return filepath.Join(filepath.Dir(dbPath), "template.key")
}

// Open opens (creating if needed) the database at path, applies pending
// migrations and loads the template keys, checking them against the
// database: a wrong or missing key is an error here, never garbage later.
// A new database file (and its -wal and -shm) is readable by its owner
// only, in a directory created 0700.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	if path == "" {
		return nil, errors.New("open db: empty path")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if path != ":memory:" {
		if err := prepareFiles(path); err != nil {
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
	if err := d.loadKeys(ctx, o); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open db %s: %w", path, err)
	}
	if err := d.migrate(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open db %s: %w", path, err)
	}
	if err := d.checkKeys(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open db %s: %w", path, err)
	}
	return d, nil
}

// prepareFiles makes the database's directory (0700 when new) and file
// (0600 when new) before SQLite does, since SQLite would create it 0644
// and gives its -wal and -shm files the main file's mode. A file others
// may read, made by an older version, is tightened.
func prepareFiles(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// Create only: an existing file is left for SQLite to open, so that a
	// database the process may read but not write still opens for reading
	// (the daemon's write probe then refuses it with a clear reason).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		f.Close()
	case !errors.Is(err, os.ErrExist):
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, st.Mode().Perm()&0o700); err != nil {
				return fmt.Errorf("restrict %s to its owner: %w", p, err)
			}
		}
	}
	return nil
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

func (d *DB) apply(ctx context.Context, component string, version int, step any) error {
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
	switch step := step.(type) {
	case string:
		if _, err := tx.ExecContext(ctx, step); err != nil {
			return err
		}
	case goStep:
		if err := step(ctx, tx, d); err != nil {
			return err
		}
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
