package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concierge/enroll"
	"concierge/face"
	"concierge/seal"
	"concierge/sqlite"
)

// keysEnv is a config and a database of n enrolled customers, with a
// second handle on it standing for the running daemon.
func keysEnv(t *testing.T, n int) (cfg, dbPath string, daemon *sqlite.DB) {
	t.Helper()
	t.Setenv("CONCIERGE_CONFIG", "")
	t.Setenv(seal.EnvVar, "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := t.TempDir()
	dbPath = filepath.Join(dir, "state", "c.db")
	cfg = filepath.Join(dir, "concierge.yaml")
	yaml := "branch: t1\ndb: " + dbPath + "\nvision: {engine: dlib}\nmodels: {dir: " + t.TempDir() + "}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	daemon, err := sqlite.Open(ctx, dbPath, sqlite.WithKeySource(seal.Source{File: sqlite.DefaultKeyFile(dbPath)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { daemon.Close() })
	for i := 0; i < n; i++ {
		keysEnroll(t, daemon, fmt.Sprintf("C%03d", i))
	}
	return cfg, dbPath, daemon
}

func keysEmbedding(id string) face.Embedding {
	var e face.Embedding
	for i := range e {
		e[i] = float32(len(id)*i%17) / 17
	}
	e[0] = float32(id[len(id)-1]) / 100
	return e
}

func keysEnroll(t *testing.T, db *sqlite.DB, id string) {
	t.Helper()
	now := time.Now()
	if _, err := db.SaveEnrollment(context.Background(), enroll.Customer{ID: id, DisplayName: "x", Created: now},
		enroll.Consent{Reference: "F-" + id, TextVersion: "v1", Channel: "cli", GrantedAt: now},
		[]enroll.Template{{Embedding: keysEmbedding(id), Model: "dlib", Created: now}}); err != nil {
		t.Fatal(err)
	}
}

func templatesByCustomer(t *testing.T, db *sqlite.DB) map[string]face.Embedding {
	t.Helper()
	ts, err := db.Templates(context.Background(), "dlib")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]face.Embedding{}
	for _, tpl := range ts {
		out[tpl.CustomerID] = tpl.Embedding
	}
	return out
}

func TestKeysRotate(t *testing.T) {
	cfg, dbPath, daemon := keysEnv(t, 250)
	keyFile := sqlite.DefaultKeyFile(dbPath)
	oldKeys, err := seal.ReadKeyFile(keyFile)
	if err != nil || len(oldKeys) != 1 {
		t.Fatalf("key file: %v", err)
	}
	old := oldKeys[0].ID()
	before := templatesByCustomer(t, daemon)

	out, errOut, code := run(t, "keys", "status", "--config", cfg)
	var st struct {
		Source string `json:"source"`
		Keys   []struct {
			ID        string `json:"id"`
			Current   bool   `json:"current"`
			Templates int    `json:"templates"`
		} `json:"keys"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Keys) != 1 || st.Keys[0].ID != old.String() ||
		!st.Keys[0].Current || st.Keys[0].Templates != 250 || st.Source != "file "+keyFile {
		t.Fatalf("keys status: exit %d %s %s", code, out, errOut)
	}

	out, errOut, code = run(t, "keys", "rotate", "--config", cfg)
	var rot struct {
		Key      string   `json:"key"`
		Resealed int      `json:"templates_resealed"`
		Retired  []string `json:"retired"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rot) != nil {
		t.Fatalf("keys rotate: exit %d %s %s", code, out, errOut)
	}
	if rot.Key == old.String() || rot.Resealed != 250 || len(rot.Retired) != 1 || rot.Retired[0] != old.String() {
		t.Fatalf("rotate = %+v", rot)
	}

	// The key file holds the new key alone, still 0600.
	keys, err := seal.ReadKeyFile(keyFile)
	if err != nil || len(keys) != 1 || keys[0].ID().String() != rot.Key {
		t.Fatalf("key file after rotation: %v", err)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o", fi.Mode().Perm())
	}
	// Every template is sealed under the new key.
	var newID [4]byte
	binary.BigEndian.PutUint32(newID[:], uint32(keys[0].ID()))
	var under int
	daemon.SQL().QueryRow(`SELECT COUNT(*) FROM templates WHERE substr(embedding, 2, 4) = ?`, newID[:]).Scan(&under)
	if under != 250 {
		t.Fatalf("%d of 250 templates under the new key", under)
	}

	// The running daemon, which never saw the new key, reads the same
	// vectors and seals new enrollments with the new key.
	after := templatesByCustomer(t, daemon)
	if len(after) != len(before) {
		t.Fatalf("%d customers after rotation, %d before", len(after), len(before))
	}
	for id, e := range before {
		if after[id] != e {
			t.Fatalf("template of %s changed in rotation", id)
		}
	}
	keysEnroll(t, daemon, "C-after")
	daemon.SQL().QueryRow(`SELECT COUNT(*) FROM templates WHERE substr(embedding, 2, 4) = ?`, newID[:]).Scan(&under)
	if under != 251 {
		t.Fatal("the daemon sealed a new template under the old key")
	}

	// The old key no longer opens the database.
	t.Setenv(seal.EnvVar, keyString(t, oldKeys[0]))
	_, errOut, code = run(t, "keys", "status", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "wrong or missing template key") {
		t.Fatalf("status with the old key: exit %d %s", code, errOut)
	}
}

// With keys from the environment, rotation re-encrypts under the key put
// first there and refuses when there is no new key.
func TestKeysRotateFromEnvironment(t *testing.T) {
	cfg, dbPath, daemon := keysEnv(t, 3)
	oldKeys, _ := seal.ReadKeyFile(sqlite.DefaultKeyFile(dbPath))
	before := templatesByCustomer(t, daemon)
	daemon.Close()

	t.Setenv(seal.EnvVar, keyString(t, oldKeys[0]))
	_, errOut, code := run(t, "keys", "rotate", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "put a new key first") {
		t.Fatalf("rotate without a new key: exit %d %s", code, errOut)
	}
	next, _ := seal.GenerateKey()
	t.Setenv(seal.EnvVar, keyString(t, next)+","+keyString(t, oldKeys[0]))
	out, errOut, code := run(t, "keys", "rotate", "--config", cfg)
	if code != 0 || !strings.Contains(out, next.ID().String()) || !strings.Contains(out, `"templates_resealed":3`) {
		t.Fatalf("rotate: exit %d %s %s", code, out, errOut)
	}
	t.Setenv(seal.EnvVar, keyString(t, next))
	db, err := sqlite.Open(context.Background(), dbPath, cfgDBOptions(t, cfg)...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	after := templatesByCustomer(t, db)
	for id, e := range before {
		if after[id] != e {
			t.Fatalf("template of %s changed", id)
		}
	}
}

func cfgDBOptions(t *testing.T, path string) []sqlite.Option {
	t.Helper()
	c, err := ReadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return c.dbOptions()
}

// keyString is the key as an operator would put it in the environment:
// the base64 text of the key file that holds it.
func keyString(t *testing.T, k *seal.Key) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k")
	if err := seal.WriteKeyFile(p, []*seal.Key{k}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.TrimSpace(strings.Split(line, "#")[0]); f != "" {
			return f
		}
	}
	t.Fatal("empty key file")
	return ""
}
