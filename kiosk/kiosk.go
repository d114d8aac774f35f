// Package kiosk is the HTTP API of the enrollment kiosks (JSON under /v1,
// described by docs/kiosk.openapi.yaml): a customer reads the consent
// text, consents, has photos taken with live feedback, passes a liveness
// check, and is enrolled; or withdraws their consent and is deleted. It is
// an adapter over the enroll domain: enrollment, duplicates and deletion
// are enroll.Service's, the liveness geometry is enroll.LivenessRule's.
// Every decision is written to an audit log; nothing is stored before the
// enrollment finishes.
package kiosk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"concierge/enroll"
)

// Device is one kiosk and the bearer token it authenticates with.
type Device struct {
	ID    string
	Token string
}

// Config tunes the API. Zero values take the defaults of DefaultConfig.
type Config struct {
	Devices []Device
	// RatePerSecond and Burst are each kiosk's token bucket: live
	// guidance sends about three frames a second.
	RatePerSecond float64
	Burst         int
	// MaxUploadBytes bounds a photo or a liveness sequence (413 above).
	MaxUploadBytes int64
	// SessionTTL is how long an unfinished enrollment lives.
	SessionTTL time.Duration
	// PhotosNeeded usable photos are required to finish; at most MaxPhotos
	// are kept.
	PhotosNeeded int
	MaxPhotos    int
	// Liveness frames per check, and checks per session.
	MinLivenessFrames, MaxLivenessFrames int
	MaxLivenessAttempts                  int
	// MinBrightness and MaxBrightness bound the face's mean grey level
	// on enrollment photos (too dark, too bright).
	MinBrightness, MaxBrightness float64
	// ChallengeTTL is how long after a liveness challenge is shown its
	// frames may arrive, by the server's clock.
	ChallengeTTL time.Duration
	// DefaultScope is the consent scope of a consent that names none
	// (enroll.ScopeBranch unless set).
	DefaultScope string
}

// DefaultConfig is what a kiosk runs with when the config says nothing.
func DefaultConfig() Config {
	return Config{
		RatePerSecond:       5,
		Burst:               30,
		MaxUploadBytes:      8 << 20,
		SessionTTL:          10 * time.Minute,
		PhotosNeeded:        3,
		MaxPhotos:           5,
		MinLivenessFrames:   6,
		MaxLivenessFrames:   16,
		MaxLivenessAttempts: 3,
		MinBrightness:       50,
		MaxBrightness:       215,
		ChallengeTTL:        30 * time.Second,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.DefaultScope == "" {
		c.DefaultScope = enroll.ScopeBranch
	}
	if c.RatePerSecond <= 0 {
		c.RatePerSecond = d.RatePerSecond
	}
	if c.Burst <= 0 {
		c.Burst = d.Burst
	}
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = d.MaxUploadBytes
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = d.SessionTTL
	}
	if c.PhotosNeeded <= 0 {
		c.PhotosNeeded = d.PhotosNeeded
	}
	if c.MaxPhotos < c.PhotosNeeded {
		c.MaxPhotos = max(d.MaxPhotos, c.PhotosNeeded)
	}
	if c.MinLivenessFrames <= 0 {
		c.MinLivenessFrames = d.MinLivenessFrames
	}
	if c.MaxLivenessFrames < c.MinLivenessFrames {
		c.MaxLivenessFrames = max(d.MaxLivenessFrames, c.MinLivenessFrames)
	}
	if c.MaxLivenessAttempts <= 0 {
		c.MaxLivenessAttempts = d.MaxLivenessAttempts
	}
	if c.ChallengeTTL <= 0 {
		c.ChallengeTTL = d.ChallengeTTL
	}
	if c.MinBrightness <= 0 && c.MaxBrightness <= 0 {
		c.MinBrightness, c.MaxBrightness = d.MinBrightness, d.MaxBrightness
	}
}

// AuditEntry is one decision in the audit log. It carries no biometric
// data, no photo and no name.
type AuditEntry struct {
	At         time.Time
	Actor      string // kiosk id; "-" before authentication
	Action     string
	Session    string
	CustomerID string
	Outcome    string
	Detail     string
}

// Auditor appends to the audit log (sqlite.DB.AppendAudit via AuditFunc).
type Auditor interface {
	Audit(ctx context.Context, e AuditEntry) error
}

// AuditFunc adapts a function to Auditor.
type AuditFunc func(ctx context.Context, e AuditEntry) error

// Audit calls f.
func (f AuditFunc) Audit(ctx context.Context, e AuditEntry) error { return f(ctx, e) }

// Options are the parts a Server is built from.
type Options struct {
	Config Config
	// Service enrolls, assesses photos and forgets: the daemon's own, so
	// its gallery changes the moment a kiosk enrolls or withdraws.
	Service *enroll.Service
	// Landmarks finds faces with five landmarks (eyes, nose, mouth
	// corners) for the liveness check; YuNet in the daemon.
	Landmarks enroll.Detector
	Liveness  enroll.LivenessRule
	// Staff checks the credentials of the member of staff who vouches for
	// a customer and of a supervisor who approves (web.StaffDirectory).
	Staff StaffVerifier
	// PickChallenge picks each liveness attempt's steps; nil is
	// enroll.PickChallenge (random). Tests fix it.
	PickChallenge func() []enroll.Turn
	Consent       ConsentTexts
	Audit         Auditor
	Now           func() time.Time
	Logger        *slog.Logger
}

// Server serves the kiosk API. Open starts its session janitor; Close
// stops it and drops every open session; it is safe to call twice.
type Server struct {
	cfg     Config
	svc     *enroll.Service
	marks   enroll.Detector
	rule    enroll.LivenessRule
	staff   StaffVerifier
	pick    func() []enroll.Turn
	consent ConsentTexts
	audit   Auditor
	now     func() time.Time
	log     *slog.Logger

	tokens   map[[32]byte]string // sha256(token) → kiosk id
	limits   *limiter            // per kiosk
	failures *limiter            // failed authentications per client address
	sessions *sessions
	access   *accessTable
	// presenceLimit bounds presence challenges per kiosk: each is a draw
	// a replayed recording might win.
	presenceLimit *limiter
	handler       http.Handler

	auditMu     sync.Mutex
	lastLimited map[string]time.Time // last audit row of a rate-limited kiosk

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New checks the options and builds the server.
func New(o Options) (*Server, error) {
	switch {
	case o.Service == nil || o.Service.Detector == nil || o.Service.Gallery == nil:
		return nil, errors.New("kiosk: an opened enroll.Service is required")
	case o.Landmarks == nil:
		return nil, errors.New("kiosk: a landmark detector is required for the liveness check")
	case len(o.Consent) == 0:
		return nil, errors.New("kiosk: consent texts are required")
	case o.Audit == nil:
		return nil, errors.New("kiosk: an audit log is required")
	case o.Staff == nil:
		return nil, errors.New("kiosk: a staff verifier is required: staff vouch for every customer")
	}
	if o.PickChallenge == nil {
		o.PickChallenge = enroll.PickChallenge
	}
	if o.Liveness == (enroll.LivenessRule{}) {
		o.Liveness = enroll.DefaultLivenessRule
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Config.fill()
	s := &Server{
		cfg: o.Config, svc: o.Service, marks: o.Landmarks, rule: o.Liveness, consent: o.Consent,
		staff: o.Staff, pick: o.PickChallenge, access: newAccessTable(),
		audit: o.Audit, now: o.Now, log: o.Logger.WithGroup("kiosk"),
		tokens:      map[[32]byte]string{},
		sessions:    newSessions(),
		lastLimited: map[string]time.Time{},
	}
	for i, d := range o.Config.Devices {
		if !enroll.ValidID(d.ID) {
			return nil, fmt.Errorf("kiosk devices[%d]: id %q: want 1-64 letters, digits, '-', '_' or '.'", i, d.ID)
		}
		if len(d.Token) < minTokenLen {
			return nil, fmt.Errorf("kiosk devices[%d] (%s): token must be at least %d characters", i, d.ID, minTokenLen)
		}
		h := hashToken(d.Token)
		if _, dup := s.tokens[h]; dup {
			return nil, fmt.Errorf("kiosk devices[%d] (%s): token shared with another kiosk", i, d.ID)
		}
		s.tokens[h] = d.ID
	}
	s.limits = newLimiter(o.Config.RatePerSecond, o.Config.Burst, s.now)
	// Ten wrong tokens, then one try every six seconds per address.
	s.failures = newLimiter(1.0/6, 10, s.now)
	// Three presence checks, then one a minute per kiosk.
	s.presenceLimit = newLimiter(1.0/60, 3, s.now)
	s.handler = s.routes()
	return s, nil
}

// Open starts the janitor that ends expired sessions.
func (s *Server) Open() {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				s.expire()
			}
		}
	}()
}

// expire ends the sessions past their TTL.
func (s *Server) expire() {
	for _, ss := range s.sessions.expired(s.now()) {
		s.end(context.Background(), ss, "expire", "expired", "")
	}
	s.access.expire(s.now())
}

// Close stops the janitor and ends every open session (their data is only
// in memory, so they would be lost anyway).
func (s *Server) Close() error {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		for _, ss := range s.sessions.all() {
			s.end(context.Background(), ss, "abort", "shutdown", "")
		}
	})
	return nil
}

// end wipes a session already removed from the index and audits why.
func (s *Server) end(ctx context.Context, ss *session, action, outcome, detail string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.ended {
		return
	}
	ss.wipe()
	s.record(ctx, AuditEntry{Actor: ss.kiosk, Action: action, Session: ss.id, CustomerID: ss.customerID, Outcome: outcome, Detail: detail})
}

// record writes an audit entry; a failing audit log is logged loudly but
// does not undo a decision already taken.
func (s *Server) record(ctx context.Context, e AuditEntry) {
	if e.At.IsZero() {
		e.At = s.now().UTC()
	}
	if err := s.audit.Audit(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("audit write failed", "action", e.Action, "outcome", e.Outcome, "kiosk", e.Actor, "err", err)
	}
}

// Handler serves every path under /v1/.
func (s *Server) Handler() http.Handler { return s.handler }
