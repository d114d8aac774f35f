package kiosk

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"
)

// minTokenLen keeps tokens out of reach of guessing: 32 characters of a
// random string (openssl rand -hex 16).
const minTokenLen = 32

func hashToken(t string) [32]byte { return sha256.Sum256([]byte(t)) }

type ctxKey struct{}

// kioskID is the authenticated kiosk of a request.
func kioskID(r *http.Request) string {
	id, _ := r.Context().Value(ctxKey{}).(string)
	return id
}

// authenticate finds the kiosk whose token the request carries. Tokens are
// compared as SHA-256 digests in constant time against every device, so
// neither the length nor the position of a match leaks through timing.
func (s *Server) authenticate(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	got := hashToken(strings.TrimSpace(token))
	found := ""
	for want, id := range s.tokens {
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			found = id
		}
	}
	return found, found != ""
}

// clientAddr is the caller's IP address, for limiting failed sign-ins.
// Proxies are not trusted: the daemon serves kiosks on the branch LAN.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// bodyReadTimeout is how long a kiosk request may take to arrive, body
// included: an 8 MiB liveness sequence over a slow branch LAN fits easily.
const bodyReadTimeout = 60 * time.Second

// guard authenticates, rate-limits and audits refusals before next runs.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The daemon's server has no read timeout (the lobby's event
		// streams live for hours), so a kiosk request bounds its own: a
		// client trickling a photo upload cannot hold a handler forever.
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(bodyReadTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.log.Warn("kiosk: cannot bound the request's read time", "error", err)
		}
		id, ok := s.authenticate(r)
		if !ok {
			addr := clientAddr(r)
			if allowed, wait := s.failures.allow(addr); !allowed {
				s.tooMany(w, wait, "too many failed sign-ins from this address")
				return
			}
			reason := "missing bearer token"
			if r.Header.Get("Authorization") != "" {
				reason = "unknown token"
			}
			s.record(r.Context(), AuditEntry{Actor: "-", Action: "auth", Outcome: "refused",
				Detail: fmt.Sprintf("%s from %s for %s %s", reason, addr, r.Method, r.URL.Path)})
			w.Header().Set("WWW-Authenticate", `Bearer realm="concierge-kiosk"`)
			writeError(w, errorf(http.StatusUnauthorized, codeUnauthorized, "%s: a kiosk token is required (Authorization: Bearer …)", reason))
			return
		}
		if allowed, wait := s.limits.allow(id); !allowed {
			s.auditLimited(r.Context(), id, r)
			s.tooMany(w, wait, "this kiosk sends too many requests")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func (s *Server) tooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", fmt.Sprint(max(secs, 1)))
	writeError(w, errorf(http.StatusTooManyRequests, codeRateLimited, "%s; retry in %d s", msg, max(secs, 1)))
}

// auditLimited records a rate-limited kiosk at most once a second, so a
// runaway kiosk cannot flood the audit log it is being recorded in.
func (s *Server) auditLimited(ctx context.Context, id string, r *http.Request) {
	now := s.now()
	s.auditMu.Lock()
	last, seen := s.lastLimited[id]
	write := !seen || now.Sub(last) >= time.Second
	if write {
		s.lastLimited[id] = now
	}
	s.auditMu.Unlock()
	if write {
		s.record(ctx, AuditEntry{Actor: id, Action: "rate_limit", Outcome: "refused", Detail: r.Method + " " + r.URL.Path})
	}
}
