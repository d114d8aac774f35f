package kiosk

import (
	"net/http"
	"testing"
)

// The fuzz targets drive the real server (real engine, real database)
// with arbitrary bodies and check that every answer is a clean JSON 2xx
// or 4xx: no panic, no 500, no answer without an error code. The seed
// corpus is in testdata/fuzz/<target>/; `make test` runs each for a few
// seconds.

// checkReply fails on anything but a well-formed answer with an allowed
// status.
func checkReply(t *testing.T, r reply, allowed ...int) {
	t.Helper()
	ok := false
	for _, s := range allowed {
		ok = ok || r.status == s
	}
	if !ok {
		t.Fatalf("status %d not among %v: %s", r.status, allowed, r.raw)
	}
	if r.status >= 400 {
		e, _ := r.body["error"].(map[string]any)
		if e == nil || e["code"] == "" || e["message"] == "" {
			t.Fatalf("error without code or message: %s", r.raw)
		}
	}
}

// unlimited lifts the rate limit: the fuzzer sends thousands of requests
// while the test clock stands still.
func unlimited(o *Options) { o.Config.Burst = 1 << 30 }

var uploadTypes = []string{"image/jpeg", "image/png", "multipart/form-data; boundary=fuzz", "text/plain", "", "image/jpeg; charset=x"}

func FuzzUploadPhoto(f *testing.F) {
	f.Add(uint8(0), []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"))
	f.Add(uint8(1), blankPNG(f))
	f.Add(uint8(2), []byte("--fuzz\r\nContent-Disposition: form-data; name=\"photo\"\r\nContent-Type: image/png\r\n\r\nabc\r\n--fuzz--\r\n"))
	f.Add(uint8(3), []byte("hello"))
	fx := newFixture(f, unlimited)
	sid := fx.start(f, "C-fuzz")
	fx.consent(f, sid)
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		ct := uploadTypes[int(kind)%len(uploadTypes)]
		r := fx.do(t, "POST", "/v1/enrollments/"+sid+"/photos", tokenA, ct, body)
		checkReply(t, r, http.StatusCreated, http.StatusBadRequest, http.StatusConflict,
			http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity)
		if r.status == http.StatusConflict && r.code() != codeTooManyPhotos {
			t.Fatalf("conflict %s", r.raw)
		}
		if r.status == http.StatusCreated && r.body["accepted"] != true {
			t.Fatalf("201 for a photo not accepted: %s", r.raw)
		}
		// A photo the fuzzer made acceptable still needs its own person:
		// keep the session open for the next input.
		if r.code() == codeTooManyPhotos {
			ss := fx.srv.sessions.get(sid, fx.clock.Now())
			ss.mu.Lock()
			ss.faces = nil
			ss.mu.Unlock()
		}
	})
}

var jsonOps = []struct{ method, path string }{
	{"POST", "/v1/enrollments"},
	{"POST", "/v1/enrollments/{sid}/consent"},
	{"POST", "/v1/enrollments/{sid}/finish"},
	{"POST", "/v1/customers/C1/withdraw"},
}

func FuzzJSONBodies(f *testing.F) {
	f.Add(uint8(0), []byte(`{"customer_id":"C1","display_name":"王女士","staff":{"name":"staff-17","password":"clerk-password-17"}}`))
	f.Add(uint8(1), []byte(`{"text_version":"2026-12-v3","language":"zh","accepted":true}`))
	f.Add(uint8(2), []byte(`{}`))
	f.Add(uint8(3), []byte(`{"confirm":true,"reference":"CB-1"}`))
	f.Add(uint8(0), []byte(`{"customer_id":`))
	f.Add(uint8(1), []byte(`{"accepted":"yes"}`))
	fx := newFixture(f, unlimited)
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		// A fresh session for every input from another kiosk, so that a
		// start the fuzzer made valid cannot end it.
		r := fx.json(t, "POST", "/v1/enrollments", tokenB, startBody("C-fuzz", "x"))
		sid, _ := r.body["session_id"].(string)
		if sid == "" {
			// An earlier input made op 0 valid and opened C-fuzz's session
			// at the other kiosk, so this start is refused (clearly, which
			// is checked); there is no session to send the input to.
			checkReply(t, r, http.StatusConflict, http.StatusTooManyRequests)
			return
		}
		o := jsonOps[int(op)%len(jsonOps)]
		path := o.path
		if len(path) > 16 && path[:16] == "/v1/enrollments/" {
			path = "/v1/enrollments/" + sid + path[len("/v1/enrollments/{sid}"):]
		}
		tok := tokenA
		if o.path != "/v1/enrollments" && o.path != "/v1/customers/C1/withdraw" {
			tok = tokenB
		}
		r = fx.do(t, o.method, path, tok, "application/json", body)
		checkReply(t, r, http.StatusOK, http.StatusCreated, http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound,
			http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusTooManyRequests)
	})
}
