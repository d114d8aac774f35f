// Package httpjson is where application errors become HTTP: the one
// mapping from concierge's error codes to HTTP statuses, and the one JSON
// error body, {"error":{"code":…,"message":…,"detail":…}}, for every HTTP
// surface of the box (the lobby, the kiosk API, the daemon's fallbacks).
// Domain packages never import it; the HTTP packages translate their
// errors here, at the edge.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"concierge"
)

// Error is an HTTP error with a stable machine code: clients branch on
// Code and show Message. Detail carries structured facts (a refused
// photo's feedback, when to retry).
type Error struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Detail  map[string]any `json:"detail,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Errorf builds an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeUnsupportedMediaType is the code of a 415, a body of another
// content type than the endpoint takes: the kiosk API's documented code,
// which the lobby answers too, so one wrong request has one answer on
// every surface of the box.
const CodeUnsupportedMediaType = "unsupported_media_type"

// Status is the HTTP status of an application error code. A malformed
// request (bad JSON, a wrong content type) is the caller's 400, 413 or
// 415, written where it is found; EINVALID is a well-formed request with a
// value the application refuses. EUNAUTHORIZED is a caller who is known
// but may not do this: missing or wrong credentials are the 401 the
// authentication layer writes itself.
func Status(code string) int {
	switch code {
	case concierge.EINVALID:
		return http.StatusUnprocessableEntity
	case concierge.ENOTFOUND:
		return http.StatusNotFound
	case concierge.ECONFLICT:
		return http.StatusConflict
	case concierge.EUNAUTHORIZED:
		return http.StatusForbidden
	case concierge.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// FromError translates an error into its HTTP form: an *Error in the
// chain as it is, else the application error's code, status and
// caller-safe message. Internal errors never show their text.
func FromError(err error) *Error {
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	code := concierge.ErrorCode(err)
	if code == "" {
		code = concierge.EINTERNAL
	}
	e := &Error{Status: Status(code), Code: code, Message: concierge.ErrorMessage(err)}
	var ae *concierge.Error
	if errors.As(err, &ae) {
		e.Detail = ae.Detail
	}
	return e
}

// WriteJSON writes v with status, never cached. Encoding errors are
// ignored: the status line has gone out already and the client sees a
// truncated body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// WriteError writes e as {"error": e} with its status.
func WriteError(w http.ResponseWriter, e *Error) {
	WriteJSON(w, e.Status, map[string]*Error{"error": e})
}
