package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// EnvVar is the environment variable that may hold the template key(s).
const EnvVar = "CONCIERGE_TEMPLATE_KEY"

// CredentialName is the systemd credential (LoadCredential=, in
// $CREDENTIALS_DIRECTORY) that may hold the template key(s).
const CredentialName = "template.key"

// Keyring is the current key, which seals, and older keys, which still
// open blobs sealed before a rotation. It is safe for concurrent use.
type Keyring struct {
	mu    sync.RWMutex
	keys  map[KeyID]*Key
	order []KeyID // current first
	src   *Source // where the keys came from; nil for a fixed keyring
	from  string
}

// NewKeyring holds keys; the first is current. It never reloads.
func NewKeyring(keys ...*Key) (*Keyring, error) {
	r := &Keyring{from: "memory"}
	if err := r.set(keys); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Keyring) set(keys []*Key) error {
	if len(keys) == 0 {
		return errors.New("keyring: no key")
	}
	m := make(map[KeyID]*Key, len(keys))
	order := make([]KeyID, 0, len(keys))
	for _, k := range keys {
		if _, dup := m[k.id]; dup {
			continue
		}
		m[k.id] = k
		order = append(order, k.id)
	}
	r.mu.Lock()
	r.keys, r.order = m, order
	r.mu.Unlock()
	return nil
}

// Current is the key that seals new blobs unless the caller names another.
func (r *Keyring) Current() *Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[r.order[0]]
}

// IDs lists the keys' ids, current first.
func (r *Keyring) IDs() []KeyID {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]KeyID(nil), r.order...)
}

// Keys lists the keys, current first.
func (r *Keyring) Keys() []*Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Key, len(r.order))
	for i, id := range r.order {
		out[i] = r.keys[id]
	}
	return out
}

// Origin says where the keys came from, for error messages: "file PATH",
// "environment CONCIERGE_TEMPLATE_KEY", "credential PATH" or "memory".
func (r *Keyring) Origin() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.from
}

// File is the key file the keys came from; "" when they came from the
// environment, a credential or memory (rotation cannot write those).
func (r *Keyring) File() string {
	if r.src == nil || !strings.HasPrefix(r.Origin(), "file ") {
		return ""
	}
	return r.src.File
}

// Key returns the key with the id. A key it does not hold makes it read
// its source again first: another process (`concierge keys rotate`) may
// have added it, and a running daemon must follow without a restart.
func (r *Keyring) Key(id KeyID) (*Key, error) {
	r.mu.RLock()
	k, ok := r.keys[id]
	r.mu.RUnlock()
	if ok {
		return k, nil
	}
	if r.src != nil {
		if err := r.Reload(); err != nil {
			return nil, fmt.Errorf("key %s: %w", id, err)
		}
		r.mu.RLock()
		k, ok = r.keys[id]
		r.mu.RUnlock()
		if ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("key %s (keys from %s): %w", id, r.from, ErrUnknownKey)
}

// Reload reads the keyring's source again.
func (r *Keyring) Reload() error {
	if r.src == nil {
		return nil
	}
	keys, from, err := r.src.read()
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("%s: no key", r.Origin())
	}
	if err := r.set(keys); err != nil {
		return err
	}
	r.mu.Lock()
	r.from = from
	r.mu.Unlock()
	return nil
}

// Open opens a blob under whichever key sealed it.
func (r *Keyring) Open(blob, aad []byte) ([]byte, error) {
	id, err := BlobKeyID(blob)
	if err != nil {
		return nil, err
	}
	k, err := r.Key(id)
	if err != nil {
		return nil, err
	}
	return k.Open(blob, aad)
}

// Source says where the template keys come from, in this order: the
// environment variable's value, the systemd credential in
// CredentialsDir, the key file.
type Source struct {
	Env            string // value of CONCIERGE_TEMPLATE_KEY
	CredentialsDir string // value of CREDENTIALS_DIRECTORY
	File           string // the key file
}

// DefaultSource reads the environment and keeps file as the key file.
func DefaultSource(file string) Source {
	return Source{Env: os.Getenv(EnvVar), CredentialsDir: os.Getenv("CREDENTIALS_DIRECTORY"), File: file}
}

// Load returns the keys of the first source that has any. When none has,
// create makes a new key in the key file (mode 0600, its directory 0700
// if new); otherwise that is an error, so that a database already holding
// sealed blobs never silently gets a key that cannot open them.
func (s Source) Load(create bool) (*Keyring, error) {
	keys, from, err := s.read()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		if !create || s.File == "" {
			return nil, fmt.Errorf("no template key: set %s, provide the systemd credential %s, or restore the key file %s",
				EnvVar, CredentialName, s.File)
		}
		k, err := GenerateKey()
		if err != nil {
			return nil, err
		}
		switch err := createKeyFile(s.File, k); {
		case errors.Is(err, fs.ErrExist):
			// Another process made it first: use theirs.
			if keys, from, err = s.read(); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, err
		default:
			keys, from = []*Key{k}, "file "+s.File
		}
	}
	r := &Keyring{src: &s, from: from}
	if err := r.set(keys); err != nil {
		return nil, err
	}
	return r, nil
}

// read returns the keys of the first source that has any, or none.
func (s Source) read() ([]*Key, string, error) {
	if strings.TrimSpace(s.Env) != "" {
		keys, err := ParseKeys([]byte(s.Env))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", EnvVar, err)
		}
		return keys, "environment " + EnvVar, nil
	}
	if s.CredentialsDir != "" {
		p := filepath.Join(s.CredentialsDir, CredentialName)
		b, err := os.ReadFile(p)
		switch {
		case err == nil:
			keys, err := ParseKeys(b)
			if err != nil {
				return nil, "", fmt.Errorf("credential %s: %w", p, err)
			}
			return keys, "credential " + p, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, "", fmt.Errorf("credential %s: %w", p, err)
		}
	}
	if s.File == "" {
		return nil, "", nil
	}
	keys, err := ReadKeyFile(s.File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	return keys, "file " + s.File, nil
}

// ReadKeyFile reads a key file, refusing one that others may read.
func ReadKeyFile(path string) ([]*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: it must be readable by its owner only (chmod 600 %s)",
			path, st.Mode().Perm(), path)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	keys, err := ParseKeys(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return keys, nil
}

// ParseKeys reads keys, one per line or separated by commas, each 64 hex
// digits or the base64 of 32 bytes; '#' starts a comment. The first key
// is the current one.
func ParseKeys(text []byte) ([]*Key, error) {
	var keys []*Key
	for n, line := range strings.Split(string(text), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, field := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			raw, err := decodeKey(field)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			k, err := NewKey(raw)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func decodeKey(s string) ([]byte, error) {
	if len(s) == 2*KeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("a key must be 64 hex digits or the base64 of %d bytes", KeySize)
}

// keyFileText is the key file's content: a comment, then one key per line.
func keyFileText(keys []*Key) []byte {
	var b bytes.Buffer
	b.WriteString("# Concierge template keys (AES-256), base64, current first. Keep this file secret and backed up\n")
	b.WriteString("# apart from the database: without it the stored face templates cannot be read.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s # id %s\n", base64.StdEncoding.EncodeToString(k.raw), k.id)
	}
	return b.Bytes()
}

// createKeyFile writes a new key file; fs.ErrExist when one exists.
func createKeyFile(path string, k *Key) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(keyFileText([]*Key{k})); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("key file %s: %w", path, err)
	}
	return f.Close()
}

// WriteKeyFile replaces the key file with keys (current first), mode 0600.
// The new content is synced to a temporary file and renamed over the old,
// so a crash leaves either file whole.
func WriteKeyFile(path string, keys []*Key) error {
	if len(keys) == 0 {
		return errors.New("key file: no key")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".template.key-*")
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("key file: %w", err)
	}
	if _, err := tmp.Write(keyFileText(keys)); err != nil {
		tmp.Close()
		return fmt.Errorf("key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
