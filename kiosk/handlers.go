package kiosk

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"concierge"
	"concierge/enroll"
	"concierge/face"
)

// sessionState is what GET /v1/enrollments/{id} and most steps return.
type sessionState struct {
	SessionID      string        `json:"session_id"`
	CustomerID     string        `json:"customer_id"`
	ExpiresAt      time.Time     `json:"expires_at"`
	Consent        *consentState `json:"consent"`
	PhotosAccepted int           `json:"photos_accepted"`
	PhotosNeeded   int           `json:"photos_needed"`
	Liveness       string        `json:"liveness"` // pending, passed
	AttemptsLeft   int           `json:"liveness_attempts_left"`
	Ready          bool          `json:"ready"` // finish would enroll
}

type consentState struct {
	Given    bool       `json:"given"`
	Version  string     `json:"version"`
	Language string     `json:"language,omitempty"`
	At       *time.Time `json:"at,omitempty"`
}

func (s *Server) state(ss *session) sessionState {
	st := sessionState{
		SessionID: ss.id, CustomerID: ss.customerID, ExpiresAt: ss.expires.UTC(),
		PhotosAccepted: len(ss.faces), PhotosNeeded: s.cfg.PhotosNeeded,
		Liveness: "pending", AttemptsLeft: max(0, s.cfg.MaxLivenessAttempts-ss.attempts),
		Consent: &consentState{Version: s.currentVersion()},
	}
	if ss.consent != nil {
		at := ss.consent.at.UTC()
		st.Consent = &consentState{Given: true, Version: ss.consent.text.Version, Language: ss.consent.text.Language, At: &at}
	}
	if ss.live != nil {
		st.Liveness = "passed"
	}
	st.Ready = ss.consent != nil && ss.live != nil && len(ss.faces) >= s.cfg.PhotosNeeded
	return st
}

func (s *Server) currentVersion() string {
	for _, t := range s.consent {
		return t.Version
	}
	return ""
}

// GET /v1/consent-text?lang=zh
func (s *Server) handleConsentText(w http.ResponseWriter, r *http.Request) *apiError {
	lang := r.URL.Query().Get("lang")
	if lang == "" {
		lang = s.consent.Languages()[0]
	}
	t, ok := s.consent[lang]
	if !ok {
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "lang %q: the consent text exists in %s", lang, strings.Join(s.consent.Languages(), ", "))
	}
	writeJSON(w, http.StatusOK, struct {
		ConsentText
		Languages []string `json:"languages"`
	}{t, s.consent.Languages()})
	return nil
}

type startRequest struct {
	CustomerID  string `json:"customer_id"`
	DisplayName string `json:"display_name"`
	// Staff is the member of staff who checked the customer's identity
	// document, signing with their own name and password or PIN.
	Staff *credential `json:"staff"`
	// Reference is an optional core-banking reference for the record.
	Reference string `json:"reference"`
	// VerifiedBy was a free-text staff number anyone could type; it is
	// refused with a message naming its replacement.
	VerifiedBy *string `json:"verified_by,omitempty"`
}

// verification returns who vouched for the customer, and the optional
// reference, as one line for the consent record and the audit log.
func verification(staff, reference string) (string, *apiError) {
	reference = strings.TrimSpace(reference)
	if !plainText(reference, 64) {
		return "", errorf(http.StatusUnprocessableEntity, codeInvalid, "reference: at most 64 printable characters")
	}
	line := "verified by staff " + staff
	if reference != "" {
		line += ", core-banking reference " + reference
	}
	return line, nil
}

// plainText accepts up to n printable runes, no control characters.
func plainText(v string, n int) bool {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > n {
		return false
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// POST /v1/enrollments
func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) *apiError {
	var req startRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	kiosk := kioskID(r)
	name := strings.TrimSpace(req.DisplayName)
	switch {
	case !enroll.ValidID(req.CustomerID):
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "customer_id %q: want 1-64 letters, digits, '-', '_' or '.'", req.CustomerID)
	case name == "" || !plainText(name, 100):
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "display_name: 1-100 printable characters")
	}
	if req.VerifiedBy != nil {
		return errorf(http.StatusUnprocessableEntity, codeInvalid,
			"verified_by is no longer accepted: send staff {name, password} of the member of staff who checked the customer's identity")
	}
	if _, e := verification("", req.Reference); e != nil {
		return e
	}
	// Staff sign before anything is looked up: the answer is the same for
	// every customer number, enrolled or not.
	m, e := s.verifyStaff(r, req.Staff, "staff", false, AuditEntry{Actor: kiosk, CustomerID: req.CustomerID})
	if e != nil {
		return e
	}
	who, _ := verification(m.Name, req.Reference)
	now := s.now()
	ss := &session{id: newSessionID(), kiosk: kiosk, created: now, expires: now.Add(s.cfg.SessionTTL),
		customerID: req.CustomerID, displayName: name, verification: who}
	for _, old := range s.sessions.add(ss) {
		s.end(r.Context(), old, "abort", "replaced", "a new enrollment started at kiosk "+kiosk)
	}
	s.record(r.Context(), AuditEntry{Actor: kiosk, Action: "start", Session: ss.id, CustomerID: ss.customerID, Outcome: "ok", Detail: who})
	s.log.Debug("enrollment started", "kiosk", kiosk, "customer", ss.customerID)
	writeJSON(w, http.StatusCreated, s.state(ss))
	return nil
}

// lockSession finds the request's session, checks that it belongs to the
// calling kiosk and returns it locked; the caller unlocks it.
func (s *Server) lockSession(r *http.Request) (*session, *apiError) {
	id := r.PathValue("id")
	ss := s.sessions.get(id, s.now())
	if ss == nil {
		s.expire() // an expired session's faces go now, not at the janitor's next round
		return nil, errorf(http.StatusNotFound, codeNotFound, "enrollment %q not found: it finished, was cancelled or expired", id)
	}
	if ss.kiosk != kioskID(r) {
		s.record(r.Context(), AuditEntry{Actor: kioskID(r), Action: "access", Session: ss.id, CustomerID: ss.customerID,
			Outcome: "refused", Detail: "enrollment belongs to kiosk " + ss.kiosk})
		return nil, errorf(http.StatusForbidden, codeForbidden, "enrollment %s belongs to another kiosk", id)
	}
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return nil, errorf(http.StatusNotFound, codeNotFound, "enrollment %q has ended", id)
	}
	return ss, nil
}

// GET /v1/enrollments/{id}
func (s *Server) handleGetSession(w http.ResponseWriter, r *http.Request) *apiError {
	ss, e := s.lockSession(r)
	if e != nil {
		return e
	}
	defer ss.mu.Unlock()
	writeJSON(w, http.StatusOK, s.state(ss))
	return nil
}

// DELETE /v1/enrollments/{id}: the customer declined or walked away.
func (s *Server) handleAbort(w http.ResponseWriter, r *http.Request) *apiError {
	ss, e := s.lockSession(r)
	if e != nil {
		return e
	}
	s.sessions.remove(ss)
	ss.mu.Unlock()
	s.end(r.Context(), ss, "abort", "ok", "cancelled at the kiosk")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type consentRequest struct {
	TextVersion string `json:"text_version"`
	Language    string `json:"language"`
	SHA256      string `json:"sha256"`
	Accepted    *bool  `json:"accepted"`
	// Scope is what the customer chose on the text's screen: branch or
	// network; empty is the box's enroll.default_scope.
	Scope string `json:"scope"`
}

// POST /v1/enrollments/{id}/consent
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) *apiError {
	var req consentRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	ss, e := s.lockSession(r)
	if e != nil {
		return e
	}
	defer ss.mu.Unlock()
	if req.Accepted == nil || !*req.Accepted {
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "accepted must be true; a customer who declines is not enrolled (DELETE the enrollment)")
	}
	scope := req.Scope
	if scope == "" {
		scope = s.cfg.DefaultScope
	}
	if enroll.CheckScope(scope) != nil {
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "scope %q: want %s (this branch only) or %s (every branch)", req.Scope, enroll.ScopeBranch, enroll.ScopeNetwork)
	}
	t, ok := s.consent[req.Language]
	if !ok {
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "language %q: the consent text exists in %s", req.Language, strings.Join(s.consent.Languages(), ", "))
	}
	if req.TextVersion != t.Version || (req.SHA256 != "" && !strings.EqualFold(req.SHA256, t.SHA256)) {
		s.record(r.Context(), AuditEntry{Actor: ss.kiosk, Action: "consent", Session: ss.id, CustomerID: ss.customerID,
			Outcome: "refused", Detail: fmt.Sprintf("text %s %s shown, current is %s", req.TextVersion, req.SHA256, t.Version)})
		return errorf(http.StatusConflict, codeStaleConsent, "the consent text shown (%s) is not the current one (%s); show the current text again", req.TextVersion, t.Version)
	}
	ss.consent = &consentGiven{text: t, scope: scope, at: s.now()}
	s.record(r.Context(), AuditEntry{Actor: ss.kiosk, Action: "consent", Session: ss.id, CustomerID: ss.customerID,
		Outcome: "ok", Detail: fmt.Sprintf("text %s (%s) sha256 %s scope %s", t.Version, t.Language, t.SHA256[:16], scope)})
	writeJSON(w, http.StatusOK, s.state(ss))
	return nil
}

// lockConsented is lockSession for the steps that come after consent:
// photos, liveness, finish: no look at a face before the customer agreed.
// The session is returned locked; a refusal leaves it unlocked.
func (s *Server) lockConsented(r *http.Request) (*session, *apiError) {
	ss, e := s.lockSession(r)
	if e != nil {
		return nil, e
	}
	if ss.consent == nil {
		ss.mu.Unlock()
		return nil, errorf(http.StatusConflict, codeConsentRequired, "the customer has not consented yet: no photo may be taken before consent")
	}
	return ss, nil
}

type finishRequest struct {
	// Supervisor approves re-enrolling a customer number whose templates
	// the new face does not match.
	Supervisor *credential `json:"supervisor"`
}

// POST /v1/enrollments/{id}/finish
func (s *Server) handleFinish(w http.ResponseWriter, r *http.Request) *apiError {
	var req finishRequest
	if r.ContentLength != 0 {
		if e := decodeJSON(w, r, &req); e != nil {
			return e
		}
	}
	ss, e := s.lockConsented(r)
	if e != nil {
		return e
	}
	defer ss.mu.Unlock()
	if len(ss.faces) < s.cfg.PhotosNeeded {
		return errorf(http.StatusConflict, codeMorePhotos, "%d of %d usable photos taken", len(ss.faces), s.cfg.PhotosNeeded)
	}
	if ss.live == nil {
		return errorf(http.StatusConflict, codeLivenessNeeded, "the liveness check has not passed yet")
	}
	audit := AuditEntry{Actor: ss.kiosk, Action: "finish", Session: ss.id, CustomerID: ss.customerID}
	name, approval, e := s.reenrollment(r, ss, req.Supervisor, audit)
	if e != nil {
		return e
	}
	t := ss.consent.text
	enr := enroll.Request{
		CustomerID:  ss.customerID,
		DisplayName: name,
		Consent: enroll.Consent{
			Reference:   fmt.Sprintf("kiosk %s enrollment %s; %s%s", ss.kiosk, ss.id, ss.verification, approval),
			TextVersion: t.Version + "@sha256:" + t.SHA256[:16],
			Channel:     "kiosk",
			Language:    t.Language,
			Scope:       ss.consent.scope,
			GrantedAt:   ss.consent.at.UTC(),
		},
	}
	res, err := s.svc.EnrollFaces(r.Context(), enr, ss.faces)
	if err != nil {
		if concierge.ErrorCode(err) == concierge.ECONFLICT {
			// The other customer's id goes to the audit log for staff, never
			// to the kiosk: the screen is in a public lobby.
			s.sessions.remove(ss)
			ss.wipe()
			audit.Outcome, audit.Detail = "conflict", concierge.ErrorMessage(err)
			s.record(r.Context(), audit)
			return errorf(http.StatusConflict, codeStaffReview,
				"this face is already enrolled under another customer id; a member of staff must review it before enrollment")
		}
		audit.Outcome, audit.Detail = "failed", concierge.ErrorMessage(err)
		s.record(r.Context(), audit)
		return fromDomain(fmt.Errorf("kiosk finish: %w", err))
	}
	s.sessions.remove(ss)
	ss.wipe()
	audit.Outcome = "ok"
	audit.Detail = fmt.Sprintf("%d templates of %s in %s; liveness %s%s", res.Templates, res.Model,
		s.now().Sub(ss.created).Round(time.Second), ss.liveness.Detail(), approval)
	s.record(r.Context(), audit)
	s.log.Debug("kiosk enrollment finished", "kiosk", ss.kiosk, "customer", ss.customerID, "templates", res.Templates)
	writeJSON(w, http.StatusCreated, map[string]any{
		"customer_id": ss.customerID, "templates": res.Templates, "model": res.Model,
		"consent": map[string]string{"version": t.Version, "language": t.Language, "sha256": t.SHA256},
	})
	return nil
}

// reenrollment decides whether the session may be stored under its
// customer number, and under which name. A number nobody holds is a new
// enrollment. A number already held takes the new faces only when they
// match its templates (the cameras' rule: the same person renewing) or a
// supervisor signs; the stored name stays unless a supervisor signed, so a
// kiosk never renames a customer. approval is appended to the consent
// reference and the audit row.
func (s *Server) reenrollment(r *http.Request, ss *session, sup *credential, audit AuditEntry) (name, approval string, e *apiError) {
	cust, err := s.svc.Store.Customer(r.Context(), ss.customerID)
	switch code := concierge.ErrorCode(err); {
	case code == concierge.ENOTFOUND:
		if sup.given() {
			// Checked all the same, so a wrong supervisor password does not
			// pass unnoticed on a new number.
			if _, e := s.verifyStaff(r, sup, "supervisor", true, audit); e != nil {
				return "", "", e
			}
		}
		return ss.displayName, "", nil
	case err != nil:
		return "", "", fromDomain(fmt.Errorf("kiosk finish: %w", err))
	}
	seen := append([]face.Face(nil), ss.faces...)
	if ss.live != nil {
		seen = append(seen, *ss.live)
	}
	match, d := s.svc.MatchesCustomer(ss.customerID, seen)
	if sup.given() {
		m, e := s.verifyStaff(r, sup, "supervisor", true, audit)
		if e != nil {
			return "", "", e
		}
		approval = fmt.Sprintf("; re-enrollment approved by supervisor %s (face match %v)", m.Name, match)
		if ss.displayName != cust.DisplayName {
			approval += "; display name changed"
		}
		return ss.displayName, approval, nil
	}
	if match {
		// The same person renewing: the name on file stays.
		return cust.DisplayName, fmt.Sprintf("; re-enrollment by face match (distance %.3f)", d), nil
	}
	audit.Outcome = "refused"
	audit.Detail = "re-enrollment of an existing customer number: the face does not match its templates"
	if !math.IsInf(d, 1) {
		audit.Detail += fmt.Sprintf(" (distance %.3f)", d)
	}
	s.record(r.Context(), audit)
	// The session stays open, so a supervisor can sign at the kiosk.
	return "", "", errorf(http.StatusForbidden, codeSupervisorRequired,
		"this enrollment needs a supervisor's approval before it can be stored: a supervisor signs to finish it")
}

type withdrawRequest struct {
	Confirm bool `json:"confirm"`
	// AccessToken is what POST /v1/customers/{id}/access granted: the
	// customer present, or a supervisor's signature.
	AccessToken string `json:"access_token"`
	// Supervisor may sign here instead of through access.
	Supervisor *credential `json:"supervisor"`
	Reference  string      `json:"reference"`
}

// POST /v1/customers/{id}/withdraw: consent withdrawn, biometric data
// deleted at once, everywhere this daemon holds it. It needs the customer
// present or a supervisor; without either, every customer number gets the
// same refusal.
func (s *Server) handleWithdraw(w http.ResponseWriter, r *http.Request) *apiError {
	var req withdrawRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	id, e := customerID(r)
	if e != nil {
		return e
	}
	if !req.Confirm {
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "confirm must be true: withdrawal deletes the customer's face templates at once")
	}
	kiosk := kioskID(r)
	audit := AuditEntry{Actor: kiosk, Action: "withdraw", CustomerID: id}
	var by string
	switch {
	case req.Supervisor.given():
		m, e := s.verifyStaff(r, req.Supervisor, "supervisor", true, audit)
		if e != nil {
			return e
		}
		by = "supervisor " + m.Name
	default:
		g := s.access.grantFor(kiosk, id, req.AccessToken, s.now())
		if g == nil {
			audit.Outcome, audit.Detail = "refused", "no access: neither the customer's face nor a supervisor"
			s.record(r.Context(), audit)
			return errorf(http.StatusForbidden, codeAccessRequired,
				"withdrawal needs the customer present (POST /v1/customers/%s/access with their liveness frames) or a supervisor's signature", id)
		}
		by = g.by
	}
	who, e := verification(by, req.Reference)
	if e != nil {
		return e
	}
	// Enrollments in progress hold embeddings too.
	for _, ss := range s.sessions.removeCustomer(id) {
		s.end(r.Context(), ss, "abort", "withdrawn", "consent withdrawn at kiosk "+kiosk)
	}
	n, err := s.svc.Forget(r.Context(), id)
	if err != nil {
		audit.Outcome, audit.Detail = "failed", who
		if concierge.ErrorCode(err) == concierge.ENOTFOUND {
			audit.Outcome = "not_found"
		}
		s.record(r.Context(), audit)
		return fromDomain(err)
	}
	s.access.revoke(id)
	at := s.now().UTC()
	audit.Outcome, audit.Detail = "ok", fmt.Sprintf("%d templates deleted; %s", n, who)
	s.record(r.Context(), audit)
	s.log.Debug("consent withdrawn at kiosk", "kiosk", kiosk, "customer", id, "templates_deleted", n)
	writeJSON(w, http.StatusOK, map[string]any{"customer_id": id, "templates_deleted": n, "consent": "withdrawn", "withdrawn_at": at})
	return nil
}

type consentRecord struct {
	TextVersion string     `json:"text_version"`
	Language    string     `json:"language,omitempty"`
	Channel     string     `json:"channel"`
	Scope       string     `json:"scope"`
	GrantedAt   time.Time  `json:"granted_at"`
	WithdrawnAt *time.Time `json:"withdrawn_at,omitempty"`
}

// accessHeader carries the access token of GET /v1/customers/{id}/consent.
const accessHeader = "X-Customer-Access"

// GET /v1/customers/{id}/consent: with the access token of the customer
// present or of a supervisor (header X-Customer-Access); without it, the
// same refusal for every customer number.
func (s *Server) handleConsentStatus(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := customerID(r)
	if e != nil {
		return e
	}
	kiosk := kioskID(r)
	g := s.access.grantFor(kiosk, id, r.Header.Get(accessHeader), s.now())
	if g == nil {
		s.record(r.Context(), AuditEntry{Actor: kiosk, Action: "status", CustomerID: id, Outcome: "refused", Detail: "no access"})
		return errorf(http.StatusForbidden, codeAccessRequired,
			"a customer's consent status needs the customer present or a supervisor (POST /v1/customers/%s/access, then the token in %s)", id, accessHeader)
	}
	cs, err := s.svc.Store.Consents(r.Context(), id)
	if err != nil {
		return fromDomain(fmt.Errorf("consent status %s: %w", id, err))
	}
	s.record(r.Context(), AuditEntry{Actor: kiosk, Action: "status", CustomerID: id, Outcome: "ok",
		Detail: fmt.Sprintf("%d consent records; access by %s", len(cs), g.by)})
	if len(cs) == 0 {
		return errorf(http.StatusNotFound, codeNotFound, "no consent is recorded for customer %s", id)
	}
	status := "withdrawn"
	out := make([]consentRecord, len(cs))
	for i, c := range cs {
		if c.Active() {
			status = "active"
		}
		out[i] = consentRecord{TextVersion: c.TextVersion, Language: c.Language, Channel: c.Channel, Scope: c.Scope, GrantedAt: c.GrantedAt, WithdrawnAt: c.WithdrawnAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"customer_id": id, "status": status,
		"recognised": s.svc.Gallery.Templates(id) > 0,
		"consents":   out,
	})
	return nil
}
