package kiosk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"concierge"
)

// StaffMember is a member of staff whose credential the daemon checked.
type StaffMember struct {
	Name string
	// Supervisor is true for the roles that may approve what a kiosk may
	// not do alone (supervisor, manager).
	Supervisor bool
}

// StaffVerifier checks a member of staff's name and password or PIN, with
// the caller's address for the sign-in limiter (web.StaffDirectory in the
// daemon). A wrong credential is EUNAUTHORIZED; a locked-out caller too,
// with Detail["retry_after_seconds"].
type StaffVerifier interface {
	VerifyStaff(ctx context.Context, name, secret, from string) (StaffMember, error)
}

// StaffVerifierFunc adapts a function to StaffVerifier.
type StaffVerifierFunc func(ctx context.Context, name, secret, from string) (StaffMember, error)

// VerifyStaff calls f.
func (f StaffVerifierFunc) VerifyStaff(ctx context.Context, name, secret, from string) (StaffMember, error) {
	return f(ctx, name, secret, from)
}

var _ StaffVerifier = StaffVerifierFunc(nil)

// credential is a staff sign-off in a request body.
type credential struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

func (c *credential) given() bool {
	return c != nil && (strings.TrimSpace(c.Name) != "" || c.Password != "")
}

// verifyStaff checks a credential from a request body. field names it in
// the messages ("staff", "supervisor"); supervisor requires that role.
// Every refusal is audited with the name typed, never the secret.
func (s *Server) verifyStaff(r *http.Request, c *credential, field string, supervisor bool, audit AuditEntry) (StaffMember, *apiError) {
	if !c.given() {
		return StaffMember{}, errorf(http.StatusUnprocessableEntity, codeInvalid, "%s: the name and password (or PIN) of a member of staff are required", field)
	}
	if !plainText(c.Name, 64) || len(c.Password) > 256 {
		return StaffMember{}, errorf(http.StatusUnprocessableEntity, codeInvalid, "%s: a name of at most 64 printable characters and a password of at most 256 bytes", field)
	}
	m, err := s.staff.VerifyStaff(r.Context(), c.Name, c.Password, clientAddr(r))
	refuse := func(detail string) {
		audit.Action, audit.Outcome = field, "refused"
		audit.Detail = fmt.Sprintf("%s %q: %s", field, strings.TrimSpace(c.Name), detail)
		s.record(r.Context(), audit)
	}
	if err != nil {
		if concierge.ErrorCode(err) != concierge.EUNAUTHORIZED {
			return StaffMember{}, fromDomain(fmt.Errorf("verify %s: %w", field, err))
		}
		refuse(concierge.ErrorMessage(err))
		var ce *concierge.Error
		if errors.As(err, &ce) && ce.Detail["retry_after_seconds"] != nil {
			secs, _ := ce.Detail["retry_after_seconds"].(int)
			ae := errorf(http.StatusTooManyRequests, codeRateLimited, "%s: %s", field, ce.Message)
			ae.Detail = map[string]any{"retry_after_seconds": max(secs, 1)}
			return StaffMember{}, ae
		}
		return StaffMember{}, errorf(http.StatusForbidden, codeStaffUnauthorized, "%s: %s", field, concierge.ErrorMessage(err))
	}
	if supervisor && !m.Supervisor {
		refuse("not a supervisor")
		return StaffMember{}, errorf(http.StatusForbidden, codeSupervisorRequired,
			"%s: %s may not approve this; a supervisor or manager must sign", field, m.Name)
	}
	return m, nil
}

// retryAfter sets Retry-After from a rate-limited apiError's detail.
func retryAfter(w http.ResponseWriter, e *apiError) {
	if e.Status != http.StatusTooManyRequests {
		return
	}
	if secs, ok := e.Detail["retry_after_seconds"].(int); ok {
		w.Header().Set("Retry-After", fmt.Sprint(max(secs, 1)))
	}
}
