package kiosk

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"concierge"
	"concierge/enroll"
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
	// Exactly who vouched for the customer's identity: a staff member's
	// id at the branch, or a core-banking reference.
	VerifiedBy string `json:"verified_by"`
	Reference  string `json:"reference"`
}

// verification checks the identity fields shared by start and withdraw and
// returns them as one line for the consent record and the audit log.
func verification(verifiedBy, reference string) (string, *apiError) {
	verifiedBy, reference = strings.TrimSpace(verifiedBy), strings.TrimSpace(reference)
	if verifiedBy == "" && reference == "" {
		return "", errorf(http.StatusUnprocessableEntity, codeInvalid,
			"verified_by (the staff member who checked the customer's identity) or reference (a core-banking reference) is required")
	}
	for name, v := range map[string]string{"verified_by": verifiedBy, "reference": reference} {
		if !plainText(v, 64) {
			return "", errorf(http.StatusUnprocessableEntity, codeInvalid, "%s: at most 64 printable characters", name)
		}
	}
	var parts []string
	if verifiedBy != "" {
		parts = append(parts, "verified by staff "+verifiedBy)
	}
	if reference != "" {
		parts = append(parts, "core-banking reference "+reference)
	}
	return strings.Join(parts, ", "), nil
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
	who, e := verification(req.VerifiedBy, req.Reference)
	if e != nil {
		return e
	}
	now := s.now()
	ss := &session{id: newSessionID(), kiosk: kiosk, created: now, expires: now.Add(s.cfg.SessionTTL),
		customerID: req.CustomerID, displayName: name, verification: who}
	for _, old := range s.sessions.add(ss) {
		s.end(r.Context(), old, "abort", "replaced", "a new enrollment started at kiosk "+kiosk)
	}
	s.record(r.Context(), AuditEntry{Actor: kiosk, Action: "start", Session: ss.id, CustomerID: ss.customerID, Outcome: "ok", Detail: who})
	s.log.Info("enrollment started", "kiosk", kiosk, "customer", ss.customerID)
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
	t, ok := s.consent[req.Language]
	if !ok {
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "language %q: the consent text exists in %s", req.Language, strings.Join(s.consent.Languages(), ", "))
	}
	if req.TextVersion != t.Version || (req.SHA256 != "" && !strings.EqualFold(req.SHA256, t.SHA256)) {
		s.record(r.Context(), AuditEntry{Actor: ss.kiosk, Action: "consent", Session: ss.id, CustomerID: ss.customerID,
			Outcome: "refused", Detail: fmt.Sprintf("text %s %s shown, current is %s", req.TextVersion, req.SHA256, t.Version)})
		return errorf(http.StatusConflict, codeStaleConsent, "the consent text shown (%s) is not the current one (%s); show the current text again", req.TextVersion, t.Version)
	}
	ss.consent = &consentGiven{text: t, at: s.now()}
	s.record(r.Context(), AuditEntry{Actor: ss.kiosk, Action: "consent", Session: ss.id, CustomerID: ss.customerID,
		Outcome: "ok", Detail: fmt.Sprintf("text %s (%s) sha256 %s", t.Version, t.Language, t.SHA256[:16])})
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

// POST /v1/enrollments/{id}/finish
func (s *Server) handleFinish(w http.ResponseWriter, r *http.Request) *apiError {
	if r.ContentLength != 0 {
		var empty struct{}
		if e := decodeJSON(w, r, &empty); e != nil {
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
	t := ss.consent.text
	req := enroll.Request{
		CustomerID:  ss.customerID,
		DisplayName: ss.displayName,
		Consent: enroll.Consent{
			Reference:   fmt.Sprintf("kiosk %s enrollment %s; %s", ss.kiosk, ss.id, ss.verification),
			TextVersion: t.Version + "@sha256:" + t.SHA256[:16],
			Channel:     "kiosk",
			Language:    t.Language,
			GrantedAt:   ss.consent.at.UTC(),
		},
	}
	res, err := s.svc.EnrollFaces(r.Context(), req, ss.faces)
	if err != nil {
		if concierge.ErrorCode(err) == concierge.ECONFLICT {
			// The other customer's id goes to the audit log for staff, never
			// to the kiosk: the screen is in a public lobby.
			s.sessions.remove(ss)
			ss.wipe()
			s.record(r.Context(), AuditEntry{Actor: ss.kiosk, Action: "finish", Session: ss.id, CustomerID: ss.customerID,
				Outcome: "conflict", Detail: concierge.ErrorMessage(err)})
			return errorf(http.StatusConflict, codeStaffReview,
				"this face is already enrolled under another customer id; a member of staff must review it before enrollment")
		}
		s.record(r.Context(), AuditEntry{Actor: ss.kiosk, Action: "finish", Session: ss.id, CustomerID: ss.customerID,
			Outcome: "failed", Detail: concierge.ErrorMessage(err)})
		return fromDomain(fmt.Errorf("kiosk finish: %w", err))
	}
	s.sessions.remove(ss)
	ss.wipe()
	s.record(r.Context(), AuditEntry{Actor: ss.kiosk, Action: "finish", Session: ss.id, CustomerID: ss.customerID,
		Outcome: "ok", Detail: fmt.Sprintf("%d templates of %s in %s; liveness %s", res.Templates, res.Model,
			s.now().Sub(ss.created).Round(time.Second), ss.liveness.Detail())})
	s.log.Info("kiosk enrollment finished", "kiosk", ss.kiosk, "customer", ss.customerID, "templates", res.Templates)
	writeJSON(w, http.StatusCreated, map[string]any{
		"customer_id": ss.customerID, "templates": res.Templates, "model": res.Model,
		"consent": map[string]string{"version": t.Version, "language": t.Language, "sha256": t.SHA256},
	})
	return nil
}

type withdrawRequest struct {
	Confirm    bool   `json:"confirm"`
	VerifiedBy string `json:"verified_by"`
	Reference  string `json:"reference"`
}

// POST /v1/customers/{id}/withdraw: consent withdrawn, biometric data
// deleted at once, everywhere this daemon holds it.
func (s *Server) handleWithdraw(w http.ResponseWriter, r *http.Request) *apiError {
	var req withdrawRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	id := r.PathValue("id")
	if !enroll.ValidID(id) {
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "customer id %q: want 1-64 letters, digits, '-', '_' or '.'", id)
	}
	if !req.Confirm {
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "confirm must be true: withdrawal deletes the customer's face templates at once")
	}
	who, e := verification(req.VerifiedBy, req.Reference)
	if e != nil {
		return e
	}
	kiosk := kioskID(r)
	// Enrollments in progress hold embeddings too.
	for _, ss := range s.sessions.removeCustomer(id) {
		s.end(r.Context(), ss, "abort", "withdrawn", "consent withdrawn at kiosk "+kiosk)
	}
	n, err := s.svc.Forget(r.Context(), id)
	if err != nil {
		outcome := "failed"
		if concierge.ErrorCode(err) == concierge.ENOTFOUND {
			outcome = "not_found"
		}
		s.record(r.Context(), AuditEntry{Actor: kiosk, Action: "withdraw", CustomerID: id, Outcome: outcome, Detail: who})
		return fromDomain(err)
	}
	at := s.now().UTC()
	s.record(r.Context(), AuditEntry{Actor: kiosk, Action: "withdraw", CustomerID: id, Outcome: "ok",
		Detail: fmt.Sprintf("%d templates deleted; %s", n, who)})
	s.log.Info("consent withdrawn at kiosk", "kiosk", kiosk, "customer", id, "templates_deleted", n)
	writeJSON(w, http.StatusOK, map[string]any{"customer_id": id, "templates_deleted": n, "consent": "withdrawn", "withdrawn_at": at})
	return nil
}

type consentRecord struct {
	TextVersion string     `json:"text_version"`
	Language    string     `json:"language,omitempty"`
	Channel     string     `json:"channel"`
	GrantedAt   time.Time  `json:"granted_at"`
	WithdrawnAt *time.Time `json:"withdrawn_at,omitempty"`
}

// GET /v1/customers/{id}/consent
func (s *Server) handleConsentStatus(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	if !enroll.ValidID(id) {
		return errorf(http.StatusUnprocessableEntity, codeInvalid, "customer id %q: want 1-64 letters, digits, '-', '_' or '.'", id)
	}
	cs, err := s.svc.Store.Consents(r.Context(), id)
	if err != nil {
		return fromDomain(fmt.Errorf("consent status %s: %w", id, err))
	}
	s.record(r.Context(), AuditEntry{Actor: kioskID(r), Action: "status", CustomerID: id, Outcome: "ok", Detail: fmt.Sprintf("%d consent records", len(cs))})
	if len(cs) == 0 {
		return errorf(http.StatusNotFound, codeNotFound, "no consent is recorded for customer %s", id)
	}
	status := "withdrawn"
	out := make([]consentRecord, len(cs))
	for i, c := range cs {
		if c.Active() {
			status = "active"
		}
		out[i] = consentRecord{TextVersion: c.TextVersion, Language: c.Language, Channel: c.Channel, GrantedAt: c.GrantedAt, WithdrawnAt: c.WithdrawnAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"customer_id": id, "status": status,
		"recognised": s.svc.Gallery.Templates(id) > 0,
		"consents":   out,
	})
	return nil
}
