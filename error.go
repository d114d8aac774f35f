// Package concierge holds the few things every part of Concierge shares: the
// application error codes that the edges (HTTP status, CLI exit status)
// translate, and nothing else.
package concierge

import (
	"errors"
	"fmt"
)

// Application error codes. Callers branch on these, never on message text.
const (
	EINVALID      = "invalid"      // bad input from the caller
	ENOTFOUND     = "not_found"    // the thing does not exist
	ECONFLICT     = "conflict"     // the request contradicts stored state
	EUNAUTHORIZED = "unauthorized" // the caller may not do this
	EUNAVAILABLE  = "unavailable"  // a dependency is down; retry later
	EINTERNAL     = "internal"     // a bug or an unexpected failure
)

// Error is an error meant to be shown to the caller: its Message is safe to
// print or return over HTTP. Internal errors never become an Error.
type Error struct {
	Code    string
	Message string
	// Detail carries structured facts for the caller (e.g. the conflicting
	// customer id); it is marshalled as-is into HTTP error bodies.
	Detail map[string]any

	// cause keeps the chain of errors wrapped with %w, so that errors.Is
	// and errors.As see through the code to what caused it.
	cause error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Unwrap returns what Errorf wrapped with %w, or nil.
func (e *Error) Unwrap() error { return e.cause }

// Errorf builds an *Error with a formatted message. Errors formatted with
// %w stay in the chain (errors.Is, errors.As); their text becomes part of
// the caller-safe message, so wrap only errors whose text may be shown.
func Errorf(code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	e := &Error{Code: code, Message: err.Error()}
	switch err.(type) {
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		e.cause = err
	}
	return e
}

// Wrapf adds context to err and keeps its code, so that the caller-safe
// message says where it failed too. An error without a code stays
// internal: it is wrapped with fmt.Errorf and its text never becomes a
// message.
func Wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	var e *Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%s: %w", msg, err)
	}
	return &Error{Code: e.Code, Message: msg + ": " + e.Message, Detail: e.Detail, cause: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err: the *Error's message,
// or a generic text for internal errors so that details never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
