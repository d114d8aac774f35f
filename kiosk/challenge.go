package kiosk

import (
	"net/http"
	"time"

	"concierge/enroll"
)

// challenge is a liveness challenge the server picked for one attempt.
// The kiosk shows its steps; the frames must follow them, and arrive
// between minChallengeTime after the challenge was issued and its expiry,
// by the server's clock: timestamps from the kiosk would be the replaying
// device's to forge.
type challenge struct {
	steps   []enroll.Turn
	issued  time.Time
	expires time.Time
}

// minStepTime is the least time one step of a challenge takes a person:
// frames sent sooner after the challenge than len(steps)×minStepTime were
// not filmed after it was shown.
const minStepTime = 500 * time.Millisecond

// challengeResponse is what the kiosk shows for the liveness step.
type challengeResponse struct {
	Steps     []enroll.Turn `json:"steps"`
	IssuedAt  time.Time     `json:"issued_at"`
	ExpiresAt time.Time     `json:"expires_at"`
	// Seconds is how long the kiosk should film: 2 s per step, the pace
	// of the single turn the page used to ask for.
	Seconds      float64 `json:"seconds"`
	AttemptsLeft *int    `json:"liveness_attempts_left,omitempty"`
}

func (s *Server) newChallenge() *challenge {
	steps := s.pick()
	if !enroll.ValidChallenge(steps) {
		steps = enroll.PickChallenge()
	}
	now := s.now()
	return &challenge{steps: steps, issued: now, expires: now.Add(s.cfg.ChallengeTTL)}
}

func (c *challenge) response() challengeResponse {
	return challengeResponse{Steps: c.steps, IssuedAt: c.issued.UTC(), ExpiresAt: c.expires.UTC(),
		Seconds: 2 * float64(len(c.steps))}
}

// inTime checks the submission's server time against the challenge.
func (s *Server) inTime(c *challenge) *apiError {
	now := s.now()
	switch {
	case c == nil:
		return errorf(http.StatusConflict, codeChallengeRequired, "start the liveness step first: the server picks the movement for each attempt")
	case now.After(c.expires):
		return errorf(http.StatusConflict, codeChallengeExpired, "the liveness challenge expired at %s: start the step again", c.expires.UTC().Format(time.RFC3339))
	case now.Sub(c.issued) < time.Duration(len(c.steps))*minStepTime:
		return errorf(http.StatusUnprocessableEntity, codeLivenessFailed,
			"liveness check failed: the frames arrived %v after the challenge, too soon to have followed it", now.Sub(c.issued).Round(time.Millisecond))
	}
	return nil
}

// POST /v1/enrollments/{id}/liveness/challenge: the liveness step starts.
// Each challenge is one attempt; a new one replaces the last.
func (s *Server) handleEnrollChallenge(w http.ResponseWriter, r *http.Request) *apiError {
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
	if ss.attempts >= s.cfg.MaxLivenessAttempts {
		return errorf(http.StatusConflict, codeTooManyAttempts, "%d liveness checks failed; staff must start the enrollment again", ss.attempts)
	}
	ss.attempts++
	ss.challenge = s.newChallenge()
	s.record(r.Context(), AuditEntry{Actor: ss.kiosk, Action: "challenge", Session: ss.id, CustomerID: ss.customerID,
		Outcome: "ok", Detail: stepsDetail(ss.challenge.steps)})
	resp := ss.challenge.response()
	left := max(0, s.cfg.MaxLivenessAttempts-ss.attempts)
	resp.AttemptsLeft = &left
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

func stepsDetail(steps []enroll.Turn) string {
	out := "steps"
	for _, t := range steps {
		out += " " + string(t)
	}
	return out
}
