package concierge_test

import (
	"errors"
	"io/fs"
	"testing"

	"concierge"
)

// A code set where the error is known keeps the chain of what caused it,
// and the outermost code is the one the edges translate.
func TestErrorfKeepsChain(t *testing.T) {
	inner := concierge.Errorf(concierge.ENOTFOUND, "customer C1: %w", fs.ErrNotExist)
	err := concierge.Errorf(concierge.EUNAVAILABLE, "reload: %w", inner)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("errors.Is lost the cause")
	}
	var e *concierge.Error
	if !errors.As(err.Unwrap(), &e) || e != inner {
		t.Errorf("errors.As found %v, want the inner error", e)
	}
	if c := concierge.ErrorCode(err); c != concierge.EUNAVAILABLE {
		t.Errorf("code %q", c)
	}
	if m := concierge.ErrorMessage(err); m != "reload: not_found: customer C1: file does not exist" {
		t.Errorf("message %q", m)
	}
	// %v formats, it does not wrap.
	if plain := concierge.Errorf(concierge.EINVALID, "bad: %v", fs.ErrNotExist); errors.Is(plain, fs.ErrNotExist) || plain.Unwrap() != nil {
		t.Errorf("formatting with %%v kept a chain")
	}
}

func TestWrapf(t *testing.T) {
	coded := concierge.Errorf(concierge.EUNAVAILABLE, "connect nats: %w", fs.ErrPermission)
	err := concierge.Wrapf(coded, "escalator %s", "b1")
	if concierge.ErrorCode(err) != concierge.EUNAVAILABLE || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("code %q, chain kept %v", concierge.ErrorCode(err), errors.Is(err, fs.ErrPermission))
	}
	if m := concierge.ErrorMessage(err); m != "escalator b1: connect nats: permission denied" {
		t.Errorf("message %q", m)
	}
	internal := concierge.Wrapf(fs.ErrPermission, "escalator")
	if concierge.ErrorCode(internal) != concierge.EINTERNAL || concierge.ErrorMessage(internal) != "internal error" || !errors.Is(internal, fs.ErrPermission) {
		t.Errorf("internal error became %q %q", concierge.ErrorCode(internal), concierge.ErrorMessage(internal))
	}
	if concierge.Wrapf(nil, "x") != nil {
		t.Error("Wrapf(nil) is not nil")
	}
}
