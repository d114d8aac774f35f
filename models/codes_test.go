package models

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"concierge"
)

// The codes of fetch and verify failures, as they come: joined, one
// error a file.
func TestErrorCodes(t *testing.T) {
	hash := fmt.Errorf("fetch a: %w", &HashError{Name: "a", Want: "1", Got: "2"})
	size := fmt.Errorf("fetch b: %w", &SizeError{Name: "b"})
	none := fmt.Errorf("fetch c: %w", ErrNoDownload)
	down := errors.New("fetch d: connection refused")
	for _, c := range []struct {
		err  error
		want string
	}{
		{errors.Join(down, hash), concierge.EINVALID},
		{errors.Join(size), concierge.EINVALID},
		{errors.Join(none, down), concierge.ENOTFOUND},
		{errors.Join(down), concierge.EUNAVAILABLE},
	} {
		if got := FetchErrorCode(c.err); got != c.want {
			t.Errorf("FetchErrorCode(%v) = %s, want %s", c.err, got, c.want)
		}
	}
	missing := fmt.Errorf("a: %w", fs.ErrNotExist)
	if got := VerifyErrorCode([]error{missing, missing}); got != concierge.ENOTFOUND {
		t.Errorf("only missing files: %s, want %s", got, concierge.ENOTFOUND)
	}
	if got := VerifyErrorCode([]error{missing, &HashError{Name: "b"}}); got != concierge.EINVALID {
		t.Errorf("a missing and a wrong file: %s, want %s", got, concierge.EINVALID)
	}
}
