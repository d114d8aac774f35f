package kiosk

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"concierge/enroll"
	"concierge/face"
)

// A kiosk may read a customer's consent status or withdraw them only with
// access to that customer: the customer present (a liveness sequence,
// following a fresh challenge, whose face matches their templates under
// the cameras' rule) or a supervisor's credential. Until then the answers
// for an enrolled and an unknown customer number are the same, so a kiosk
// cannot probe who is enrolled. Access is a short-lived token bound to
// one kiosk and one customer; each kiosk holds at most one challenge and
// one token at a time.

// accessTTL is how long a granted access lasts: long enough to read the
// status and confirm the withdrawal on screen.
const accessTTL = 3 * time.Minute

type grant struct {
	customer string
	by       string // "face" or "supervisor <name>"
	tokenSum [32]byte
	expires  time.Time
}

type presence struct {
	customer string
	ch       *challenge
}

// accessTable holds each kiosk's outstanding presence challenge and grant.
type accessTable struct {
	mu         sync.Mutex
	challenges map[string]*presence // by kiosk
	grants     map[string]*grant    // by kiosk
}

func newAccessTable() *accessTable {
	return &accessTable{challenges: map[string]*presence{}, grants: map[string]*grant{}}
}

// grantFor returns the kiosk's live grant for customer, checking token.
func (a *accessTable) grantFor(kiosk, customer, token string, now time.Time) *grant {
	sum := sha256.Sum256([]byte(token))
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.grants[kiosk]
	if g == nil || now.After(g.expires) || token == "" {
		return nil
	}
	if subtle.ConstantTimeCompare(sum[:], g.tokenSum[:]) != 1 || g.customer != customer {
		return nil
	}
	return g
}

func (a *accessTable) give(kiosk string, g *grant) {
	a.mu.Lock()
	a.grants[kiosk] = g
	a.mu.Unlock()
}

// revoke drops every grant and challenge of the customer (withdrawn).
func (a *accessTable) revoke(customer string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, g := range a.grants {
		if g.customer == customer {
			delete(a.grants, k)
		}
	}
	for k, p := range a.challenges {
		if p.customer == customer {
			delete(a.challenges, k)
		}
	}
}

// expire drops what has expired (the session janitor's round).
func (a *accessTable) expire(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, g := range a.grants {
		if now.After(g.expires) {
			delete(a.grants, k)
		}
	}
	for k, p := range a.challenges {
		if now.After(p.ch.expires) {
			delete(a.challenges, k)
		}
	}
}

func newAccessToken() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("kiosk: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

// customerID validates the {id} of a customer path.
func customerID(r *http.Request) (string, *apiError) {
	id := r.PathValue("id")
	if !enroll.ValidID(id) {
		return "", errorf(http.StatusUnprocessableEntity, codeInvalid, "customer id %q: want 1-64 letters, digits, '-', '_' or '.'", id)
	}
	return id, nil
}

// POST /v1/customers/{id}/challenge: the customer wants to prove they are
// present. The answer is the same for every customer number.
func (s *Server) handlePresenceChallenge(w http.ResponseWriter, r *http.Request) *apiError {
	if r.ContentLength != 0 {
		var empty struct{}
		if e := decodeJSON(w, r, &empty); e != nil {
			return e
		}
	}
	id, e := customerID(r)
	if e != nil {
		return e
	}
	kiosk := kioskID(r)
	// Each challenge is a draw a replay might win: few per kiosk.
	if ok, wait := s.presenceLimit.allow(kiosk); !ok {
		s.record(r.Context(), AuditEntry{Actor: kiosk, Action: "presence", CustomerID: id, Outcome: "refused", Detail: "too many presence checks"})
		s.tooMany(w, wait, "too many presence checks at this kiosk")
		return nil
	}
	ch := s.newChallenge()
	s.access.mu.Lock()
	s.access.challenges[kiosk] = &presence{customer: id, ch: ch}
	s.access.mu.Unlock()
	s.record(r.Context(), AuditEntry{Actor: kiosk, Action: "challenge", CustomerID: id, Outcome: "ok", Detail: "presence; " + stepsDetail(ch.steps)})
	writeJSON(w, http.StatusCreated, ch.response())
	return nil
}

type accessRequest struct {
	Supervisor *credential `json:"supervisor"`
}

type accessResponse struct {
	CustomerID  string    `json:"customer_id"`
	AccessToken string    `json:"access_token"`
	By          string    `json:"by"` // face, supervisor
	ExpiresAt   time.Time `json:"expires_at"`
}

// POST /v1/customers/{id}/access: a liveness sequence of the customer
// (multipart "frame" parts, following the challenge) or a supervisor's
// credential (JSON) buys a short-lived access token to the customer's
// consent status and withdrawal at this kiosk.
func (s *Server) handleAccess(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := customerID(r)
	if e != nil {
		return e
	}
	kiosk := kioskID(r)
	audit := AuditEntry{Actor: kiosk, Action: "access", CustomerID: id}
	var by string
	if mediaType(r) == "application/json" {
		var req accessRequest
		if e := decodeJSON(w, r, &req); e != nil {
			return e
		}
		m, e := s.verifyStaff(r, req.Supervisor, "supervisor", true, audit)
		if e != nil {
			return e
		}
		by = "supervisor " + m.Name
	} else {
		frames, e := s.readFrames(w, r)
		if e != nil {
			return e
		}
		s.access.mu.Lock()
		p := s.access.challenges[kiosk]
		delete(s.access.challenges, kiosk)
		s.access.mu.Unlock()
		if p != nil && p.customer != id {
			p = nil
		}
		var ch *challenge
		if p != nil {
			ch = p.ch
		}
		if e := s.inTime(ch); e != nil {
			return e
		}
		ok, detail, e := s.present(r, id, frames, ch)
		if e != nil {
			return e
		}
		if !ok {
			audit.Outcome, audit.Detail = "refused", detail
			s.record(r.Context(), audit)
			// The same answer whether the number is enrolled or not, and
			// whether the face or the movement failed.
			return errorf(http.StatusForbidden, codeNotPresent,
				"the customer could not be confirmed: follow the steps on screen, or ask a supervisor")
		}
		by = "face"
		audit.Detail = detail
	}
	token := newAccessToken()
	exp := s.now().Add(accessTTL)
	s.access.give(kiosk, &grant{customer: id, by: by, tokenSum: sha256.Sum256([]byte(token)), expires: exp})
	audit.Outcome = "ok"
	audit.Detail = fmt.Sprintf("by %s; %s", by, audit.Detail)
	s.record(r.Context(), audit)
	kind := "face"
	if by != "face" {
		kind = "supervisor"
	}
	writeJSON(w, http.StatusOK, accessResponse{CustomerID: id, AccessToken: token, By: kind, ExpiresAt: exp.UTC()})
	return nil
}

// present decides whether the frames show the customer, live, following
// the challenge: the liveness check, then the most frontal frames' fused
// face within the recognition threshold in force of the customer's
// templates (enroll.Service.MatchesCustomer, the cameras' rule).
func (s *Server) present(r *http.Request, id string, frames [][]byte, ch *challenge) (bool, string, *apiError) {
	res, faces, e := s.checkLive(r, frames, ch)
	if e != nil {
		return false, "", e
	}
	if !res.Live {
		return false, "liveness " + res.Reason + " " + res.Detail(), nil
	}
	idx := make([]int, 0, len(frames))
	for i, f := range faces {
		if len(f) == 1 {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return faces[idx[a]][0].Landmarks.Frontal() > faces[idx[b]][0].Landmarks.Frontal()
	})
	var seen []face.Face
	for _, i := range idx[:min(len(idx), identityFrames)] {
		found, err := s.svc.Detector.Detect(r.Context(), frames[i])
		if err != nil && !enroll.IsBadInput(err) {
			return false, "", fromDomain(fmt.Errorf("presence identity: %w", err))
		}
		if len(found) == 1 {
			seen = append(seen, found[0])
		}
	}
	ok, d := s.svc.MatchesCustomer(id, seen)
	if math.IsInf(d, 1) {
		return ok, "face: no match", nil
	}
	return ok, fmt.Sprintf("face distance %.3f; liveness %s", d, res.Detail()), nil
}
