package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
}

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
	c := &credential{name: s.Name, password: s.Password, hashed: isBcrypt(s.Password)}
	c.passwordSum = sha256.Sum256([]byte(s.Password))
	if s.Token != "" {
		c.tokenSum, c.hasToken = sha256.Sum256([]byte(s.Token)), true
	}
	c.fingerprint = sha256.Sum256([]byte(s.Name + "\x00" + s.Password + "\x00" + s.Token))
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

// sessions signs and checks the session cookie: "1.<expiry>.<name>.<mac>"
// with the name in base64url and an HMAC-SHA256 over the rest and the
// person's credential fingerprint. Nothing is stored on the server, so
// sessions survive a daemon restart as long as the key does.
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
	payload := "1." + strconv.FormatInt(exp.Unix(), 10) + "." + base64.RawURLEncoding.EncodeToString([]byte(c.name))
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

// clear returns a cookie that deletes the session.
func (s *sessions) clear(r *http.Request) *http.Cookie { return s.cookie("", time.Unix(0, 0), r) }

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
	name, err2 := base64.RawURLEncoding.DecodeString(parts[2])
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
