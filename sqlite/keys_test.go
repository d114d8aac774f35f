package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concierge"
	"concierge/enroll"
	"concierge/face"
	"concierge/internal/testenv/testdb"
	"concierge/seal"
	"concierge/sqlite"
)

func plain(e face.Embedding) []byte {
	b := make([]byte, 4*face.Dim)
	for i, v := range e {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func enrollOne(t *testing.T, db *sqlite.DB, id string, es ...face.Embedding) {
	t.Helper()
	now := time.Now()
	var ts []enroll.Template
	for _, e := range es {
		ts = append(ts, enroll.Template{Embedding: e, Model: "m", Created: now})
	}
	if _, err := db.SaveEnrollment(context.Background(), enroll.Customer{ID: id, DisplayName: "x", Created: now},
		enroll.Consent{Reference: "F-" + id, TextVersion: "v1", Channel: "cli", GrantedAt: now}, ts); err != nil {
		t.Fatal(err)
	}
}

// No stored template is a plain vector, and each decodes to what was saved.
func TestTemplatesSealedAtRest(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	enrollOne(t, db, "C1", emb(0.1), emb(0.2))
	enrollOne(t, db, "C2", emb(0.3))
	rows, err := db.SQL().Query(`SELECT customer_id, embedding FROM templates`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var blob []byte
		rows.Scan(&id, &blob)
		if !seal.IsSealed(blob, 4*face.Dim) {
			t.Fatalf("template of %s (%d bytes) is not a sealed blob", id, len(blob))
		}
		for _, v := range []float32{0.1, 0.2, 0.3} {
			if bytes.Contains(blob, plain(emb(v))[:16]) {
				t.Fatalf("template of %s holds the plain vector", id)
			}
		}
	}
	got, err := db.Templates(ctx, "m")
	if err != nil || len(got) != 3 || got[0].Embedding != emb(0.1) || got[2].Embedding != emb(0.3) {
		t.Fatalf("templates: %d, %v", len(got), err)
	}
	// The schema refuses a plain vector.
	if _, err := db.SQL().Exec(`UPDATE templates SET embedding = ? WHERE customer_id = 'C2'`, plain(emb(0.3))); err == nil {
		t.Fatal("a plain vector was stored")
	}
	// A blob copied onto another customer's row does not open.
	if _, err := db.SQL().Exec(`UPDATE templates SET embedding = (SELECT embedding FROM templates WHERE customer_id = 'C1' LIMIT 1)
		WHERE customer_id = 'C2'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Templates(ctx, "m"); err == nil {
		t.Fatal("a template moved to another customer opened")
	}
}

// The key is never in the database, and a wrong or missing key is refused
// at open, without making a new key.
func TestWrongOrMissingKeyRefusedAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "c.db")
	db, err := sqlite.Open(ctx, path, sqlite.WithKeySource(seal.Source{File: sqlite.DefaultKeyFile(path)}))
	if err != nil {
		t.Fatal(err)
	}
	enrollOne(t, db, "C1", emb(0.1))
	raw := db.Keyring().Current()
	db.Close()

	keyFile := sqlite.DefaultKeyFile(path)
	keyText, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("no key file beside the database: %v", err)
	}
	for _, p := range []string{path, path + "-wal"} {
		b, _ := os.ReadFile(p)
		for _, line := range strings.Split(string(keyText), "\n") {
			if k := strings.TrimSpace(strings.Split(line, "#")[0]); k != "" && bytes.Contains(b, []byte(k)) {
				t.Fatalf("%s holds the key", p)
			}
		}
	}

	other, _ := seal.GenerateKey()
	wrong, _ := seal.NewKeyring(other)
	_, err = sqlite.Open(ctx, path, sqlite.WithKeyring(wrong))
	if concierge.ErrorCode(err) != concierge.EUNAVAILABLE || !strings.Contains(err.Error(), "wrong or missing template key") ||
		!strings.Contains(err.Error(), raw.ID().String()) {
		t.Fatalf("open with a wrong key: %v", err)
	}
	// The same through the environment, which wins over the file.
	_, err = sqlite.Open(ctx, path, sqlite.WithKeySource(seal.Source{Env: strings.Repeat("ab", 32), File: keyFile}))
	if concierge.ErrorCode(err) != concierge.EUNAVAILABLE {
		t.Fatalf("open with a wrong key in the environment: %v", err)
	}

	os.Remove(keyFile)
	_, err = sqlite.Open(ctx, path, sqlite.WithKeySource(seal.Source{File: keyFile}))
	if concierge.ErrorCode(err) != concierge.EUNAVAILABLE || !strings.Contains(err.Error(), "no template key") {
		t.Fatalf("open without the key: %v", err)
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Fatal("a new key was made for a database holding sealed templates")
	}

	// The right key opens it again.
	os.WriteFile(keyFile, keyText, 0o600)
	db, err = sqlite.Open(ctx, path, sqlite.WithKeySource(seal.Source{File: keyFile}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.Templates(ctx, "m"); err != nil || len(got) != 1 || got[0].Embedding != emb(0.1) {
		t.Fatalf("templates with the right key: %v", err)
	}
}

// A database file, its WAL and shared memory are created for the owner
// only, in a directory created 0700; an old 0644 file is tightened.
func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "c.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	enrollOne(t, db, "C1", emb(0.1)) // makes the WAL hold something
	want := map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600,
		sqlite.DefaultKeyFile(path): 0o600}
	for p, m := range want {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != m {
			t.Errorf("%s: mode %04o, want %04o", filepath.Base(p), st.Mode().Perm(), m)
		}
	}
	db.Close()

	os.Chmod(path, 0o644)
	db, err = sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("an existing 0644 database stays %04o", st.Mode().Perm())
	}
}

// A database of the previous version, with plain vectors, is sealed when
// it is opened, and its vectors decode unchanged.
func TestPlainTemplatesSealedOnOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for _, q := range []string{
		`CREATE TABLE schema_migrations (component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (component, version))`,
		`INSERT INTO schema_migrations VALUES ('enroll', 1, '` + now + `')`,
		`CREATE TABLE customers (id TEXT PRIMARY KEY, display_name TEXT NOT NULL, created_at TEXT NOT NULL)`,
		`CREATE TABLE consents (id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
			reference TEXT NOT NULL CHECK (reference <> ''), text_version TEXT NOT NULL, channel TEXT NOT NULL,
			language TEXT NOT NULL DEFAULT '', granted_at TEXT NOT NULL, withdrawn_at TEXT)`,
		`CREATE TABLE templates (id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
			consent_id INTEGER NOT NULL REFERENCES consents(id) ON DELETE CASCADE, model TEXT NOT NULL,
			embedding BLOB NOT NULL CHECK (length(embedding) = 512), size_px INTEGER NOT NULL, sharpness REAL NOT NULL,
			frontal REAL NOT NULL, brightness REAL NOT NULL, created_at TEXT NOT NULL)`,
		`INSERT INTO customers VALUES ('C1', 'x', '2025-01-01T00:00:00.000000000Z'), ('C2', 'y', '2025-01-01T00:00:00.000000000Z')`,
		`INSERT INTO consents (customer_id, reference, text_version, channel, granted_at) VALUES
			('C1', 'F1', 'v1', 'cli', '2025-01-01T00:00:00.000000000Z'), ('C2', 'F2', 'v1', 'cli', '2025-01-01T00:00:00.000000000Z')`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []struct {
		id      string
		consent int
		e       face.Embedding
	}{{"C1", 1, emb(0.1)}, {"C1", 1, emb(0.2)}, {"C2", 2, emb(0.3)}} {
		if _, err := raw.Exec(`INSERT INTO templates VALUES (?, ?, ?, 'm', ?, 100, 100, 0.9, 120, '2025-01-01T00:00:00.000000000Z')`,
			i+1, c.id, c.consent, plain(c.e)); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Templates(ctx, "m")
	if err != nil || len(got) != 3 {
		t.Fatalf("templates after migration: %d, %v", len(got), err)
	}
	for i, want := range []face.Embedding{emb(0.1), emb(0.2), emb(0.3)} {
		if got[i].Embedding != want || got[i].ID != int64(i+1) {
			t.Fatalf("template %d changed in migration", i+1)
		}
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE length(embedding) = 512`); n != 0 {
		t.Fatalf("%d plain templates left", n)
	}
	// The plain vectors are gone from the file too, once checkpointed.
	db.SQL().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, plain(emb(0.3))[:32]) {
		t.Fatal("the database file still holds a plain vector")
	}
}

// Rotation in small transactions while another process keeps enrolling:
// no template is left under the old key, and every one still opens, for
// the writer (which learns the new key from the file) and for a fresh open.
func TestRotationWhileWriting(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	keyFile := sqlite.DefaultKeyFile(path)
	src := sqlite.WithKeySource(seal.Source{File: keyFile})
	writer, err := sqlite.Open(ctx, path, src)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	for i := 0; i < 120; i++ {
		enrollOne(t, writer, fmt.Sprintf("A%03d", i), emb(float32(i)/1000))
	}
	rot, err := sqlite.Open(ctx, path, src)
	if err != nil {
		t.Fatal(err)
	}
	defer rot.Close()
	old := rot.Keyring().Current()
	next, _ := seal.GenerateKey()

	done := make(chan error)
	go func() {
		defer close(done)
		for i := 0; i < 60; i++ {
			now := time.Now()
			if _, err := writer.SaveEnrollment(ctx, enroll.Customer{ID: fmt.Sprintf("B%03d", i), DisplayName: "x", Created: now},
				enroll.Consent{Reference: "F", TextVersion: "v1", Channel: "cli", GrantedAt: now},
				[]enroll.Template{{Embedding: emb(0.5 + float32(i)/1000), Model: "m", Created: now}}); err != nil {
				done <- err
				return
			}
		}
	}()
	if err := seal.WriteKeyFile(keyFile, []*seal.Key{next, old}); err != nil {
		t.Fatal(err)
	}
	if err := rot.Keyring().Reload(); err != nil {
		t.Fatal(err)
	}
	if err := rot.UseKey(ctx, next.ID()); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := rot.Reseal(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Anything sealed under the old key after the last batch is resealed.
	for {
		n, err := rot.Reseal(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if err := rot.RetireKey(ctx, old.ID()); err != nil {
		t.Fatal(err)
	}
	if err := rot.RetireKey(ctx, next.ID()); concierge.ErrorCode(err) != concierge.ECONFLICT {
		t.Fatalf("retiring the current key: %v", err)
	}
	if err := seal.WriteKeyFile(keyFile, []*seal.Key{next}); err != nil {
		t.Fatal(err)
	}
	st, err := rot.KeyStatus(ctx)
	if err != nil || len(st) != 1 || st[0].ID != next.ID() || !st[0].Current || st[0].Templates != 180 {
		t.Fatalf("key status = %+v, %v", st, err)
	}
	fresh, err := sqlite.Open(ctx, path, src)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for _, db := range []*sqlite.DB{writer, fresh} {
		ts, err := db.Templates(ctx, "m")
		if err != nil || len(ts) != 180 {
			t.Fatalf("templates after rotation: %d, %v", len(ts), err)
		}
		for _, tpl := range ts {
			var i int
			fmt.Sscanf(tpl.CustomerID[1:], "%d", &i)
			want := emb(float32(i) / 1000)
			if tpl.CustomerID[0] == 'B' {
				want = emb(0.5 + float32(i)/1000)
			}
			if tpl.Embedding != want {
				t.Fatalf("template of %s changed", tpl.CustomerID)
			}
		}
	}
	// The old key alone no longer opens the database.
	oldOnly, _ := seal.NewKeyring(old)
	if _, err := sqlite.Open(ctx, path, sqlite.WithKeyring(oldOnly)); concierge.ErrorCode(err) != concierge.EUNAVAILABLE {
		t.Fatalf("open with the retired key: %v", err)
	}
}

// A database whose templates are all gone needs no old key: a lost key
// file is replaced.
func TestNewKeyForDatabaseWithoutTemplates(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	enrollOne(t, db, "C1", emb(0.1))
	if _, err := db.Forget(ctx, "C1", time.Now()); err != nil {
		t.Fatal(err)
	}
	old := db.Keyring().Current().ID()
	db.Close()
	os.Remove(sqlite.DefaultKeyFile(path))
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	enrollOne(t, db, "C2", emb(0.2))
	st, err := db.KeyStatus(ctx)
	if err != nil || len(st) != 1 || st[0].ID == old || st[0].Templates != 1 {
		t.Fatalf("key status = %+v, %v", st, err)
	}
}

// RotateKey with a key file: a new key seals every template, the old one
// leaves the database and the file, and a fresh process with the file
// reads every template. With keys from the environment and no new key
// there, it refuses and changes nothing.
func TestRotateKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	keyFile := sqlite.DefaultKeyFile(path)
	src := sqlite.WithKeySource(seal.Source{File: keyFile})
	db, err := sqlite.Open(ctx, path, src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 25; i++ {
		enrollOne(t, db, fmt.Sprintf("A%03d", i), emb(float32(i)/1000))
	}
	old := db.Keyring().Current()
	rot, err := db.RotateKey(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Key == old.ID() || rot.Resealed != 25 || len(rot.Retired) != 1 || rot.Retired[0] != old.ID().String() {
		t.Fatalf("rotation %+v (old key %v)", rot, old.ID())
	}
	st, err := db.KeyStatus(ctx)
	if err != nil || len(st) != 1 || st[0].ID != rot.Key || !st[0].Current || st[0].Templates != 25 {
		t.Fatalf("key status = %+v, %v", st, err)
	}
	fresh, err := sqlite.Open(ctx, path, src)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if ids := fresh.Keyring().IDs(); len(ids) != 1 || ids[0] != rot.Key {
		t.Fatalf("key file holds %v", ids)
	}
	ts, err := fresh.Templates(ctx, "m")
	if err != nil || len(ts) != 25 {
		t.Fatalf("templates after rotation: %d, %v", len(ts), err)
	}
	for _, tpl := range ts {
		var i int
		fmt.Sscanf(tpl.CustomerID[1:], "%d", &i)
		if tpl.Embedding != emb(float32(i)/1000) {
			t.Fatalf("template of %s changed", tpl.CustomerID)
		}
	}

	text, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	env, err := sqlite.Open(ctx, path, sqlite.WithKeySource(seal.Source{Env: string(text)}))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if _, err := env.RotateKey(ctx, 7); concierge.ErrorCode(err) != concierge.EINVALID {
		t.Fatalf("rotation without a new key in the environment: %v", err)
	}
	if st, _ := env.KeyStatus(ctx); len(st) != 1 || st[0].ID != rot.Key {
		t.Fatalf("a refused rotation changed the keys: %+v", st)
	}
}
