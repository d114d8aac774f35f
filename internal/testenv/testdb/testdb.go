// Package testdb opens real SQLite databases (sqlite.Open) for tests. It
// is apart from testenv because sqlite imports tiering, whose own tests
// use testenv: a test importing testenv must not import sqlite through it.
package testdb

import (
	"context"
	"path/filepath"
	"testing"

	"concierge/sqlite"
)

// Open opens a fresh database in the test's temp dir; it is closed when
// the test ends.
func Open(tb testing.TB, opts ...sqlite.Option) *sqlite.DB {
	tb.Helper()
	return OpenAt(tb, filepath.Join(tb.TempDir(), "concierge.db"), opts...)
}

// OpenAt opens the database at path, as a restarted daemon or another
// process would; it is closed when the test ends.
func OpenAt(tb testing.TB, path string, opts ...sqlite.Option) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), path, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
