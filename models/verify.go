package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// HashError reports a model file whose SHA-256 is not the pinned one.
type HashError struct {
	Name string // file name
	Want string // expected digest, lowercase hex
	Got  string // actual digest, lowercase hex
}

func (e *HashError) Error() string {
	return fmt.Sprintf("%s: sha256 mismatch: got %s, want %s", e.Name, e.Got, e.Want)
}

// SizeError reports a model file of the wrong length: a truncated download,
// or something else under the expected name. It is caught before hashing so
// that a short file is named as such rather than as a hash mismatch.
type SizeError struct {
	Name string
	Want int64
	// Got is the actual size; when reading a source, Fetch stops one byte
	// past Want, so Got == Want+1 means "larger than expected".
	Got int64
}

func (e *SizeError) Error() string {
	if e.Got > e.Want {
		return fmt.Sprintf("%s: larger than the expected %d bytes", e.Name, e.Want)
	}
	return fmt.Sprintf("%s: size %d bytes, want %d", e.Name, e.Got, e.Want)
}

// VerifyFile checks that dir holds f with the right size and hash. A missing
// file gives an error matching fs.ErrNotExist; a wrong one a *SizeError or
// *HashError.
func VerifyFile(dir string, f File) error {
	p := f.Path(dir)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: missing from %s: %w", f.Name, dir, fs.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %s is not a regular file", f.Name, p)
	}
	if fi.Size() != f.Size {
		return &SizeError{Name: f.Name, Want: f.Size, Got: fi.Size()}
	}
	got, err := hashFile(p)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	if got != f.SHA256 {
		return &HashError{Name: f.Name, Want: f.SHA256, Got: got}
	}
	return nil
}

// Verify checks every file of set in dir and returns nil, or an error
// naming each missing or bad file (errors.As finds the *HashError and
// *SizeError values among them).
func Verify(dir string, set Set) error {
	var errs []error
	for _, f := range set.files {
		if err := VerifyFile(dir, f); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("verify models in %s: %w", dir, errors.Join(errs...))
}

func hashFile(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
