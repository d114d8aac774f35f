package seal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"concierge/seal"
)

func mustKey(t *testing.T) *seal.Key {
	t.Helper()
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := mustKey(t)
	pt := bytes.Repeat([]byte{0x3f, 0x80, 0, 0}, 128)
	a, err := k.Seal(pt, []byte("template\x00C1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.Seal(pt, []byte("template\x00C1"))
	if len(a) != len(pt)+seal.Overhead || !seal.IsSealed(a, len(pt)) {
		t.Fatalf("blob has %d bytes, want %d", len(a), len(pt)+seal.Overhead)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal: the nonce is not fresh")
	}
	if bytes.Contains(a, pt[:16]) {
		t.Fatal("the blob holds plaintext")
	}
	if id, _ := seal.BlobKeyID(a); id != k.ID() {
		t.Fatalf("blob key id %s, want %s", id, k.ID())
	}
	got, err := k.Open(a, []byte("template\x00C1"))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("open: %v", err)
	}

	// A blob copied onto another customer's row does not open.
	if _, err := k.Open(a, []byte("template\x00C2")); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("other owner: %v, want ErrOpen", err)
	}
	// One flipped bit anywhere after the header.
	for _, i := range []int{5, 20, len(a) - 1} {
		c := bytes.Clone(a)
		c[i] ^= 1
		if _, err := k.Open(c, []byte("template\x00C1")); !errors.Is(err, seal.ErrOpen) {
			t.Fatalf("flipped byte %d: %v, want ErrOpen", i, err)
		}
	}
	// Another key, even relabelled with this key's id, does not open it.
	other := mustKey(t)
	if _, err := other.Open(a, []byte("template\x00C1")); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("other key: %v, want ErrUnknownKey", err)
	}
	c, _ := other.Seal(pt, []byte("template\x00C1"))
	copy(c[1:5], a[1:5])
	if _, err := k.Open(c, []byte("template\x00C1")); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("relabelled blob: %v, want ErrOpen", err)
	}
	// A plain vector is not a blob.
	if _, err := k.Open(pt, nil); !errors.Is(err, seal.ErrFormat) {
		t.Fatalf("plain bytes: %v, want ErrFormat", err)
	}
}

func TestKeyIDIsStable(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, seal.KeySize)
	a, _ := seal.NewKey(raw)
	b, _ := seal.NewKey(raw)
	if a.ID() != b.ID() || a.ID() == 0 {
		t.Fatalf("ids %s %s", a.ID(), b.ID())
	}
	if _, err := seal.NewKey(raw[:16]); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
}

func TestParseKeys(t *testing.T) {
	raw := bytes.Repeat([]byte{9}, seal.KeySize)
	want, _ := seal.NewKey(raw)
	for _, text := range []string{
		hex.EncodeToString(raw),
		base64.StdEncoding.EncodeToString(raw) + "\n",
		"# comment\n  " + base64.RawURLEncoding.EncodeToString(raw) + " # id\n",
	} {
		keys, err := seal.ParseKeys([]byte(text))
		if err != nil || len(keys) != 1 || keys[0].ID() != want.ID() {
			t.Fatalf("%q: %v %v", text, keys, err)
		}
	}
	two, err := seal.ParseKeys([]byte(hex.EncodeToString(raw) + "," + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))))
	if err != nil || len(two) != 2 || two[0].ID() != want.ID() {
		t.Fatalf("two keys: %v %v", two, err)
	}
	for _, bad := range []string{"abc", hex.EncodeToString(raw[:31]), "zz" + hex.EncodeToString(raw)[2:]} {
		if _, err := seal.ParseKeys([]byte(bad)); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestLoadCreatesKeyFileOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	file := filepath.Join(dir, "template.key")
	if _, err := (seal.Source{File: file}).Load(false); err == nil || !strings.Contains(err.Error(), "no template key") {
		t.Fatalf("load without create: %v", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatal("load without create made a key file")
	}
	kr, err := (seal.Source{File: file}).Load(true)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, file: 0o600} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Fatalf("%s mode %04o, want %04o", p, st.Mode().Perm(), want)
		}
	}
	if kr.File() != file || !strings.HasPrefix(kr.Origin(), "file ") {
		t.Fatalf("origin %q file %q", kr.Origin(), kr.File())
	}
	// A second load reads the same key, and never makes another.
	again, err := (seal.Source{File: file}).Load(true)
	if err != nil || again.Current().ID() != kr.Current().ID() {
		t.Fatalf("second load: %v", err)
	}
	// A key file others may read is refused.
	os.Chmod(file, 0o644)
	if _, err := (seal.Source{File: file}).Load(false); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loose key file: %v", err)
	}
}

func TestSourcePrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "template.key")
	fileKey, envKey, credKey := mustKey(t), mustKey(t), mustKey(t)
	if err := seal.WriteKeyFile(file, []*seal.Key{fileKey}); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "creds")
	os.Mkdir(creds, 0o700)
	writeKeys(t, filepath.Join(creds, seal.CredentialName), credKey)
	envText := keyText(t, envKey)

	for _, c := range []struct {
		src  seal.Source
		want *seal.Key
	}{
		{seal.Source{Env: envText, CredentialsDir: creds, File: file}, envKey},
		{seal.Source{CredentialsDir: creds, File: file}, credKey},
		{seal.Source{CredentialsDir: t.TempDir(), File: file}, fileKey},
	} {
		kr, err := c.src.Load(false)
		if err != nil {
			t.Fatal(err)
		}
		if kr.Current().ID() != c.want.ID() {
			t.Fatalf("%+v: key %s, want %s (%s)", c.src, kr.Current().ID(), c.want.ID(), kr.Origin())
		}
	}
	if _, err := (seal.Source{Env: "not a key", File: file}).Load(true); err == nil || !strings.Contains(err.Error(), seal.EnvVar) {
		t.Fatalf("bad env key: %v", err)
	}
}

func TestKeyringReloadsForUnknownKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "template.key")
	old := mustKey(t)
	if err := seal.WriteKeyFile(file, []*seal.Key{old}); err != nil {
		t.Fatal(err)
	}
	kr, err := (seal.Source{File: file}).Load(false)
	if err != nil {
		t.Fatal(err)
	}
	// Another process rotates: a new current key beside the old.
	next := mustKey(t)
	if err := seal.WriteKeyFile(file, []*seal.Key{next, old}); err != nil {
		t.Fatal(err)
	}
	blob, _ := next.Seal([]byte("x"), []byte("a"))
	if pt, err := kr.Open(blob, []byte("a")); err != nil || string(pt) != "x" {
		t.Fatalf("open under a key added to the file: %v", err)
	}
	if kr.Current().ID() != next.ID() {
		t.Fatal("the reload did not make the new key current")
	}
	// A key in no source stays unknown.
	stray, _ := mustKey(t).Seal([]byte("x"), []byte("a"))
	if _, err := kr.Open(stray, []byte("a")); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("stray key: %v", err)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Fatalf("rewritten key file mode %04o", st.Mode().Perm())
	}
}

func keyText(t *testing.T, k *seal.Key) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k")
	writeKeys(t, p, k)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeKeys(t *testing.T, path string, keys ...*seal.Key) {
	t.Helper()
	if err := seal.WriteKeyFile(path, keys); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkOpenTemplate is the cost of unsealing one 512-byte template.
func BenchmarkOpenTemplate(b *testing.B) {
	k, err := seal.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	aad := []byte("C1001")
	blob, err := k.Seal(make([]byte, 512), aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(512)
	for b.Loop() {
		if _, err := k.Open(blob, aad); err != nil {
			b.Fatal(err)
		}
	}
}
