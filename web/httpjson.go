package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"

	"concierge"
)

// errorBody is every error response: {"error":{"code":...,"message":...}}.
// Codes are concierge's application error codes.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeJSON writes v with status. Encoding errors are ignored: the status
// line has gone out already and the client sees a truncated body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeJSONError writes a caller-safe error.
func writeJSONError(w http.ResponseWriter, status int, code, format string, args ...any) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: fmt.Sprintf(format, args...)}})
}

// statusOf is the HTTP status of an application error code.
func statusOf(code string) int {
	switch code {
	case concierge.EINVALID:
		return http.StatusBadRequest
	case concierge.ENOTFOUND:
		return http.StatusNotFound
	case concierge.ECONFLICT:
		return http.StatusConflict
	case concierge.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case concierge.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// maxJSONBody bounds request bodies: the lobby's are a few short strings.
const maxJSONBody = 4 << 10

// decodeJSONBody reads one JSON object into v. It writes the error
// response itself (415 for another content type, 413 for a body over
// limit, 400 for malformed JSON or unknown fields) and reports false.
// Requiring a JSON content type also keeps plain HTML forms on other
// sites from posting here: browsers cannot send it cross-site without a
// CORS preflight, which this server never grants.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeJSONError(w, http.StatusUnsupportedMediaType, concierge.EINVALID, "the body must be JSON (Content-Type: application/json)")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, concierge.EINVALID, "the body is larger than %d bytes", limit)
			return false
		}
		writeJSONError(w, http.StatusBadRequest, concierge.EINVALID, "bad JSON body: %v", err)
		return false
	}
	if dec.More() {
		writeJSONError(w, http.StatusBadRequest, concierge.EINVALID, "bad JSON body: more than one value")
		return false
	}
	return true
}
