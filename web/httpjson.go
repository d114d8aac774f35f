package web

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"concierge"
	"concierge/internal/httpjson"
)

// errorBody is the shape of every error response, as clients decode it:
// {"error":{"code":...,"message":...}} with the codes of error.go (a 415's
// is httpjson.CodeUnsupportedMediaType, as the kiosk API's).
type errorBody struct {
	Error httpjson.Error `json:"error"`
}

// writeJSON writes v with status (httpjson.WriteJSON).
func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.WriteJSON(w, status, v) }

// writeJSONError writes a caller-safe error found here:
// {"error":{"code":...,"message":...}}.
func writeJSONError(w http.ResponseWriter, status int, code, format string, args ...any) {
	httpjson.WriteError(w, httpjson.Errorf(status, code, format, args...))
}

// writeError writes an application error with its status
// (httpjson.FromError): internal errors never show their text.
func writeError(w http.ResponseWriter, err error) { httpjson.WriteError(w, httpjson.FromError(err)) }

// maxJSONBody bounds request bodies: the lobby's are a few short strings.
const maxJSONBody = 4 << 10

// decodeJSONBody reads one JSON object into v. It writes the error
// response itself (415 unsupported_media_type for another content type,
// as the kiosk API answers; 413 for a body over limit, 400 for malformed
// JSON or unknown fields, both invalid) and reports false.
// Requiring a JSON content type also keeps plain HTML forms on other
// sites from posting here: browsers cannot send it cross-site without a
// CORS preflight, which this server never grants.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeJSONError(w, http.StatusUnsupportedMediaType, httpjson.CodeUnsupportedMediaType, "the body must be JSON (Content-Type: application/json)")
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
