package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"concierge"
	"concierge/alert"
)

// lobbyPath is where the lobby page lives; its cookie is scoped to it.
const lobbyPath = "/lobby/"

//go:embed lobby
var lobbyAssets embed.FS

// LobbyConfig configures the lobby page. With no Staff the page is
// disabled: every path answers 404 with the reason, never an open page.
type LobbyConfig struct {
	Staff []Staff
	// SessionKey signs session cookies (at least MinSessionKeyLen bytes).
	// Keep it across restarts, or every tablet must sign in again.
	SessionKey []byte
	// SessionTTL is how long a sign-in lasts (default 12h: a working day).
	SessionTTL time.Duration
	// SecureCookies marks the cookie Secure even on plain HTTP, for a box
	// behind a TLS-terminating proxy. Over TLS it is Secure anyway.
	SecureCookies bool
	// Backlog is how far back a newly opened page starts reading, so it
	// shows the alerts still on screen elsewhere (default 30m, the alerts'
	// lifetime). A reconnecting page resumes where it stopped instead.
	Backlog time.Duration
	// Heartbeat is the pause between keep-alive comments on an idle event
	// stream, so proxies keep it open and dead tablets are noticed
	// (default 15s).
	Heartbeat time.Duration
	// MaxSignInFailures failed sign-ins from one address, or for one name,
	// lock further attempts out for SignInLockout (defaults 5 and 5m).
	MaxSignInFailures int
	SignInLockout     time.Duration
	// Cards shows "please verify" cards (alert.FeedVerify) with Yes / No,
	// answered through the desk's CardDesk; the branch has a verify band.
	Cards bool
	// Reports feeds the manager's panel (GET report, managers only); nil:
	// no panel.
	Reports ServiceReports
	Logger  *slog.Logger
	Now     func() time.Time
}

func (c *LobbyConfig) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.SessionTTL, 12*time.Hour)
	def(&c.Backlog, 30*time.Minute)
	def(&c.Heartbeat, 15*time.Second)
	def(&c.SignInLockout, 5*time.Minute)
	if c.MaxSignInFailures == 0 {
		c.MaxSignInFailures = 5
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.SessionTTL < 0 || c.Backlog < 0 || c.Heartbeat < 0 || c.SignInLockout < 0 || c.MaxSignInFailures < 0:
		return errors.New("lobby: durations and counts must be >= 0")
	case len(c.Staff) > 0 && len(c.SessionKey) < MinSessionKeyLen:
		return fmt.Errorf("lobby: session key must be at least %d bytes", MinSessionKeyLen)
	}
	return ValidateStaff(c.Staff)
}

// Lobby is the staff lobby page: a live list of arrivals that staff claim.
// It reads the branch's arrival, claim, escalation and rejection feeds
// through sub and publishes claims and "not this person" marks through
// claims. Close ends every open event stream.
type Lobby struct {
	cfg    LobbyConfig
	log    *slog.Logger
	sub    *alert.Subscriber
	claims Desk
	cards  CardDesk // nil: no verify cards
	auth   *sessions
	limit  *limiter
	mux    http.Handler

	// ctx ends every event stream: http.Server.Shutdown waits for
	// handlers, and an event stream would otherwise never end.
	ctx    context.Context
	cancel context.CancelFunc
}

// Desk takes the signed-in staff's claims and "not this person" marks: the
// daemon's alert.Desk, which checks the alert is real and open and
// publishes with the daemon's identity. The page never publishes itself.
type Desk interface {
	Claim(ctx context.Context, alertID, by string) error
	Reject(ctx context.Context, alertID, by, reason string) error
}

var _ Desk = (*alert.Desk)(nil)

// CardDesk answers "please verify" cards for the signed-in staff: the
// daemon's alert.Desk, which deletes the card's face and, on a yes, makes
// it an arrival.
type CardDesk interface {
	Confirm(ctx context.Context, cardID, by string) error
	Dismiss(ctx context.Context, cardID, by string) error
}

var _ CardDesk = (*alert.Desk)(nil)

// NewLobby returns the lobby page; sub must be open. sub and claims may be
// nil only when no staff are configured.
func NewLobby(cfg LobbyConfig, sub *alert.Subscriber, claims Desk) (*Lobby, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if len(cfg.Staff) > 0 && (sub == nil || claims == nil) {
		return nil, errors.New("lobby: a subscriber and a claimer are required")
	}
	l := &Lobby{cfg: cfg, log: cfg.Logger.WithGroup("lobby"), sub: sub, claims: claims}
	if cfg.Cards {
		cd, ok := claims.(CardDesk)
		if !ok {
			return nil, errors.New("lobby: verify cards need a desk that answers them")
		}
		l.cards = cd
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.auth = &sessions{key: cfg.SessionKey, ttl: cfg.SessionTTL, secure: cfg.SecureCookies,
		byName: map[string]*credential{}, now: cfg.Now}
	for _, s := range cfg.Staff {
		l.auth.add(newCredential(s))
	}
	l.limit = newLimiter(cfg.MaxSignInFailures, cfg.SignInLockout, cfg.Now)
	l.mux = l.routes()
	return l, nil
}

// Enabled reports whether anyone can sign in.
func (l *Lobby) Enabled() bool { return len(l.cfg.Staff) > 0 }

// Close ends every open event stream (each handler stops its own reader
// before it returns); pages reconnect by themselves to whatever serves
// them next. Calling it twice is harmless.
func (l *Lobby) Close() error {
	l.cancel()
	return nil
}

// ServeHTTP serves everything under /lobby/.
func (l *Lobby) ServeHTTP(w http.ResponseWriter, r *http.Request) { l.mux.ServeHTTP(w, r) }

func (l *Lobby) routes() http.Handler {
	mux := http.NewServeMux()
	if !l.Enabled() {
		mux.HandleFunc(lobbyPath, func(w http.ResponseWriter, r *http.Request) {
			writeJSONError(w, http.StatusNotFound, concierge.ENOTFOUND,
				"the lobby page is disabled: no staff are configured (web.staff)")
		})
		return mux
	}
	static, err := fs.Sub(lobbyAssets, "lobby")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(strings.TrimSuffix(lobbyPath, "/"), http.FileServerFS(static))
	mux.HandleFunc("GET "+lobbyPath, func(w http.ResponseWriter, r *http.Request) {
		// Pages are small; always revalidate so an upgrade shows at once.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET "+lobbyPath+"me", l.signedIn(l.handleMe))
	mux.HandleFunc("GET "+lobbyPath+"events", l.signedIn(l.handleEvents))
	mux.HandleFunc("GET "+lobbyPath+"report", l.signedIn(l.handleReport))
	mux.HandleFunc("POST "+lobbyPath+"signin", l.handleSignIn)
	mux.HandleFunc("POST "+lobbyPath+"signout", l.handleSignOut)
	mux.HandleFunc("POST "+lobbyPath+"claim", l.signedIn(l.handleClaim))
	mux.HandleFunc("POST "+lobbyPath+"reject", l.signedIn(l.handleReject))
	mux.HandleFunc("POST "+lobbyPath+"confirm", l.signedIn(l.handleCard(true)))
	mux.HandleFunc("POST "+lobbyPath+"dismiss", l.signedIn(l.handleCard(false)))
	mux.HandleFunc(lobbyPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusMethodNotAllowed, concierge.EINVALID, "%s is not allowed on %s", r.Method, r.URL.Path)
	})
	// Another site's page must not act with a signed-in tablet's cookie:
	// SameSite=Strict already withholds it, JSON bodies need a preflight,
	// and this refuses cross-origin writes outright (Sec-Fetch-Site/Origin).
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusForbidden, concierge.EUNAUTHORIZED, "cross-origin request refused")
	}))
	return cop.Handler(mux)
}

// signedIn runs h for a signed-in member of staff, else answers 401.
func (l *Lobby) signedIn(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := l.auth.check(r)
		if err != nil {
			msg := "sign in first"
			if errors.Is(err, errSessionExpired) {
				msg = err.Error()
				http.SetCookie(w, l.auth.clear(r))
			}
			writeJSONError(w, http.StatusUnauthorized, concierge.EUNAUTHORIZED, "%s", msg)
			return
		}
		h(w, r, s)
	}
}

// me is what the page learns about its session.
type me struct {
	Name string `json:"name"`
	// Role decides what the page offers (a manager sees the report);
	// the server checks it again on every request.
	Role      Role      `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (l *Lobby) handleMe(w http.ResponseWriter, r *http.Request, s session) {
	writeJSON(w, http.StatusOK, me{Name: s.Name, Role: l.role(s), ExpiresAt: s.Expires.UTC()})
}

type signInRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Token    string `json:"token"`
}

func (l *Lobby) handleSignIn(w http.ResponseWriter, r *http.Request) {
	var req signInRequest
	if !decodeJSONBody(w, r, maxJSONBody, &req) {
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Token == "" && (req.Name == "" || req.Password == "") {
		writeJSONError(w, http.StatusBadRequest, concierge.EINVALID, "name and password (or a token) are required")
		return
	}
	keys := []string{"addr:" + clientAddr(r)}
	if req.Token == "" {
		keys = append(keys, "name:"+req.Name)
	}
	if blocked, until := l.limit.blocked(keys...); blocked {
		wait := until.Sub(l.cfg.Now()).Round(time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())))
		writeJSONError(w, http.StatusTooManyRequests, concierge.EUNAUTHORIZED,
			"too many failed sign-ins: try again in %v", wait)
		return
	}
	var c *credential
	if req.Token != "" {
		c = l.auth.byToken(req.Token)
	} else {
		c = l.auth.byPassword(req.Name, req.Password)
	}
	if c == nil {
		l.limit.fail(keys...)
		l.log.Warn("lobby sign-in refused", slog.String("addr", clientAddr(r)), slog.Bool("token", req.Token != ""))
		writeJSONError(w, http.StatusUnauthorized, concierge.EUNAUTHORIZED, "wrong name or password")
		return
	}
	l.limit.reset(keys...)
	ck, s := l.auth.issue(c, r)
	http.SetCookie(w, ck)
	// Staff names are accounts the operator configured, kept for the audit
	// of who used the page; customers never appear in these logs.
	l.log.Info("lobby sign-in", slog.String("staff", s.Name), slog.String("addr", clientAddr(r)))
	writeJSON(w, http.StatusOK, me{Name: s.Name, Role: l.role(s), ExpiresAt: s.Expires.UTC()})
}

func (l *Lobby) handleSignOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, l.auth.clear(r))
	w.WriteHeader(http.StatusNoContent)
}

// clientAddr is the peer's IP address. Behind a proxy every tablet shares
// the proxy's address, which then carries the sign-in limit for all.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type claimRequest struct {
	AlertID string `json:"alert_id"`
}

type claimResponse struct {
	AlertID string    `json:"alert_id"`
	By      string    `json:"by"`
	Time    time.Time `json:"time"`
}

// actionTimeout bounds one claim or rejection: JetStream answers in
// milliseconds, and staff must learn quickly that it did not.
const actionTimeout = 5 * time.Second

// handleClaim publishes "I'm on it" for the signed-in person. Every page,
// including this one, shows the claim when it comes back on the stream.
func (l *Lobby) handleClaim(w http.ResponseWriter, r *http.Request, s session) {
	var req claimRequest
	if !decodeJSONBody(w, r, maxJSONBody, &req) {
		return
	}
	if err := checkAlertID(req.AlertID); err != nil {
		writeJSONError(w, http.StatusBadRequest, concierge.EINVALID, "alert_id: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	now := l.cfg.Now().UTC()
	if err := l.claims.Claim(ctx, req.AlertID, s.Name); err != nil {
		l.deskError(w, "claim", req.AlertID, err)
		return
	}
	l.log.Info("alert claimed", slog.String("alert", req.AlertID), slog.String("staff", s.Name))
	writeJSON(w, http.StatusOK, claimResponse{AlertID: req.AlertID, By: s.Name, Time: now})
}

// rejectRequest carries the customer_id the page showed, but the desk
// uses its own record of the alert: a page cannot name another customer.
type rejectRequest struct {
	AlertID    string `json:"alert_id"`
	CustomerID string `json:"customer_id"`
	Reason     string `json:"reason"`
}

// maxReasonLen bounds the free text of a "not this person" mark.
const maxReasonLen = 200

// handleReject marks an alert as naming the wrong customer: every page
// withdraws it, and the daemon tightens that customer's match.
func (l *Lobby) handleReject(w http.ResponseWriter, r *http.Request, s session) {
	var req rejectRequest
	if !decodeJSONBody(w, r, maxJSONBody, &req) {
		return
	}
	if err := checkAlertID(req.AlertID); err != nil {
		writeJSONError(w, http.StatusBadRequest, concierge.EINVALID, "alert_id: %v", err)
		return
	}
	if utf8.RuneCountInString(req.Reason) > maxReasonLen {
		writeJSONError(w, http.StatusBadRequest, concierge.EINVALID, "reason: at most %d characters", maxReasonLen)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	if err := l.claims.Reject(ctx, req.AlertID, s.Name, req.Reason); err != nil {
		l.deskError(w, "mark", req.AlertID, err)
		return
	}
	l.log.Info("alert marked as the wrong person", slog.String("alert", req.AlertID), slog.String("staff", s.Name))
	w.WriteHeader(http.StatusNoContent)
}

// cardRequest is a Yes or No to a verify card.
type cardRequest struct {
	CardID string `json:"card_id"`
}

// handleCard answers a verify card for the signed-in person: yes makes it
// an arrival that every page shows (with the same id), no deletes it and
// its face. Either way the card leaves this page on success.
func (l *Lobby) handleCard(yes bool) func(http.ResponseWriter, *http.Request, session) {
	what, answer := "dismissal", l.dismiss
	if yes {
		what, answer = "confirmation", l.confirm
	}
	return func(w http.ResponseWriter, r *http.Request, s session) {
		if l.cards == nil {
			writeJSONError(w, http.StatusNotFound, concierge.ENOTFOUND, "this branch sends no verify cards")
			return
		}
		var req cardRequest
		if !decodeJSONBody(w, r, maxJSONBody, &req) {
			return
		}
		if err := checkAlertID(req.CardID); err != nil {
			writeJSONError(w, http.StatusBadRequest, concierge.EINVALID, "card_id: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
		defer cancel()
		if err := answer(ctx, req.CardID, s.Name); err != nil {
			l.deskError(w, what, req.CardID, err)
			return
		}
		l.log.Info("verify card answered", slog.String("card", req.CardID), slog.Bool("yes", yes), slog.String("staff", s.Name))
		w.WriteHeader(http.StatusNoContent)
	}
}

func (l *Lobby) confirm(ctx context.Context, id, by string) error {
	return l.cards.Confirm(ctx, id, by)
}
func (l *Lobby) dismiss(ctx context.Context, id, by string) error {
	return l.cards.Dismiss(ctx, id, by)
}

// deskError answers a claim or mark the desk refused: its own caller-safe
// reason for refusals, 503 for anything else.
func (l *Lobby) deskError(w http.ResponseWriter, what, alertID string, err error) {
	switch code := concierge.ErrorCode(err); code {
	case concierge.EINVALID, concierge.ENOTFOUND, concierge.ECONFLICT:
		writeError(w, err)
	default:
		l.log.Error(what+" failed", slog.String("alert", alertID), slog.Any("error", err))
		writeJSONError(w, http.StatusServiceUnavailable, concierge.EUNAVAILABLE, "the %s could not be recorded; try again", what)
	}
}

// checkAlertID accepts an alert id as the daemon makes them (a ULID) and
// anything similar, but nothing that could confuse a NATS message id.
func checkAlertID(id string) error {
	if id == "" || len(id) > 64 {
		return errors.New("must be 1 to 64 characters")
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '-' || r == '_') {
			return fmt.Errorf("%q holds a character other than letters, digits, '-' and '_'", id)
		}
	}
	return nil
}
