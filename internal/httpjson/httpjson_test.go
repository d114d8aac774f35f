package httpjson_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"concierge"
	"concierge/internal/httpjson"
)

func TestStatus(t *testing.T) {
	for code, want := range map[string]int{
		concierge.EINVALID:      http.StatusUnprocessableEntity,
		concierge.ENOTFOUND:     http.StatusNotFound,
		concierge.ECONFLICT:     http.StatusConflict,
		concierge.EUNAUTHORIZED: http.StatusForbidden,
		concierge.EUNAVAILABLE:  http.StatusServiceUnavailable,
		concierge.EINTERNAL:     http.StatusInternalServerError,
		"something new":         http.StatusInternalServerError,
	} {
		if got := httpjson.Status(code); got != want {
			t.Errorf("Status(%q) = %d, want %d", code, got, want)
		}
	}
}

// An application error keeps its code and caller-safe message through
// wrapping; an HTTP error in the chain is used as it is; an internal
// error shows nothing of itself.
func TestFromError(t *testing.T) {
	coded := concierge.Errorf(concierge.ECONFLICT, "alert %s was already claimed", "01A")
	coded.Detail = map[string]any{"by": "Li"}
	for _, c := range []struct {
		err    error
		status int
		code   string
		msg    string
	}{
		{fmt.Errorf("claim: %w", coded), http.StatusConflict, concierge.ECONFLICT, "alert 01A was already claimed"},
		{fmt.Errorf("handler: %w", httpjson.Errorf(http.StatusTooManyRequests, "rate_limited", "slow down")), http.StatusTooManyRequests, "rate_limited", "slow down"},
		{errors.New("sql: database is locked at /var/lib/concierge/c.db"), http.StatusInternalServerError, concierge.EINTERNAL, "internal error"},
	} {
		e := httpjson.FromError(c.err)
		if e.Status != c.status || e.Code != c.code || e.Message != c.msg {
			t.Errorf("%v: got %d %q %q", c.err, e.Status, e.Code, e.Message)
		}
	}
	if e := httpjson.FromError(coded); e.Detail["by"] != "Li" {
		t.Errorf("detail lost: %v", e.Detail)
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	httpjson.WriteError(w, httpjson.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "want <application/json>"))
	if w.Code != http.StatusUnsupportedMediaType || w.Header().Get("Content-Type") != "application/json; charset=utf-8" ||
		w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	if got, want := w.Body.String(), `{"error":{"code":"unsupported_media_type","message":"want <application/json>"}}`+"\n"; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	var body struct {
		Error map[string]any `json:"error"`
	}
	w = httptest.NewRecorder()
	e := httpjson.Errorf(http.StatusUnprocessableEntity, "no_face", "no face")
	e.Detail = map[string]any{"feedback": []string{"no_face"}}
	httpjson.WriteError(w, e)
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error["detail"] == nil {
		t.Errorf("detail missing: %s (%v)", w.Body, err)
	}
}
