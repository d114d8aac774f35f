package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Staff is one person, or one shared device, who may sign in to the lobby
// page. The name is what every screen shows on the alerts they claim.
type Staff struct {
	Name string
	// Password is plain text (keep it out of the config file with ${VAR})
	// or a bcrypt hash ($2a$, $2b$ or $2y$).
	Password string
	// Token is a long random secret for a device provisioned once, such as
	// the lobby tablet; it signs in as Name.
	Token string
	// Role is what the person may do beyond the lobby page; "" is
	// RoleStaff.
	Role Role
}

// Role is a member of staff's authority.
type Role string

// Roles, each with the rights of the one before.
const (
	// RoleStaff signs in to the lobby page and vouches for a customer's
	// identity at a kiosk.
	RoleStaff Role = "staff"
	// RoleSupervisor also approves what a kiosk may not do alone:
	// re-enrolling a customer number with a face that does not match it,
	// reading a customer's consent status, withdrawing a customer who is
	// not present.
	RoleSupervisor Role = "supervisor"
	// RoleManager also reads the manager's feed (risk-flagged arrivals).
	RoleManager Role = "manager"
)

// Roles lists the valid roles, least first.
var Roles = []Role{RoleStaff, RoleSupervisor, RoleManager}

func (r Role) rank() int {
	switch r {
	case "", RoleStaff:
		return 1
	case RoleSupervisor:
		return 2
	case RoleManager:
		return 3
	}
	return 0
}

// Valid reports whether r is one of Roles or "" (RoleStaff).
func (r Role) Valid() bool { return r.rank() > 0 }

// Supervises reports whether r may approve a kiosk's re-enrollment or
// withdrawal (supervisor or manager).
func (r Role) Supervises() bool { return r.rank() >= RoleSupervisor.rank() }

// Manages reports whether r may read the manager's feed.
func (r Role) Manages() bool { return r.rank() >= RoleManager.rank() }

// MinTokenLen is the shortest sign-in token accepted: a token is typed
// once into a device, so it can be long enough to be unguessable.
const MinTokenLen = 24

// MinSessionKeyLen is the shortest session signing key accepted.
const MinSessionKeyLen = 32

// ValidateStaff names the first unusable entry of a staff list.
func ValidateStaff(staff []Staff) error {
	seen := map[string]bool{}
	for i, s := range staff {
		name := strings.TrimSpace(s.Name)
		switch {
		case name == "" || name != s.Name:
			return fmt.Errorf("staff[%d].name: must be set, without leading or trailing spaces", i)
		case utf8.RuneCountInString(name) > 64 || strings.ContainsAny(name, "\r\n\t"):
			return fmt.Errorf("staff[%d].name: at most 64 characters on one line", i)
		case seen[name]:
			return fmt.Errorf("staff[%d].name: duplicate %q", i, name)
		case s.Password == "" && s.Token == "":
			return fmt.Errorf("staff[%d]: set a password or a token", i)
		case s.Token != "" && len(s.Token) < MinTokenLen:
			return fmt.Errorf("staff[%d].token: at least %d characters", i, MinTokenLen)
		case !s.Role.Valid():
			return fmt.Errorf("staff[%d].role: %q is not one of staff, supervisor, manager", i, s.Role)
		}
		seen[name] = true
		if isBcrypt(s.Password) {
			if _, err := bcrypt.Cost([]byte(s.Password)); err != nil {
				return fmt.Errorf("staff[%d].password: not a usable bcrypt hash: %v", i, err)
			}
		} else if s.Password != "" && utf8.RuneCountInString(s.Password) < 8 {
			return fmt.Errorf("staff[%d].password: at least 8 characters (or a bcrypt hash)", i)
		}
	}
	return nil
}

func isBcrypt(p string) bool {
	return strings.HasPrefix(p, "$2a$") || strings.HasPrefix(p, "$2b$") || strings.HasPrefix(p, "$2y$")
}

// credential is a Staff entry prepared for constant-time checks.
type credential struct {
	name        string
	role        Role
	password    string // as configured: plain or bcrypt
	hashed      bool
	passwordSum [32]byte
	tokenSum    [32]byte
	hasToken    bool
	// fingerprint goes into every session's MAC: changing the password or
	// the token (or removing the person) ends their sessions.
	fingerprint [32]byte
}

func newCredential(s Staff) *credential {
	role := s.Role
	if role == "" {
		role = RoleStaff
	}
	c := &credential{name: s.Name, role: role, password: s.Password, hashed: isBcrypt(s.Password)}
	c.passwordSum = sha256.Sum256([]byte(s.Password))
	if s.Token != "" {
		c.tokenSum, c.hasToken = sha256.Sum256([]byte(s.Token)), true
	}
	fp := s.Name + "\x00" + s.Password + "\x00" + s.Token
	if role != RoleStaff {
		// A change of role ends the sessions of the old one; plain staff
		// keep the fingerprint they had before roles existed.
		fp += "\x00" + string(role)
	}
	c.fingerprint = sha256.Sum256([]byte(fp))
	return c
}

// checkPassword compares in constant time; a bcrypt hash is as slow as
// its cost makes it.
func (c *credential) checkPassword(p string) bool {
	if c.password == "" {
		// A token-only device has no password; still spend the time.
		sum := sha256.Sum256([]byte(p))
		subtle.ConstantTimeCompare(sum[:], c.passwordSum[:])
		return false
	}
	if c.hashed {
		return bcrypt.CompareHashAndPassword([]byte(c.password), []byte(p)) == nil
	}
	sum := sha256.Sum256([]byte(p))
	return subtle.ConstantTimeCompare(sum[:], c.passwordSum[:]) == 1
}

// session is a signed-in member of staff.
type session struct {
	Name    string
	Expires time.Time
}

// sessions signs and checks the session cookie: "1.<expiry>.<name>~<nonce>.<mac>"
// with the name in base64url, a random nonce so that no two sign-ins share
// a cookie, and an HMAC-SHA256 over the rest and the person's credential
// fingerprint. Valid sessions are not stored, so they survive a daemon
// restart as long as the key does; signed-out ones are (revoked), until
// they would have expired.
type sessions struct {
	key    []byte
	ttl    time.Duration
	secure bool
	byName map[string]*credential
	tokens []*credential
	// decoy is checked for unknown names: a bcrypt-hashed credential when
	// there is one, as those are the slow ones.
	decoy *credential
	now   func() time.Time

	revokedMu sync.Mutex
	revoked   map[[32]byte]time.Time // sha256(cookie) → its expiry
}

// maxRevoked bounds the revocation list. Only a signed-in session can be
// signed out, and sign-ins are rate-limited, so it fills only by many
// legitimate sign-outs within one session lifetime; past it, the entry
// closest to expiring anyway goes first.
const maxRevoked = 100_000

// revoke refuses the cookie value from now until exp.
func (s *sessions) revoke(value string, exp time.Time) {
	sum := sha256.Sum256([]byte(value))
	now := s.now()
	s.revokedMu.Lock()
	defer s.revokedMu.Unlock()
	if s.revoked == nil {
		s.revoked = map[[32]byte]time.Time{}
	}
	if len(s.revoked) >= maxRevoked {
		var first [32]byte
		var firstExp time.Time
		for k, e := range s.revoked {
			if !now.Before(e) {
				delete(s.revoked, k)
			} else if firstExp.IsZero() || e.Before(firstExp) {
				first, firstExp = k, e
			}
		}
		if len(s.revoked) >= maxRevoked {
			delete(s.revoked, first)
		}
	}
	s.revoked[sum] = exp
}

func (s *sessions) isRevoked(value string) bool {
	sum := sha256.Sum256([]byte(value))
	s.revokedMu.Lock()
	defer s.revokedMu.Unlock()
	_, ok := s.revoked[sum]
	return ok
}

// add makes c known to the sessions.
func (s *sessions) add(c *credential) {
	s.byName[c.name] = c
	if c.hasToken {
		s.tokens = append(s.tokens, c)
	}
	if c.password != "" && (s.decoy == nil || c.hashed && !s.decoy.hashed) {
		s.decoy = c
	}
}

// sessionCookie is the cookie's name; its path is the lobby's.
const sessionCookie = "concierge_lobby"

// errSessionExpired tells a stale session from a missing or forged one.
var errSessionExpired = errors.New("session expired: sign in again")

func (s *sessions) mac(payload string, c *credential) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	m.Write([]byte{0})
	m.Write(c.fingerprint[:])
	return m.Sum(nil)
}

// issue returns the cookie of a new session for c.
func (s *sessions) issue(c *credential, r *http.Request) (*http.Cookie, session) {
	exp := s.now().Add(s.ttl).Truncate(time.Second)
	var nonce [9]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		panic("web: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	payload := "1." + strconv.FormatInt(exp.Unix(), 10) + "." + base64.RawURLEncoding.EncodeToString([]byte(c.name)) +
		"~" + base64.RawURLEncoding.EncodeToString(nonce[:])
	value := payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload, c))
	return s.cookie(value, exp, r), session{Name: c.name, Expires: exp}
}

func (s *sessions) cookie(value string, exp time.Time, r *http.Request) *http.Cookie {
	ck := &http.Cookie{
		Name: sessionCookie, Value: value, Path: lobbyPath,
		Expires: exp, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		// Secure whenever the page came over TLS, or the operator says a
		// TLS proxy sits in front.
		Secure: s.secure || r.TLS != nil,
	}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.MaxAge = int(exp.Sub(s.now()).Seconds())
		if ck.MaxAge <= 0 {
			ck.MaxAge = -1
		}
	}
	return ck
}

// clear returns a cookie that deletes the session, and revokes the
// request's session on the server: deleting the cookie only asks the
// browser, and a copy of it (a shared tablet's history, a proxy's log)
// would stay good until it expired.
func (s *sessions) clear(r *http.Request) *http.Cookie {
	if ses, err := s.check(r); err == nil {
		ck, _ := r.Cookie(sessionCookie)
		s.revoke(ck.Value, ses.Expires)
	}
	return s.cookie("", time.Unix(0, 0), r)
}

// check returns the request's session, errSessionExpired, or another
// error for no or a forged session.
func (s *sessions) check(r *http.Request) (session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, errors.New("not signed in")
	}
	parts := strings.Split(ck.Value, ".")
	if len(parts) != 4 || parts[0] != "1" {
		return session{}, errors.New("bad session cookie")
	}
	exp, err1 := strconv.ParseInt(parts[1], 10, 64)
	// Cookies issued before the nonce have none; they stay good.
	b64name, _, _ := strings.Cut(parts[2], "~")
	name, err2 := base64.RawURLEncoding.DecodeString(b64name)
	sum, err3 := base64.RawURLEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil || err3 != nil {
		return session{}, errors.New("bad session cookie")
	}
	c := s.byName[string(name)]
	if c == nil {
		return session{}, errors.New("bad session cookie")
	}
	if !hmac.Equal(sum, s.mac(strings.Join(parts[:3], "."), c)) {
		return session{}, errors.New("bad session cookie")
	}
	expires := time.Unix(exp, 0)
	if !s.now().Before(expires) {
		return session{}, errSessionExpired
	}
	if s.isRevoked(ck.Value) {
		return session{}, errors.New("signed out: sign in again")
	}
	return session{Name: c.name, Expires: expires}, nil
}

// byPassword finds the person whose name and password these are.
func (s *sessions) byPassword(name, password string) *credential {
	c := s.byName[name]
	if c == nil {
		// Spend the time an existing name would, so response times do
		// not tell which names exist.
		if s.decoy != nil {
			s.decoy.checkPassword(password)
		}
		return nil
	}
	if !c.checkPassword(password) {
		return nil
	}
	return c
}

// byToken finds the device whose token this is, comparing with every
// token so that the time taken says nothing about which one matched.
func (s *sessions) byToken(token string) *credential {
	sum := sha256.Sum256([]byte(token))
	var found *credential
	for _, c := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], c.tokenSum[:]) == 1 {
			found = c
		}
	}
	return found
}
