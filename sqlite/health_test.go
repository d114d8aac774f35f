package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"concierge"
	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/sqlite"
)

// A database file root cannot write (immutable) opens, since reading it is
// fine, but ProbeWrite and CheckWritable say it is not writable, with a
// code the daemon turns into a refusal to start; once writable again both
// pass.
func TestProbeWriteReadOnlyAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ProbeWrite(ctx); err != nil {
		t.Fatalf("probe of a fresh database: %v", err)
	}
	db.Close()

	thaw := testenv.Freeze(t, path)
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("open of a read-only database, for reading: %v", err)
	}
	err = db.ProbeWrite(ctx)
	db.Close()
	if err == nil {
		t.Fatal("probe passed on a database that cannot be written")
	}
	if concierge.ErrorCode(err) != concierge.EUNAVAILABLE || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("probe error %v (code %s)", err, concierge.ErrorCode(err))
	}
	if err := sqlite.CheckWritable(ctx, path); concierge.ErrorCode(err) != concierge.EUNAVAILABLE {
		t.Fatalf("CheckWritable of a read-only file: %v", err)
	}
	thaw()

	// With its directory read-only too, SQLite cannot make its WAL: the
	// open itself fails, and CheckWritable says so the same way.
	thaw = testenv.Freeze(t, path, dir)
	err = sqlite.CheckWritable(ctx, path)
	if concierge.ErrorCode(err) != concierge.EUNAVAILABLE || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("CheckWritable with a read-only directory: %v", err)
	}
	thaw()
	if err := sqlite.CheckWritable(ctx, path); err != nil {
		t.Fatalf("after thaw: %v", err)
	}
}

// The file turning unwritable under an open database: the probe and a
// visit fail while it is, and both work again once it is writable, on the
// same open handle, with nothing half-written.
func TestProbeWriteWhileOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.RecordVisit(ctx, checkin.Arrival{ID: "01A", Branch: "b", Camera: "c", CustomerID: "C1"}); err != nil {
		t.Fatal(err)
	}
	thaw := testenv.Freeze(t, path, path+"-wal", dir)
	if err := db.ProbeWrite(ctx); err == nil {
		t.Fatal("probe passed on a frozen database")
	}
	if err := db.RecordVisit(ctx, checkin.Arrival{ID: "01B", Branch: "b", Camera: "c", CustomerID: "C1"}); err == nil {
		t.Fatal("visit recorded in a frozen database")
	}
	thaw()
	if err := db.ProbeWrite(ctx); err != nil {
		t.Fatalf("probe after thaw: %v", err)
	}
	if err := db.RecordVisit(ctx, checkin.Arrival{ID: "01B", Branch: "b", Camera: "c", CustomerID: "C1"}); err != nil {
		t.Fatalf("visit after thaw: %v", err)
	}
	var n int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM visits`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d visits, %v; want 2", n, err)
	}
}

// A connection SQLite opened while the file could not be written stays
// read-only after the file is writable again: writes that get one keep
// failing until ResetConnections drops the idle ones.
func TestResetConnectionsAfterReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.ProbeWrite(ctx); err != nil {
		t.Fatal(err)
	}
	// One connection stays open, as in a running daemon, so the WAL and
	// its index stay; none from before the freeze stays idle.
	held, err := db.SQL().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	db.ResetConnections()
	thaw := testenv.Freeze(t, path)
	// Two connections at once: both opened now, on the frozen file.
	c1, err := db.SQL().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := db.SQL().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c1.Close()
	c2.Close()
	thaw()
	if err := db.ProbeWrite(ctx); err == nil {
		t.Fatal("a connection opened on the frozen file wrote: the test no longer shows what ResetConnections is for")
	}
	db.ResetConnections()
	for i := 0; i < 5; i++ {
		if err := db.ProbeWrite(ctx); err != nil {
			t.Fatalf("write %d after ResetConnections: %v", i, err)
		}
	}
}
