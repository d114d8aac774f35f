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
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
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
