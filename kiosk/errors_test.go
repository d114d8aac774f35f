package kiosk

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"concierge/internal/testenv"
	"concierge/sqlite"
)

func TestAuthAndRoles(t *testing.T) {
	f := newFixture(t)
	r := want(t, "no token", f.do(t, "POST", "/v1/enrollments", "", "application/json", []byte(`{}`)), 401, codeUnauthorized)
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: %v", r.header)
	}
	want(t, "wrong token", f.do(t, "GET", "/v1/consent-text", "not-a-kiosk-token-0123456789abcdef", "", nil), 401, codeUnauthorized)
	want(t, "basic auth", f.do(t, "GET", "/v1/consent-text", "", "", nil), 401, codeUnauthorized)

	// The kiosk role enrolls and withdraws; it never lists customers or
	// reads alerts.
	for _, path := range []string{"/v1/customers", "/v1/alerts", "/v1/audit", "/v1/enrollments/x/y"} {
		want(t, "kiosk role "+path, f.do(t, "GET", path, tokenA, "", nil), 403, codeForbidden)
	}
	r = want(t, "wrong method", f.do(t, "PUT", "/v1/enrollments", tokenA, "", nil), 405, codeMethod)
	if r.header.Get("Allow") != "POST" {
		t.Errorf("Allow = %q", r.header.Get("Allow"))
	}

	// A session belongs to the kiosk that started it.
	sid := f.start(t, "C1")
	want(t, "other kiosk reads", f.do(t, "GET", "/v1/enrollments/"+sid, tokenB, "", nil), 403, codeForbidden)
	want(t, "other kiosk aborts", f.do(t, "DELETE", "/v1/enrollments/"+sid, tokenB, "", nil), 403, codeForbidden)
	want(t, "owner reads", f.do(t, "GET", "/v1/enrollments/"+sid, tokenA, "", nil), 200, "")
	want(t, "unknown session", f.do(t, "GET", "/v1/enrollments/0000", tokenA, "", nil), 404, codeNotFound)

	// Guessing tokens is throttled per address.
	var last reply
	for i := 0; i < 12; i++ {
		last = f.do(t, "GET", "/v1/consent-text", "guess-"+strings.Repeat("x", 30), "", nil)
	}
	want(t, "token guessing", last, 429, codeRateLimited)
	if last.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	es, _ := f.db.Audit(context.Background(), sqlite.AuditFilter{Action: "auth"})
	if len(es) < 10 || es[0].Actor != "-" || es[0].Outcome != "refused" {
		t.Fatalf("failed sign-ins audited: %d rows, first %+v", len(es), es)
	}
	es, _ = f.db.Audit(context.Background(), sqlite.AuditFilter{Action: "access"})
	if len(es) < 5 {
		t.Fatalf("refused accesses audited: %+v", es)
	}
}

func TestRateLimitPerKiosk(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Config.RatePerSecond, o.Config.Burst = 1, 3 })
	for i := 0; i < 3; i++ {
		want(t, "within burst", f.do(t, "GET", "/v1/consent-text", tokenA, "", nil), 200, "")
	}
	r := want(t, "over the rate", f.do(t, "GET", "/v1/consent-text", tokenA, "", nil), 429, codeRateLimited)
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1", r.header.Get("Retry-After"))
	}
	want(t, "another kiosk has its own bucket", f.do(t, "GET", "/v1/consent-text", tokenB, "", nil), 200, "")
	f.clock.Add(time.Second)
	want(t, "refilled", f.do(t, "GET", "/v1/consent-text", tokenA, "", nil), 200, "")
	es, _ := f.db.Audit(context.Background(), sqlite.AuditFilter{Action: "rate_limit"})
	if len(es) != 1 || es[0].Actor != "kiosk-a" {
		t.Fatalf("rate limiting audited: %+v", es)
	}
}

// chunked hides the length, so only the size limit while reading stops it.
type chunked struct{ io.Reader }

func TestBadInput(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Config.MaxUploadBytes = 200 << 10 })
	sid := f.start(t, "C1")
	photos := "/v1/enrollments/" + sid + "/photos"

	// JSON bodies: syntax, unknown fields, types, trailing data, size,
	// content type.
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"truncated", `{"customer_id":`, 400, codeBadRequest},
		{"not an object", `[1,2]`, 400, codeBadRequest},
		{"unknown field", `{"customer_id":"C2","display_name":"x","admin":true}`, 400, codeBadRequest},
		{"wrong type", `{"customer_id":7}`, 400, codeBadRequest},
		{"two objects", `{"customer_id":"C2"}{"customer_id":"C3"}`, 400, codeBadRequest},
		{"empty", ``, 400, codeBadRequest},
		{"too large", `{"display_name":"` + strings.Repeat("x", 20<<10) + `"}`, 413, codeTooLarge},
		{"bad customer id", `{"customer_id":"C 1; DROP","display_name":"x","staff":{"name":"staff-17","password":"clerk-password-17"}}`, 422, codeInvalid},
		{"no verification", `{"customer_id":"C2","display_name":"x"}`, 422, codeInvalid},
		{"free-text verifier", `{"customer_id":"C2","display_name":"x","verified_by":"staff-17"}`, 422, codeInvalid},
		{"unknown staff", `{"customer_id":"C2","display_name":"x","staff":{"name":"staff-99","password":"clerk-password-17"}}`, 403, codeStaffUnauthorized},
		{"wrong staff password", `{"customer_id":"C2","display_name":"x","staff":{"name":"staff-17","password":"guess"}}`, 403, codeStaffUnauthorized},
		{"no name", `{"customer_id":"C2","display_name":" ","staff":{"name":"staff-17","password":"clerk-password-17"}}`, 422, codeInvalid},
		{"control characters", `{"customer_id":"C2","display_name":"x","staff":{"name":"s\u0007","password":"x"}}`, 422, codeInvalid},
	} {
		want(t, "start "+tc.name, f.do(t, "POST", "/v1/enrollments", tokenA, "application/json", []byte(tc.body)), tc.status, tc.code)
	}
	want(t, "start as text", f.do(t, "POST", "/v1/enrollments", tokenA, "text/plain", []byte(`{}`)), 415, codeMediaType)

	// Consent: only an explicit yes to the current text.
	txt := f.srv.consent["en"]
	consent := "/v1/enrollments/" + sid + "/consent"
	want(t, "declined", f.json(t, "POST", consent, tokenA, map[string]any{"text_version": txt.Version, "language": "en", "accepted": false}), 422, codeInvalid)
	want(t, "no answer", f.json(t, "POST", consent, tokenA, map[string]any{"text_version": txt.Version, "language": "en"}), 422, codeInvalid)
	want(t, "old text", f.json(t, "POST", consent, tokenA, map[string]any{"text_version": "2019-v0", "language": "en", "accepted": true}), 409, codeStaleConsent)
	want(t, "edited text", f.json(t, "POST", consent, tokenA, map[string]any{"text_version": txt.Version, "language": "en", "sha256": strings.Repeat("0", 64), "accepted": true}), 409, codeStaleConsent)
	want(t, "unknown language", f.json(t, "POST", consent, tokenA, map[string]any{"text_version": txt.Version, "language": "xx", "accepted": true}), 422, codeInvalid)
	want(t, "unknown scope", f.json(t, "POST", consent, tokenA, map[string]any{"text_version": txt.Version, "language": "en", "accepted": true, "scope": "world"}), 422, codeInvalid)
	want(t, "photo before consent", f.do(t, "POST", photos, tokenA, "image/jpeg", blankPNG(t)), 409, codeConsentRequired)
	f.consent(t, sid)

	// Photos: size, media type, form shape, and what the face detector says.
	big := make([]byte, 300<<10)
	rand.Read(big)
	want(t, "photo too large", f.do(t, "POST", photos, tokenA, "image/jpeg", big), 413, codeTooLarge)
	req, _ := http.NewRequest("POST", f.ts.URL+photos, chunked{bytes.NewReader(big)})
	req.Header.Set("Authorization", "Bearer "+tokenA)
	req.Header.Set("Content-Type", "image/jpeg")
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("chunked photo too large: %d", resp.StatusCode)
	}
	want(t, "photo as text", f.do(t, "POST", photos, tokenA, "text/plain", []byte("hello")), 415, codeMediaType)
	want(t, "photo without type", f.do(t, "POST", photos, tokenA, "", []byte("hello")), 415, codeMediaType)
	want(t, "empty photo", f.do(t, "POST", photos, tokenA, "image/jpeg", nil), 400, codeBadRequest)
	want(t, "not an image", f.do(t, "POST", photos, tokenA, "image/jpeg", []byte("hello, I am not a JPEG")), 422, "unreadable")
	body, ct := testenv.ImageForm(t, "picture", [][]byte{blankPNG(t)})
	want(t, "form with the wrong field", f.do(t, "POST", photos, tokenA, ct, body), 400, codeBadRequest)
	body, ct = testenv.ImageForm(t, "photo", [][]byte{blankPNG(t), blankPNG(t)})
	want(t, "form with two photos", f.do(t, "POST", photos, tokenA, ct, body), 422, codeInvalid)

	r := want(t, "no face", f.do(t, "POST", photos, tokenA, "image/png", blankPNG(t)), 422, "no_face")
	if fb := r.body["error"].(map[string]any)["detail"].(map[string]any)["feedback"].(map[string]any); fb["hint"] != "no_face" || fb["faces"].(float64) != 0 {
		t.Fatalf("no face feedback: %s", r.raw)
	}
	// sample1.jpg is a group photo: every face in it is named in the count.
	body, ct = testenv.ImageForm(t, "photo", [][]byte{testenv.ReadPhoto(t, "sample1.jpg")})
	r = want(t, "several faces", f.do(t, "POST", photos, tokenA, ct, body), 422, "several_faces")
	fb := r.body["error"].(map[string]any)["detail"].(map[string]any)["feedback"].(map[string]any)
	if fb["faces"].(float64) < 2 || fb["hint"] != "one_person" || !strings.Contains(r.raw, "alone") {
		t.Fatalf("several faces feedback: %s", r.raw)
	}

	// Liveness: a challenge first, then a form of frames, enough of them,
	// neither too soon nor too late by the server's clock.
	lv := "/v1/enrollments/" + sid + "/liveness"
	six := make([][]byte, 6)
	for i := range six {
		six[i] = blankPNG(t)
	}
	body, ct = testenv.ImageForm(t, "frame", six)
	want(t, "liveness without a challenge", f.do(t, "POST", lv, tokenA, ct, body), 409, codeChallengeRequired)
	want(t, "challenge", f.do(t, "POST", lv+"/challenge", tokenA, "", nil), 201, "")
	want(t, "frames at once", f.do(t, "POST", lv, tokenA, ct, body), 422, codeLivenessFailed)
	want(t, "challenge used up", f.do(t, "POST", lv, tokenA, ct, body), 409, codeChallengeRequired)
	want(t, "challenge", f.do(t, "POST", lv+"/challenge", tokenA, "", nil), 201, "")
	f.clock.Add(f.srv.cfg.ChallengeTTL + time.Second)
	want(t, "frames too late", f.do(t, "POST", lv, tokenA, ct, body), 409, codeChallengeExpired)
	want(t, "liveness as one image", f.do(t, "POST", lv, tokenA, "image/jpeg", blankPNG(t)), 415, codeMediaType)
	body, ct = testenv.ImageForm(t, "frame", [][]byte{blankPNG(t), blankPNG(t)})
	want(t, "two frames", f.do(t, "POST", lv, tokenA, ct, body), 422, codeInvalid)
	frames := make([][]byte, 17)
	for i := range frames {
		frames[i] = blankPNG(t)
	}
	body, ct = testenv.ImageForm(t, "frame", frames)
	want(t, "seventeen frames", f.do(t, "POST", lv, tokenA, ct, body), 422, codeInvalid)

	// Finish: refused until ready, and takes no fields.
	want(t, "finish with a body", f.do(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, "application/json", []byte(`{"force":true}`)), 400, codeBadRequest)
	want(t, "challenge after the attempts", f.do(t, "POST", lv+"/challenge", tokenA, "", nil), 201, "")
	want(t, "no attempts left", f.do(t, "POST", lv+"/challenge", tokenA, "", nil), 409, codeTooManyAttempts)
	want(t, "finish early", f.do(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, "", nil), 409, codeMorePhotos)

	var refused []string
	for _, e := range f.audit(t, "C1") {
		if e.Action == "photo" {
			refused = append(refused, e.Outcome+":"+e.Detail)
		}
	}
	if got := strings.Join(refused, " "); !strings.Contains(got, "refused:no_face") || !strings.Contains(got, "refused:several_faces") || !strings.Contains(got, "refused:unreadable") {
		t.Fatalf("refused photos audited as %q", got)
	}
	f.nothingStored(t, "C1")
}

// A face enrolled under one customer id cannot be enrolled under another:
// the kiosk is told that staff must review it, and only the audit log
// names the other customer.
func TestDuplicateFaceNeedsStaffReview(t *testing.T) {
	f := newFixture(t)
	p := d12(t)
	want(t, "first enrollment", f.enrollPerson(t, "C1", p), 201, "")
	// A consent that names no scope keeps the face on this box.
	if cs, err := f.db.Consents(context.Background(), "C1"); err != nil || len(cs) != 1 || cs[0].Scope != "branch" {
		t.Fatalf("default scope: %+v %v", cs, err)
	}
	r := want(t, "second id, same face", f.enrollPerson(t, "C2", p), 409, codeStaffReview)
	if strings.Contains(r.raw, "C1") {
		t.Fatalf("the kiosk was told who the face belongs to: %s", r.raw)
	}
	f.nothingStored(t, "C2")
	var conflict *sqlite.AuditEntry
	for _, e := range f.audit(t, "C2") {
		if e.Action == "finish" {
			conflict = &e
		}
	}
	if conflict == nil || conflict.Outcome != "conflict" || !strings.Contains(conflict.Detail, "C1") {
		t.Fatalf("audit of the conflict: %+v", conflict)
	}
	// The same customer enrolling again (new photos) is no conflict.
	want(t, "re-enrollment", f.enrollPerson(t, "C1", p), 201, "")
}

func TestLivenessRefusals(t *testing.T) {
	f := newFixture(t)
	p := d12(t)
	sid := f.start(t, "C1")
	f.consent(t, sid)
	for i := 0; i < 3; i++ {
		want(t, "photo", f.do(t, "POST", "/v1/enrollments/"+sid+"/photos", tokenA, "image/jpeg", p.photos[i]), 201, "")
	}
	check := func(what string, frames [][]byte, hint string, left float64) {
		t.Helper()
		r := want(t, what, f.liveness(t, sid, frames), 422, codeLivenessFailed)
		d := r.body["error"].(map[string]any)["detail"].(map[string]any)
		if d["hint"] != hint || d["liveness_attempts_left"].(float64) != left {
			t.Fatalf("%s: %s", what, r.raw)
		}
	}
	// Her own photo, held still and then waved about: a flat picture.
	still := make([][]byte, 10)
	for i := range still {
		still[i] = p.photos[0]
	}
	check("still photo", still, "turn_head", 2)
	check("photo held up and moved", flatPhoto(t, p.photos[0]), "turn_head", 1)
	// A real person turning as asked, but not the person of the photos.
	check("someone else turning", d3(t).liveness, "same_person", 0)
	want(t, "attempts exhausted", f.do(t, "POST", "/v1/enrollments/"+sid+"/liveness/challenge", tokenA, "", nil), 409, codeTooManyAttempts)
	want(t, "finish without liveness", f.do(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, "", nil), 409, codeLivenessNeeded)
	var outcomes []string
	for _, e := range f.audit(t, "C1") {
		if e.Action == "liveness" {
			outcomes = append(outcomes, e.Outcome+" "+e.Detail)
		}
	}
	if len(outcomes) != 3 || !strings.HasPrefix(outcomes[2], "fail different_person") {
		t.Fatalf("liveness audit: %q", outcomes)
	}
	f.nothingStored(t, "C1")
}

// No input leaves a half-enrolled customer: abort, expiry, a replaced
// session, a withdrawal and a crash in the middle all leave nothing.
func TestNoHalfEnrollment(t *testing.T) {
	p := d12(t)
	f := newFixture(t)
	halfway := func(customer string, live bool) string {
		sid := f.start(t, customer)
		f.consent(t, sid)
		for i := 0; i < 3; i++ {
			want(t, "photo", f.do(t, "POST", "/v1/enrollments/"+sid+"/photos", tokenA, "image/jpeg", p.photos[i]), 201, "")
		}
		if live {
			want(t, "liveness", f.liveness(t, sid, p.liveness), 200, "")
		}
		return sid
	}

	sid := halfway("C1", true)
	want(t, "abort", f.do(t, "DELETE", "/v1/enrollments/"+sid, tokenA, "", nil), 204, "")
	want(t, "aborted", f.do(t, "GET", "/v1/enrollments/"+sid, tokenA, "", nil), 404, codeNotFound)
	f.nothingStored(t, "C1")

	sid = halfway("C2", true)
	f.clock.Add(f.srv.cfg.SessionTTL + time.Second)
	want(t, "expired", f.do(t, "GET", "/v1/enrollments/"+sid, tokenA, "", nil), 404, codeNotFound)
	f.srv.expire()
	want(t, "finish after expiry", f.do(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, "", nil), 404, codeNotFound)
	f.nothingStored(t, "C2")

	sid = halfway("C3", false)
	next := f.start(t, "C4") // the kiosk's next customer
	want(t, "replaced", f.do(t, "GET", "/v1/enrollments/"+sid, tokenA, "", nil), 404, codeNotFound)
	want(t, "abort next", f.do(t, "DELETE", "/v1/enrollments/"+next, tokenA, "", nil), 204, "")
	f.nothingStored(t, "C3")

	sid = halfway("C5", true)
	want(t, "withdraw while enrolling", f.json(t, "POST", "/v1/customers/C5/withdraw", tokenB, map[string]any{"confirm": true, "supervisor": supervisor()}), 404, codeNotFound)
	want(t, "session ended by withdrawal", f.do(t, "GET", "/v1/enrollments/"+sid, tokenA, "", nil), 404, codeNotFound)
	f.nothingStored(t, "C5")

	// A crash (here: the server shut down) with a ready enrollment.
	sid = halfway("C6", true)
	f.srv.Close()
	f.nothingStored(t, "C6")
	g := newFixture(t, func(o *Options) { o.Service = f.svc })
	want(t, "after restart", g.do(t, "GET", "/v1/enrollments/"+sid, tokenA, "", nil), 404, codeNotFound)

	var ends []string
	for _, c := range []string{"C1", "C2", "C3", "C5", "C6"} {
		for _, e := range f.audit(t, c) {
			if e.Action == "abort" || e.Action == "expire" {
				ends = append(ends, c+":"+e.Action+":"+e.Outcome)
			}
		}
	}
	if got := strings.Join(ends, " "); got != "C1:abort:ok C2:expire:expired C3:abort:replaced C5:abort:withdrawn C6:abort:shutdown" {
		t.Fatalf("session ends audited as %q", got)
	}
}
