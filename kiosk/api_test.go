package kiosk

import (
	"context"
	"strings"
	"testing"
)

// enrollPerson runs a whole enrollment at kiosk A and returns the finish
// reply.
func (f *fixture) enrollPerson(t testing.TB, customer string, p person) reply {
	t.Helper()
	sid := f.start(t, customer)
	f.consent(t, sid)
	accepted := 0
	for i, ph := range p.photos {
		r := f.do(t, "POST", "/v1/enrollments/"+sid+"/photos", tokenA, "image/jpeg", ph)
		if r.status == 201 {
			accepted++
		} else {
			t.Logf("photo %d refused: %s", i, r.raw)
		}
		if accepted == 3 {
			break
		}
	}
	if accepted < 3 {
		t.Fatalf("%s: only %d usable photos", customer, accepted)
	}
	want(t, "liveness", f.liveness(t, sid, p.liveness), 200, "")
	return f.do(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, "", nil)
}

// identify returns who the daemon's service recognises in a photo.
func (f *fixture) identify(t testing.TB, img []byte) string {
	t.Helper()
	ids, err := f.svc.Identify(context.Background(), img)
	if err != nil || len(ids) != 1 {
		t.Fatalf("identify: %d faces, %v", len(ids), err)
	}
	if !ids[0].Known {
		return ""
	}
	return ids[0].Match.CustomerID
}

// The whole journey: consent, photos with feedback, liveness, finish; the
// service recognises the customer at once; withdrawal forgets them at once.
func TestEnrollAndWithdraw(t *testing.T) {
	f := newFixture(t)
	p := d12(t)
	probe := clipFrames(t, "d12.mp4", 150, 1, 1)[0] // a later moment of the clip, never uploaded
	if id := f.identify(t, probe); id != "" {
		t.Fatalf("recognised %q before enrollment", id)
	}

	// The consent text is served, with the hash the consent will record.
	r := want(t, "consent text", f.do(t, "GET", "/v1/consent-text?lang=en", tokenA, "", nil), 200, "")
	if txt, _ := r.body["text"].(string); !strings.Contains(txt, "128 numbers") || r.body["sha256"] == "" {
		t.Fatalf("consent text: %s", r.raw)
	}
	want(t, "consent text zh", f.do(t, "GET", "/v1/consent-text?lang=zh", tokenA, "", nil), 200, "")
	want(t, "consent text fr", f.do(t, "GET", "/v1/consent-text?lang=fr", tokenA, "", nil), 422, codeInvalid)

	sid := f.start(t, "C1")
	// No face is looked at before consent.
	want(t, "photo before consent", f.do(t, "POST", "/v1/enrollments/"+sid+"/photos", tokenA, "image/jpeg", p.photos[0]), 409, codeConsentRequired)
	want(t, "guidance before consent", f.do(t, "POST", "/v1/enrollments/"+sid+"/guidance", tokenA, "image/jpeg", p.photos[0]), 409, codeConsentRequired)
	// She agrees to be recognised in every branch: the scope is recorded
	// with the text she read.
	zh := f.srv.consent["zh"]
	want(t, "consent", f.json(t, "POST", "/v1/enrollments/"+sid+"/consent", tokenA, map[string]any{
		"text_version": zh.Version, "language": "zh", "sha256": zh.SHA256, "accepted": true, "scope": "network"}), 200, "")
	consentAt := f.clock.Now()

	// Guidance reports what it sees and keeps nothing.
	g := want(t, "guidance", f.do(t, "POST", "/v1/enrollments/"+sid+"/guidance", tokenA, "image/jpeg", p.photos[0]), 200, "")
	if g.body["hint"] != "ok" || g.body["faces"].(float64) != 1 || g.body["quality"] == nil || g.body["photos_accepted"].(float64) != 0 {
		t.Fatalf("guidance: %s", g.raw)
	}

	// Per-photo feedback; finish refuses until everything is there.
	want(t, "finish without photos", f.do(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, "", nil), 409, codeMorePhotos)
	for i := 0; i < 3; i++ {
		r := want(t, "photo", f.do(t, "POST", "/v1/enrollments/"+sid+"/photos", tokenA, "image/jpeg", p.photos[i]), 201, "")
		q, _ := r.body["quality"].(map[string]any)
		if r.body["accepted"] != true || q["size_px"].(float64) < 80 || q["sharpness"] == nil || q["frontal"] == nil || q["brightness"] == nil {
			t.Fatalf("photo %d feedback: %s", i, r.raw)
		}
		if r.body["photos_accepted"].(float64) != float64(i+1) || r.body["liveness"] != "pending" {
			t.Fatalf("photo %d counters: %s", i, r.raw)
		}
	}
	want(t, "finish without liveness", f.do(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, "", nil), 409, codeLivenessNeeded)
	f.nothingStored(t, "C1")

	lv := want(t, "liveness", f.liveness(t, sid, p.liveness), 200, "")
	if lv.body["live"] != true {
		t.Fatalf("liveness: %s", lv.raw)
	}
	st := want(t, "state", f.do(t, "GET", "/v1/enrollments/"+sid, tokenA, "", nil), 200, "")
	if st.body["ready"] != true || st.body["liveness"] != "passed" {
		t.Fatalf("state before finish: %s", st.raw)
	}
	fin := want(t, "finish", f.do(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, "application/json", []byte("{}")), 201, "")
	if fin.body["templates"].(float64) != 3 {
		t.Fatalf("finish: %s", fin.raw)
	}
	want(t, "finish twice", f.do(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, "", nil), 404, codeNotFound)

	// Recognised at once, from a frame the kiosk never saw.
	if id := f.identify(t, probe); id != "C1" {
		t.Fatalf("after enrollment identify = %q, want C1", id)
	}
	// The consent status needs the customer present: her face, live.
	acc := want(t, "access by face", f.access(t, "C1", p.liveness), 200, "")
	token, _ := acc.body["access_token"].(string)
	if acc.body["by"] != "face" || len(token) < 32 {
		t.Fatalf("access: %s", acc.raw)
	}
	cs := want(t, "consent status", f.do(t, "GET", "/v1/customers/C1/consent", tokenA, "", nil, accessHeader, token), 200, "")
	if cs.body["status"] != "active" || cs.body["recognised"] != true || strings.Contains(cs.raw, "王") {
		t.Fatalf("consent status: %s", cs.raw)
	}
	consents, err := f.db.Consents(context.Background(), "C1")
	if err != nil || len(consents) != 1 || consents[0].Channel != "kiosk" || consents[0].Language != "zh" ||
		!strings.HasPrefix(consents[0].TextVersion, BuiltinConsentVersion+"@sha256:") || !strings.Contains(consents[0].Reference, "staff-17") ||
		consents[0].Scope != "network" {
		t.Fatalf("stored consent: %+v, %v", consents, err)
	}
	if !consents[0].GrantedAt.Equal(consentAt) {
		t.Errorf("consent time %v, want the moment of consent %v", consents[0].GrantedAt, consentAt)
	}

	// Withdrawal needs a confirmation and the customer present, then
	// deletes at once.
	want(t, "withdraw unconfirmed", f.json(t, "POST", "/v1/customers/C1/withdraw", tokenA, map[string]any{"access_token": token}), 422, codeInvalid)
	want(t, "withdraw without access", f.json(t, "POST", "/v1/customers/C1/withdraw", tokenA, map[string]any{"confirm": true}), 403, codeAccessRequired)
	want(t, "withdraw with another kiosk's access", f.json(t, "POST", "/v1/customers/C1/withdraw", tokenB, map[string]any{"confirm": true, "access_token": token}), 403, codeAccessRequired)
	// Every decision is in the audit log, with no name and no biometric data.
	// (Read before the withdrawal, which unlinks these rows from the customer.)
	var actions []string
	for _, e := range f.audit(t, "C1") {
		actions = append(actions, e.Action+":"+e.Outcome)
		if strings.Contains(e.Detail, "王") {
			t.Errorf("audit row carries the name: %+v", e)
		}
	}
	got := strings.Join(actions, " ")
	for _, a := range []string{"start:ok", "consent:ok", "photo:ok", "challenge:ok", "liveness:pass", "finish:ok", "access:ok", "status:ok", "withdraw:refused"} {
		if !strings.Contains(got, a) {
			t.Errorf("audit lacks %s: %s", a, got)
		}
	}
	w := want(t, "withdraw", f.json(t, "POST", "/v1/customers/C1/withdraw", tokenA, map[string]any{"confirm": true, "access_token": token}), 200, "")
	if w.body["templates_deleted"].(float64) != 3 {
		t.Fatalf("withdraw: %s", w.raw)
	}
	if id := f.identify(t, probe); id != "" {
		t.Fatalf("after withdrawal identify = %q, want nobody", id)
	}
	if n := f.rows(t, "templates", "C1"); n != 0 {
		t.Fatalf("%d templates left after withdrawal", n)
	}
	want(t, "access used up by the withdrawal", f.do(t, "GET", "/v1/customers/C1/consent", tokenA, "", nil, accessHeader, token), 403, codeAccessRequired)
	sup := want(t, "access by supervisor", f.json(t, "POST", "/v1/customers/C1/access", tokenA, map[string]any{"supervisor": supervisor()}), 200, "")
	cs = want(t, "consent status after", f.do(t, "GET", "/v1/customers/C1/consent", tokenA, "", nil, accessHeader, sup.body["access_token"].(string)), 200, "")
	if cs.body["status"] != "withdrawn" || cs.body["recognised"] != false {
		t.Fatalf("consent status after withdrawal: %s", cs.raw)
	}
	want(t, "withdraw unknown", f.json(t, "POST", "/v1/customers/C404/withdraw", tokenA, map[string]any{"confirm": true, "supervisor": supervisor()}), 404, codeNotFound)

	// The withdrawal is recorded under the customer; the enrollment's trail
	// no longer is (the erasure removed the customer id from it).
	var after []string
	for _, e := range f.audit(t, "C1") {
		after = append(after, e.Action+":"+e.Outcome)
	}
	if got := strings.Join(after, " "); !strings.Contains(got, "withdraw:ok") || strings.Contains(got, "start:") || strings.Contains(got, "photo:") {
		t.Errorf("audit under C1 after the withdrawal: %s", got)
	}

}
