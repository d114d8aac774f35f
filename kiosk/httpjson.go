package kiosk

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"concierge"
	"concierge/internal/httpjson"
)

// apiError is an HTTP error with a stable machine code; kiosks branch on
// code and show message. detail carries structured facts (the per-photo
// feedback of a refused photo).
type apiError = httpjson.Error

func errorf(status int, code, format string, args ...any) *apiError {
	return httpjson.Errorf(status, code, format, args...)
}

// Error codes beyond the per-photo and liveness reasons.
const (
	codeBadRequest         = "bad_request"
	codeUnauthorized       = "unauthorized"
	codeForbidden          = "forbidden"
	codeNotFound           = "not_found"
	codeMethod             = "method_not_allowed"
	codeTooLarge           = "too_large"
	codeMediaType          = httpjson.CodeUnsupportedMediaType
	codeInvalid            = "invalid"
	codeRateLimited        = "rate_limited"
	codeConsentRequired    = "consent_required"
	codeStaleConsent       = "stale_consent_text"
	codeMorePhotos         = "more_photos_needed"
	codeLivenessNeeded     = "liveness_required"
	codeStaffReview        = "staff_review"
	codeTooManyPhotos      = "too_many_photos"
	codeTooManyAttempts    = "too_many_attempts"
	codeDifferentPerson    = "different_person"
	codeLivenessFailed     = "liveness_failed"
	codeStaffUnauthorized  = "staff_unauthorized"
	codeSupervisorRequired = "supervisor_required"
	codeAccessRequired     = "access_required"
	codeChallengeRequired  = "challenge_required"
	codeChallengeExpired   = "challenge_expired"
	codeNotPresent         = "not_present"
	codeInternal           = "internal"
	codeUnavailable        = "unavailable"
)

// fromDomain translates an application error into its HTTP form
// (httpjson.FromError), in the kiosk API's words: it says "forbidden"
// where the application says "unauthorized" (docs/kiosk.md). Internal
// errors never show their text.
func fromDomain(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	e := httpjson.FromError(err)
	if e.Code == concierge.EUNAUTHORIZED {
		e.Code = codeForbidden
	}
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.WriteJSON(w, status, v) }

func writeError(w http.ResponseWriter, e *apiError) {
	retryAfter(w, e)
	httpjson.WriteError(w, e)
}

// mediaType returns the request's media type, lower case, without
// parameters; "" when absent or unparsable.
func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

// maxJSONBytes bounds every JSON body: they hold a few short strings.
const maxJSONBytes = 16 << 10

// decodeJSON reads exactly one JSON object into v: the content type must
// be JSON, unknown fields and trailing data are refused, and the body may
// not exceed maxJSONBytes.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *apiError {
	if mt := mediaType(r); mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, codeMediaType, "content type %q: want application/json", r.Header.Get("Content-Type"))
	}
	if r.ContentLength > maxJSONBytes {
		return errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "JSON body of %d bytes exceeds %d", r.ContentLength, maxJSONBytes)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := jsonError(err); e.Status == http.StatusRequestEntityTooLarge {
				return e
			}
		}
		return errorf(http.StatusBadRequest, codeBadRequest, "malformed JSON: more than one value in the body")
	}
	return nil
}

func jsonError(err error) *apiError {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "JSON body exceeds %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, codeBadRequest, "malformed JSON: empty body")
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, codeBadRequest, "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.As(err, &te):
		return errorf(http.StatusBadRequest, codeBadRequest, "malformed JSON: field %q must be %s", te.Field, te.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return errorf(http.StatusBadRequest, codeBadRequest, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return errorf(http.StatusBadRequest, codeBadRequest, "malformed JSON: %v", err)
}
