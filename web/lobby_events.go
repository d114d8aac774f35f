package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"concierge"
	"concierge/alert"
)

// lobbyFeeds are the only feeds a lobby page reads. The manager's feed,
// the one that carries risk flags, is never among them.
var lobbyFeeds = []alert.Feed{alert.FeedArrival, alert.FeedClaim, alert.FeedEscalation, alert.FeedRejection, alert.FeedErasure}

// The event stream's payloads. Each copies the fields a lobby screen shows
// from the alert message, so that a field added to the message later
// reaches the screen only when it is added here.
type (
	arrivalView struct {
		ID                  string              `json:"id"`
		Camera              string              `json:"camera"`
		Time                time.Time           `json:"time"`
		FirstSeen           *time.Time          `json:"first_seen,omitempty"`
		Customer            alert.Customer      `json:"customer"`
		Tier                *alert.Tier         `json:"tier,omitempty"`
		ServiceLevel        *alert.ServiceLevel `json:"service_level,omitempty"`
		RelationshipManager string              `json:"relationship_manager,omitempty"`
		Match               alert.Match         `json:"match"`
		ExpiresAt           time.Time           `json:"expires_at"`
		Thumbnail           []byte              `json:"thumbnail,omitempty"`   // only when the branch sends faces
		VerifiedBy          string              `json:"verified_by,omitempty"` // staff confirmed it from a verify card
	}
	claimView struct {
		AlertID string    `json:"alert_id"`
		By      string    `json:"by"`
		Time    time.Time `json:"time"`
	}
	escalationView struct {
		AlertID string        `json:"alert_id"`
		After   alert.Seconds `json:"after_s"`
		Time    time.Time     `json:"time"`
	}
	rejectionView struct {
		AlertID string    `json:"alert_id"`
		By      string    `json:"by"`
		Reason  string    `json:"reason,omitempty"`
		Time    time.Time `json:"time"`
	}
	// verifyView is a "please verify" card: the live face and the name to
	// ask about, nothing else (no customer id, no distance).
	verifyView struct {
		ID        string      `json:"id"`
		Camera    string      `json:"camera"`
		Time      time.Time   `json:"time"`
		Name      string      `json:"name"`                // form of address (王女士), else the masked name
		Tier      *alert.Tier `json:"tier,omitempty"`      // the badge
		ExpiresAt time.Time   `json:"expires_at"`          // the card leaves the screen then
		Thumbnail []byte      `json:"thumbnail,omitempty"` // the point of the card
	}
	// verifyAnswerView closes a card on every page: it was answered.
	verifyAnswerView struct {
		CardID string `json:"card_id"`
		Answer string `json:"answer"` // confirmed or dismissed
	}
	// erasureView removes the cards of a customer who withdrew consent.
	erasureView struct {
		AlertIDs []string `json:"alert_ids"`
	}
	// helloView opens every stream: who is signed in, until when, and the
	// server's clock, so a tablet with a wrong clock still counts waiting
	// times and expiries right.
	helloView struct {
		Name       string    `json:"name"`
		ExpiresAt  time.Time `json:"expires_at"`
		ServerTime time.Time `json:"server_time"`
	}
)

// view turns a stream event into the SSE event name and payload a lobby
// screen gets; "" means the screen gets nothing (an arrival already
// expired, or a feed the lobby does not show).
func view(e alert.Event, now time.Time) (string, any) {
	switch {
	case e.Feed == alert.FeedArrival && e.Arrival != nil:
		m := e.Arrival
		if !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt) {
			return "", nil
		}
		return "arrival", arrivalView{ID: m.ID, Camera: m.Camera, Time: m.Time, FirstSeen: m.FirstSeen,
			Customer: m.Customer, Tier: m.Tier, ServiceLevel: m.ServiceLevel,
			RelationshipManager: m.RelationshipManager, Match: m.Match, ExpiresAt: m.ExpiresAt, Thumbnail: m.Thumbnail,
			VerifiedBy: m.VerifiedBy}
	case e.Feed == alert.FeedVerify && e.Card != nil:
		c := e.Card
		if !now.Before(c.ExpiresAt) {
			return "", nil
		}
		name := c.Customer.FormOfAddress
		if name == "" {
			name = c.Customer.DisplayName
		}
		return "verify", verifyView{ID: c.ID, Camera: c.Camera, Time: c.Time, Name: name, Tier: c.Tier,
			ExpiresAt: c.ExpiresAt, Thumbnail: c.Thumbnail}
	case e.Feed == alert.FeedVerify && e.CardAnswer != nil:
		return "verify_answer", verifyAnswerView{CardID: e.CardAnswer.CardID, Answer: e.CardAnswer.Answer}
	case e.Claim != nil:
		return "claim", claimView{AlertID: e.Claim.AlertID, By: e.Claim.By, Time: e.Claim.At}
	case e.Escalation != nil:
		return "escalation", escalationView{AlertID: e.Escalation.AlertID, After: e.Escalation.After, Time: e.Escalation.At}
	case e.Rejection != nil:
		return "rejection", rejectionView{AlertID: e.Rejection.AlertID, By: e.Rejection.By, Reason: e.Rejection.Reason, Time: e.Rejection.At}
	case e.Erasure != nil:
		return "erasure", erasureView{AlertIDs: e.Erasure.AlertIDs}
	}
	return "", nil
}

// startOf is where a page's stream begins: after the last event it saw
// (Last-Event-ID, which EventSource sends when it reconnects by itself, or
// else ?after= when the page reopens the stream), else the backlog of
// alerts that may still be on screen. The header wins: an EventSource
// opened with ?after= keeps that URL when it reconnects, with a newer id.
func (l *Lobby) startOf(r *http.Request) (alert.Start, error) {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("after")
	}
	if last != "" {
		seq, err := strconv.ParseUint(last, 10, 64)
		if err != nil || seq == 0 {
			return alert.Start{}, fmt.Errorf("last event id %q is not a stream sequence", last)
		}
		return alert.Start{AfterSeq: seq}, nil
	}
	return alert.Start{Since: l.cfg.Now().Add(-l.cfg.Backlog)}, nil
}

// writeTimeout bounds one write to a page: a tablet that went away
// without closing its connection is dropped at the next heartbeat.
const writeTimeout = 10 * time.Second

// handleEvents is the page's Server-Sent Events stream. Each event's id is
// its stream sequence, so a reconnecting page resumes exactly where it
// stopped. The stream ends when the page goes, the session expires or is
// signed out ("expired" event) or the lobby closes.
func (l *Lobby) handleEvents(w http.ResponseWriter, r *http.Request, s session) {
	start, err := l.startOf(r)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, concierge.EINVALID, "%v", err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(l.ctx, cancel)()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	w.WriteHeader(http.StatusOK)
	write := func(s string) error {
		// Recorders in tests cannot set deadlines; real connections can.
		if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := fmt.Fprint(w, s); err != nil {
			return err
		}
		return rc.Flush()
	}
	event := func(name string, id uint64, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		idLine := ""
		if id > 0 {
			idLine = "id: " + strconv.FormatUint(id, 10) + "\n"
		}
		return write(idLine + "event: " + name + "\ndata: " + string(data) + "\n\n")
	}

	now := l.cfg.Now()
	// retry: how soon EventSource reconnects after the stream drops.
	if write("retry: 2000\n\n") != nil ||
		event("hello", 0, helloView{Name: s.Name, ExpiresAt: s.Expires.UTC(), ServerTime: now.UTC()}) != nil {
		return
	}

	type item struct {
		e   alert.Event
		err error
	}
	items := make(chan item)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e, err := range l.sub.Events(ctx, start, lobbyFeeds...) {
			select {
			case items <- item{e, err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Verify cards live in a stream of their own, whose sequence numbers
	// are not the events' ids: they go without an id, and every
	// (re)connection reads the cards still open, which the page keeps once.
	cardsDone := make(chan struct{})
	if l.cards != nil {
		go func() {
			defer close(cardsDone)
			for e, err := range l.sub.Events(ctx, alert.Start{Since: now.Add(-l.cfg.Backlog)}, alert.FeedVerify) {
				if err == nil {
					e.Seq = 0
				}
				select {
				case items <- item{e, err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	} else {
		close(cardsDone)
	}
	// The readers are this handler's: stop them and wait before returning.
	defer func() {
		cancel()
		<-done
		<-cardsDone
	}()

	expiry := time.NewTimer(s.Expires.Sub(now))
	defer expiry.Stop()
	beat := time.NewTicker(l.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return // the subscriber closed
		case <-expiry.C:
			event("expired", 0, struct{}{})
			return
		case <-beat.C:
			// A session signed out elsewhere (or on this tablet) ends
			// its open streams too, at the next beat.
			if _, err := l.auth.check(r); err != nil {
				event("expired", 0, struct{}{})
				return
			}
			if write(": ping\n\n") != nil {
				return
			}
		case it := <-items:
			if it.err != nil {
				if it.e.Seq == 0 {
					// The subscriber cannot read at all; the page
					// reconnects and tries again.
					l.log.Error("lobby stream cannot read alerts", slog.Any("error", it.err))
					return
				}
				// One unreadable message must not blind the lobby.
				l.log.Warn("unreadable alert skipped", slog.Uint64("seq", it.e.Seq), slog.Any("error", it.err))
				continue
			}
			name, v := view(it.e, l.cfg.Now())
			if name == "" {
				continue
			}
			if event(name, it.e.Seq, v) != nil {
				return
			}
		}
	}
}
