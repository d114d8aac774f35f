package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"concierge/web"
)

// WebConfig is the staff lobby page (docs/lobby.md). Without staff the
// page is disabled.
type WebConfig struct {
	// Staff may sign in with their name and password, or a device with
	// its token. Keep secrets out of the file: password: ${LOBBY_PW_ZHANG}.
	Staff []WebStaff `yaml:"staff"`
	// SessionTTL is how long a sign-in lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// SessionKey signs the session cookies (at least 32 characters). Empty:
	// a random key kept in lobby-session.key beside the database, so that
	// sessions survive restarts.
	SessionKey string `yaml:"session_key"`
	// SecureCookies marks the cookie Secure on plain HTTP too, for a box
	// behind a TLS-terminating proxy.
	SecureCookies bool `yaml:"secure_cookies"`
	// Backlog is how far back a newly opened page starts: alerts younger
	// than this that have not expired are shown at once.
	Backlog time.Duration `yaml:"backlog"`
	// MaxSignInFailures failed sign-ins from one address, or for one name,
	// lock sign-in out for SignInLockout.
	MaxSignInFailures int           `yaml:"max_signin_failures"`
	SignInLockout     time.Duration `yaml:"signin_lockout"`
}

// WebStaff is one entry of web.staff: a password (plain, or a bcrypt hash
// "$2a$..."), a token, or both; and a role (staff, supervisor, manager).
type WebStaff struct {
	Name     string `yaml:"name"`
	Password string `yaml:"password"`
	Token    string `yaml:"token"`
	// Role: staff (the default) may sign for a customer at a kiosk;
	// supervisor may also approve a kiosk's re-enrollment or withdrawal;
	// manager may also read the manager's feed.
	Role string `yaml:"role"`
}

func defaultWebConfig() WebConfig {
	return WebConfig{
		SessionTTL:        12 * time.Hour,
		Backlog:           30 * time.Minute,
		MaxSignInFailures: 5,
		SignInLockout:     5 * time.Minute,
	}
}

func (w WebConfig) staff() []web.Staff {
	out := make([]web.Staff, len(w.Staff))
	for i, s := range w.Staff {
		out[i] = web.Staff{Name: s.Name, Password: s.Password, Token: s.Token, Role: web.Role(s.Role)}
	}
	return out
}

// validate names the first bad web key.
func (w WebConfig) validate() error {
	switch {
	case w.SessionTTL <= 0:
		return fmt.Errorf("web.session_ttl: %v must be > 0", w.SessionTTL)
	case w.Backlog < 0:
		return fmt.Errorf("web.backlog: %v must be >= 0", w.Backlog)
	case w.MaxSignInFailures < 1:
		return fmt.Errorf("web.max_signin_failures: %d must be >= 1", w.MaxSignInFailures)
	case w.SignInLockout <= 0:
		return fmt.Errorf("web.signin_lockout: %v must be > 0", w.SignInLockout)
	case w.SessionKey != "" && len(w.SessionKey) < web.MinSessionKeyLen:
		return fmt.Errorf("web.session_key: at least %d characters (or empty for a generated key)", web.MinSessionKeyLen)
	}
	if err := web.ValidateStaff(w.staff()); err != nil {
		return errors.New("web." + err.Error())
	}
	return nil
}

// expandBraced replaces ${NAME} with get(NAME) and leaves every other '$'
// alone. os.Expand would also expand $NAME and $1, mangling the bcrypt
// hashes of web.staff ("$2a$10$...") and passwords in camera URLs; the
// file's documented form has always been ${VAR}.
func expandBraced(s string, get func(string) string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i+2:], '}')
		if j < 0 || !isEnvName(s[i+2:i+2+j]) {
			b.WriteString(s[:i+2])
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(get(s[i+2 : i+2+j]))
		s = s[i+2+j+1:]
	}
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
