// Package seal encrypts small secrets at rest (face templates) with
// AES-256-GCM under keys that never live beside the data they protect.
//
// A sealed blob is
//
//	version (1 byte, 1) | key id (4 bytes, big-endian) | nonce (12 bytes) | ciphertext | GCM tag (16 bytes)
//
// The version and key id are authenticated with the caller's additional
// data (the owner of the blob, e.g. a customer id), so a blob copied onto
// another owner's row, or relabelled with another key id, fails to open.
// The key id is derived from the key itself, so the same key always has
// the same id and a wrong key can never pose as the right one.
//
// The package is plain Go with the standard library's crypto only.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// Version is the blob format written by Seal.
const Version = 1

const (
	headerSize = 1 + 4
	nonceSize  = 12
	tagSize    = 16
	// Overhead is how many bytes a sealed blob adds to its plaintext.
	Overhead = headerSize + nonceSize + tagSize
)

// Errors callers branch on.
var (
	// ErrUnknownKey: the blob was sealed under a key the keyring lacks.
	ErrUnknownKey = errors.New("sealed under an unknown key")
	// ErrOpen: the blob is corrupt, was sealed for another owner, or the
	// key with its id is not the key that sealed it.
	ErrOpen = errors.New("cannot open sealed blob (corrupt, wrong owner or wrong key)")
	// ErrFormat: not a sealed blob of a known version.
	ErrFormat = errors.New("not a sealed blob")
)

// KeyID names a key in blobs and in the database's key check values.
type KeyID uint32

func (id KeyID) String() string { return fmt.Sprintf("%08x", uint32(id)) }

// MarshalText writes the id as String does, for JSON and logs.
func (id KeyID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// Key is one AES-256-GCM key. The raw bytes are kept only for writing the
// key file.
type Key struct {
	id   KeyID
	raw  []byte
	aead cipher.AEAD
}

// NewKey wraps 32 raw bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("key has %d bytes, want %d", len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{id: deriveID(raw), raw: append([]byte(nil), raw...), aead: aead}, nil
}

// GenerateKey makes a new random key.
func GenerateKey() (*Key, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return NewKey(raw)
}

// deriveID hashes the key under a domain label: a short public name for a
// key that reveals nothing usable about it.
func deriveID(raw []byte) KeyID {
	h := sha256.New()
	h.Write([]byte("concierge/seal/key-id/v1\x00"))
	h.Write(raw)
	id := KeyID(binary.BigEndian.Uint32(h.Sum(nil)))
	if id == 0 {
		id = 1 // 0 is kept to mean "no key"
	}
	return id
}

// ID is the key's id.
func (k *Key) ID() KeyID { return k.id }

// Seal encrypts plaintext under k, bound to aad, with a fresh random nonce.
func (k *Key) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, headerSize+nonceSize, Overhead+len(plaintext))
	out[0] = Version
	binary.BigEndian.PutUint32(out[1:5], uint32(k.id))
	if _, err := rand.Read(out[headerSize:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return k.aead.Seal(out, out[headerSize:headerSize+nonceSize], plaintext, additional(out[:headerSize], aad)), nil
}

// Open decrypts a blob sealed under k for aad.
func (k *Key) Open(blob, aad []byte) ([]byte, error) {
	id, err := BlobKeyID(blob)
	if err != nil {
		return nil, err
	}
	if id != k.id {
		return nil, fmt.Errorf("key %s: %w", id, ErrUnknownKey)
	}
	nonce := blob[headerSize : headerSize+nonceSize]
	pt, err := k.aead.Open(nil, nonce, blob[headerSize+nonceSize:], additional(blob[:headerSize], aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// additional is the header followed by the caller's data: authenticating
// the header stops a blob from being relabelled.
func additional(header, aad []byte) []byte {
	b := make([]byte, 0, len(header)+len(aad))
	return append(append(b, header...), aad...)
}

// BlobKeyID reads the key id of a sealed blob without opening it.
func BlobKeyID(blob []byte) (KeyID, error) {
	if len(blob) < Overhead || blob[0] != Version {
		return 0, ErrFormat
	}
	return KeyID(binary.BigEndian.Uint32(blob[1:5])), nil
}

// IsSealed reports whether b has the shape of a sealed blob with a
// plaintext of n bytes.
func IsSealed(b []byte, n int) bool {
	_, err := BlobKeyID(b)
	return err == nil && len(b) == n+Overhead
}
