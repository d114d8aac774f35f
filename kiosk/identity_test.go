package kiosk

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"concierge/enroll"
	"concierge/internal/testenv"
)

// finishAs finishes an enrollment of p under customer at kiosk A, with
// body as the finish request (nil: none), and returns the reply.
func (f *fixture) enrollAs(t testing.TB, customer, name string, p person, finish map[string]any) (string, reply) {
	t.Helper()
	r := want(t, "start", f.json(t, "POST", "/v1/enrollments", tokenA, startBody(customer, name)), 201, "")
	sid := r.body["session_id"].(string)
	f.consent(t, sid)
	accepted := 0
	for _, ph := range p.photos {
		if f.do(t, "POST", "/v1/enrollments/"+sid+"/photos", tokenA, "image/jpeg", ph).status == 201 {
			accepted++
		}
		if accepted == 3 {
			break
		}
	}
	if accepted < 3 {
		t.Fatalf("%s: only %d usable photos", customer, accepted)
	}
	want(t, "liveness", f.liveness(t, sid, p.liveness), 200, "")
	if finish == nil {
		return sid, f.do(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, "", nil)
	}
	return sid, f.json(t, "POST", "/v1/enrollments/"+sid+"/finish", tokenA, finish)
}

// storedName is the customer's name in the database.
func (f *fixture) storedName(t testing.TB, customer string) string {
	t.Helper()
	c, err := f.db.Customer(context.Background(), customer)
	if err != nil {
		t.Fatal(err)
	}
	return c.DisplayName
}

// A kiosk cannot attach another person's face to an enrolled customer
// number: refused, nothing stored, the name kept, an audit row; a
// supervisor's signature lets the same session finish.
func TestReenrollAnotherFaceNeedsSupervisor(t *testing.T) {
	f := newFixture(t)
	vip, other := d12(t), d3(t)
	want(t, "the customer enrolls", f.enrollPerson(t, "C1", vip), 201, "")
	probe := clipFrames(t, "d3.mp4", 120, 1, 1)[0] // the other person, a frame never uploaded
	if id := f.identify(t, probe); id != "" {
		t.Fatalf("the other person is recognised as %q before anything happened", id)
	}

	sid, r := f.enrollAs(t, "C1", "Impostor", other, nil)
	want(t, "another face under C1", r, 403, codeSupervisorRequired)
	if strings.Contains(r.raw, "C1") || strings.Contains(r.raw, "match") {
		t.Errorf("the refusal tells the kiosk about the enrolled customer: %s", r.raw)
	}
	if n := f.rows(t, "templates", "C1"); n != 3 {
		t.Fatalf("%d templates of C1 after a refused re-enrollment, want 3", n)
	}
	if n := f.rows(t, "consents", "C1"); n != 1 {
		t.Fatalf("%d consents of C1 after a refused re-enrollment, want 1", n)
	}
	if name := f.storedName(t, "C1"); name != "王女士" {
		t.Fatalf("name overwritten: %q", name)
	}
	if id := f.identify(t, probe); id != "" {
		t.Fatalf("the other person is recognised as %q after a refusal", id)
	}
	var refused bool
	for _, e := range f.audit(t, "C1") {
		refused = refused || e.Action == "finish" && e.Outcome == "refused" && strings.Contains(e.Detail, "does not match")
	}
	if !refused {
		t.Fatal("the refusal is not audited")
	}

	// A clerk's signature is not a supervisor's; a wrong password is no
	// signature; the session waits for a supervisor.
	fin := "/v1/enrollments/" + sid + "/finish"
	want(t, "clerk signs", f.json(t, "POST", fin, tokenA, map[string]any{
		"supervisor": map[string]string{"name": staffName, "password": staffPassword}}), 403, codeSupervisorRequired)
	want(t, "wrong supervisor password", f.json(t, "POST", fin, tokenA, map[string]any{
		"supervisor": map[string]string{"name": supervisorName, "password": "guess"}}), 403, codeStaffUnauthorized)
	if n := f.rows(t, "templates", "C1"); n != 3 {
		t.Fatalf("%d templates of C1 before approval", n)
	}
	ok := want(t, "supervisor approves", f.json(t, "POST", fin, tokenA, map[string]any{"supervisor": supervisor()}), 201, "")
	if ok.body["templates"].(float64) != 3 {
		t.Fatalf("approved: %s", ok.raw)
	}
	if name := f.storedName(t, "C1"); name != "Impostor" {
		t.Errorf("a supervisor's approval keeps the old name: %q", name)
	}
	var approved bool
	for _, e := range f.audit(t, "C1") {
		approved = approved || e.Action == "finish" && e.Outcome == "ok" && strings.Contains(e.Detail, "approved by supervisor "+supervisorName)
	}
	if !approved {
		t.Fatal("the approval is not audited with the supervisor's name")
	}
}

// The same person renewing their enrollment needs nobody: their new faces
// match their templates. The name typed at the kiosk does not replace the
// one on file.
func TestReenrollSamePerson(t *testing.T) {
	f := newFixture(t)
	p := d12(t)
	want(t, "first enrollment", f.enrollPerson(t, "C1", p), 201, "")
	_, r := f.enrollAs(t, "C1", "Someone Else", p, nil)
	want(t, "the same person again", r, 201, "")
	if n := f.rows(t, "templates", "C1"); n != 6 {
		t.Fatalf("%d templates, want 6", n)
	}
	if name := f.storedName(t, "C1"); name != "王女士" {
		t.Fatalf("a kiosk renamed the customer to %q", name)
	}
}

// Until a face has matched or a supervisor has signed, a kiosk learns
// nothing about whether a customer number is enrolled: every answer for
// an enrolled number equals the answer for an unknown one.
func TestProbingLooksTheSame(t *testing.T) {
	f := newFixture(t)
	p := d12(t)
	want(t, "enrollment", f.enrollPerson(t, "C1", p), 201, "")
	// Someone else at the kiosk, live, trying both numbers.
	other := d3(t)
	answers := map[string][]string{}
	for _, id := range []string{"C1", "C404"} {
		norm := func(r reply) string {
			return strings.ReplaceAll(fmt.Sprint(r.status/100)+r.code()+" "+errorMessage(r), id, "{id}")
		}
		answers[id] = append(answers[id],
			norm(f.do(t, "GET", "/v1/customers/"+id+"/consent", tokenA, "", nil)),
			norm(f.do(t, "GET", "/v1/customers/"+id+"/consent", tokenA, "", nil, accessHeader, strings.Repeat("0", 48))),
			norm(f.json(t, "POST", "/v1/customers/"+id+"/withdraw", tokenA, map[string]any{"confirm": true})),
			norm(f.access(t, id, other.liveness)),
		)
		st := want(t, "start", f.json(t, "POST", "/v1/enrollments", tokenA, startBody(id, "x")), 201, "")
		same := st.body["photos_accepted"].(float64) == 0 && st.body["liveness"] == "pending" && st.body["ready"] == false && st.body["customer_id"] == id
		answers[id] = append(answers[id], fmt.Sprint("start ", same, " ", len(st.body)))
		want(t, "abort", f.do(t, "DELETE", "/v1/enrollments/"+st.body["session_id"].(string), tokenA, "", nil), 204, "")
	}
	for i := range answers["C1"] {
		if answers["C1"][i] != answers["C404"][i] {
			t.Errorf("answer %d differs: enrolled %q, unknown %q", i, answers["C1"][i], answers["C404"][i])
		}
	}
	if !strings.HasPrefix(answers["C1"][0], "4"+codeAccessRequired) || !strings.HasPrefix(answers["C1"][3], "4"+codeNotPresent) {
		t.Fatalf("answers: %q", answers["C1"])
	}
	if f.svc.Gallery.Templates("C1") != 3 {
		t.Fatal("probing changed the enrolled customer")
	}
}

func errorMessage(r reply) string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// Withdrawal at a kiosk needs the customer present or a supervisor:
// without either, with another person's face, or with the customer's own
// head turn replayed against another challenge, nothing is deleted.
func TestWithdrawNeedsPresence(t *testing.T) {
	f := newFixture(t)
	p := d12(t)
	want(t, "enrollment", f.enrollPerson(t, "C1", p), 201, "")
	withdraw := func(body map[string]any) reply {
		return f.json(t, "POST", "/v1/customers/C1/withdraw", tokenA, body)
	}
	want(t, "no proof", withdraw(map[string]any{"confirm": true}), 403, codeAccessRequired)
	want(t, "a forged token", withdraw(map[string]any{"confirm": true, "access_token": strings.Repeat("ab", 24)}), 403, codeAccessRequired)
	want(t, "a clerk signs", withdraw(map[string]any{"confirm": true, "supervisor": map[string]string{"name": staffName, "password": staffPassword}}), 403, codeSupervisorRequired)
	want(t, "someone else's face", f.access(t, "C1", d3(t).liveness), 403, codeNotPresent)
	// Her own recorded head turn (left, then right), replayed when the
	// kiosk asks for right, then left.
	f.steps = []enroll.Turn{enroll.TurnRight, enroll.TurnLeft}
	want(t, "replayed head turn", f.access(t, "C1", p.liveness), 403, codeNotPresent)
	// Frames sent without a fresh challenge.
	body, ct := testenv.ImageForm(t, "frame", p.liveness)
	want(t, "no challenge", f.do(t, "POST", "/v1/customers/C1/access", tokenA, ct, body), 409, codeChallengeRequired)
	if n := f.rows(t, "templates", "C1"); n != 3 || f.svc.Gallery.Templates("C1") != 3 {
		t.Fatalf("%d templates left after refused withdrawals, want 3", n)
	}
	// Presence checks are few per kiosk: each is a draw for a replay.
	want(t, "third presence check", f.do(t, "POST", "/v1/customers/C1/challenge", tokenA, "", nil), 201, "")
	want(t, "presence checks limited", f.do(t, "POST", "/v1/customers/C1/challenge", tokenA, "", nil), 429, codeRateLimited)

	// Every refusal is audited (read before the withdrawal unlinks the
	// rows from the customer).
	var refused int
	for _, e := range f.audit(t, "C1") {
		if (e.Action == "withdraw" || e.Action == "access" || e.Action == "supervisor") && e.Outcome == "refused" {
			refused++
		}
	}
	if refused < 5 {
		t.Errorf("%d refusals audited, want at least 5", refused)
	}

	// A supervisor may withdraw a customer who is not there.
	w := want(t, "supervisor", withdraw(map[string]any{"confirm": true, "supervisor": supervisor()}), 200, "")
	if w.body["templates_deleted"].(float64) != 3 || f.svc.Gallery.Templates("C1") != 0 {
		t.Fatalf("withdraw: %s", w.raw)
	}
}

// Enrollment liveness: the customer's real head turn, replayed against a
// challenge it does not follow, fails, and ends the attempts; the same
// frames against the challenge they follow pass.
func TestLivenessReplayAgainstChallenge(t *testing.T) {
	f := newFixture(t)
	p := d12(t)
	sid := f.start(t, "C1")
	f.consent(t, sid)
	for i := 0; i < 3; i++ {
		want(t, "photo", f.do(t, "POST", "/v1/enrollments/"+sid+"/photos", tokenA, "image/jpeg", p.photos[i]), 201, "")
	}
	f.steps = []enroll.Turn{enroll.TurnRight, enroll.TurnLeft}
	r := want(t, "replay against right-left", f.liveness(t, sid, p.liveness), 422, codeLivenessFailed)
	d := r.body["error"].(map[string]any)["detail"].(map[string]any)
	if d["hint"] != "follow_steps" || d["liveness_attempts_left"].(float64) != 0 {
		t.Fatalf("replay: %s", r.raw)
	}
	want(t, "no second draw", f.do(t, "POST", "/v1/enrollments/"+sid+"/liveness/challenge", tokenA, "", nil), 409, codeTooManyAttempts)
	f.nothingStored(t, "C1")

	f.steps = []enroll.Turn{enroll.TurnLeft, enroll.TurnRight}
	want(t, "enrollment following left-right", f.enrollPerson(t, "C1", p), 201, "")
}

// Guessing a staff password at a kiosk is limited like the lobby's
// sign-in: five failures from the kiosk's address, then 429 with
// Retry-After, even for the right password; the refusals are audited
// with the name typed, never the password.
func TestStaffGuessingLimited(t *testing.T) {
	f := newFixture(t)
	body := startBody("C1", "x")
	body["staff"] = map[string]string{"name": staffName, "password": "guess-1234"}
	for i := 0; i < 5; i++ {
		want(t, "guess", f.json(t, "POST", "/v1/enrollments", tokenA, body), 403, codeStaffUnauthorized)
	}
	r := want(t, "right password, locked out", f.json(t, "POST", "/v1/enrollments", tokenA, startBody("C1", "x")), 429, codeRateLimited)
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	for _, e := range f.audit(t, "C1") {
		if strings.Contains(e.Detail, "guess-1234") || strings.Contains(e.Detail, staffPassword) {
			t.Fatalf("a password in the audit log: %+v", e)
		}
	}
	f.clock.Add(5 * time.Minute)
	want(t, "after the lockout", f.json(t, "POST", "/v1/enrollments", tokenA, startBody("C1", "x")), 201, "")
}
