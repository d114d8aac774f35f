package web

import (
	"context"
	"strings"
	"time"

	"concierge"
)

// StaffDirectory checks a member of staff's name and password for the
// parts of the daemon that are not the lobby page: a kiosk's staff and
// supervisor sign-off, a terminal's claims over NATS. One check, one
// limiter: the rules of the lobby's sign-in (constant time, bcrypt or
// plain, lockout per address and per name from an address, a slowdown per
// name) hold wherever a password is typed. It is safe for concurrent use.
type StaffDirectory struct {
	byName map[string]*credential
	decoy  *credential
	limit  *limiter
	now    func() time.Time
}

// DirectoryConfig tunes a StaffDirectory's limiter; zero values take the
// lobby's defaults (5 failures, 5 minutes).
type DirectoryConfig struct {
	MaxFailures int
	Lockout     time.Duration
	Now         func() time.Time
}

// NewStaffDirectory checks the staff list (ValidateStaff) and indexes it.
func NewStaffDirectory(staff []Staff, cfg DirectoryConfig) (*StaffDirectory, error) {
	if err := ValidateStaff(staff); err != nil {
		return nil, err
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.Lockout <= 0 {
		cfg.Lockout = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &StaffDirectory{byName: map[string]*credential{}, limit: newLimiter(cfg.MaxFailures, cfg.Lockout, cfg.Now), now: cfg.Now}
	for _, s := range staff {
		c := newCredential(s)
		d.byName[c.name] = c
		if c.password != "" && (d.decoy == nil || c.hashed && !d.decoy.hashed) {
			d.decoy = c
		}
	}
	return d, nil
}

// Verify returns the member of staff whose name and password these are,
// with Name and Role set and no secret. from is the caller's address (an
// IP, a NATS client id): failures lock that address out, and that name
// from that address, for the lockout; failures under one name from many
// addresses only slow that name down, so nobody can lock a colleague out.
// A wrong name or password is EUNAUTHORIZED "wrong name or password"; a
// locked-out attempt is EUNAUTHORIZED with the wait in the message and
// Detail["retry_after_seconds"]. Device tokens are not accepted here:
// they sign in to the lobby page only.
func (d *StaffDirectory) Verify(ctx context.Context, name, secret, from string) (Staff, error) {
	if err := ctx.Err(); err != nil {
		return Staff{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" || secret == "" {
		return Staff{}, concierge.Errorf(concierge.EUNAUTHORIZED, "a staff name and password are required")
	}
	keys := []string{"addr:" + from, "name:" + name}
	if blocked, until := d.limit.blocked(keys...); blocked {
		wait := max(until.Sub(d.now()).Round(time.Second), time.Second)
		e := concierge.Errorf(concierge.EUNAUTHORIZED, "too many failed sign-ins: try again in %v", wait)
		e.Detail = map[string]any{"retry_after_seconds": int(wait.Seconds())}
		return Staff{}, e
	}
	c := d.byName[name]
	if c == nil {
		// Spend the time an existing name would, so response times do
		// not tell which names exist.
		if d.decoy != nil {
			d.decoy.checkPassword(secret)
		}
	} else if !c.checkPassword(secret) {
		c = nil
	}
	if c == nil {
		d.limit.fail(keys...)
		return Staff{}, concierge.Errorf(concierge.EUNAUTHORIZED, "wrong name or password")
	}
	d.limit.reset(keys...)
	return Staff{Name: c.name, Role: c.role}, nil
}

// Lookup returns the name and role of a configured member of staff, for
// callers that already hold a signed-in session.
func (d *StaffDirectory) Lookup(name string) (Staff, bool) {
	c := d.byName[name]
	if c == nil {
		return Staff{}, false
	}
	return Staff{Name: c.name, Role: c.role}, true
}
