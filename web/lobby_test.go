package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
)

// Without staff the lobby is closed, and says why, on every path.
func TestLobbyDisabled(t *testing.T) {
	l, err := NewLobby(LobbyConfig{Logger: lobbyLogger()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Enabled() {
		t.Fatal("enabled without staff")
	}
	for _, path := range []string{"/lobby/", "/lobby/index.html", "/lobby/events", "/lobby/me"} {
		w := httptest.NewRecorder()
		l.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `"code":"not_found"`) ||
			!strings.Contains(w.Body.String(), "web.staff") {
			t.Errorf("GET %s: %d %s", path, w.Code, w.Body)
		}
	}
	w := httptest.NewRecorder()
	l.ServeHTTP(w, httptest.NewRequest("POST", "/lobby/signin", strings.NewReader(`{"token":"x"}`)))
	if w.Code != http.StatusNotFound {
		t.Errorf("POST signin on a disabled lobby: %d", w.Code)
	}
	// Staff without a key, or a short one, is a configuration error.
	if _, err := NewLobby(LobbyConfig{Staff: []Staff{{Name: "Zhang", Password: zhangPassword}}}, nil, nil); err == nil {
		t.Error("lobby with staff but no session key or NATS accepted")
	}
}

func TestLobbyPageAndRequestChecks(t *testing.T) {
	env := newLobbyEnv(t, nil)
	c := env.client()

	// The page and its assets are public; the data is not.
	for path, ctype := range map[string]string{"": "text/html", "lobby.js": "text/javascript", "i18n.js": "text/javascript", "lobby.css": "text/css"} {
		resp, data := c.do("GET", path, nil)
		want(t, resp, data, http.StatusOK, "")
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("/lobby/%s: %s, CSP %q", path, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
		}
	}
	resp, data := c.do("GET", "", nil)
	if !strings.Contains(string(data), `<script type="module" src="lobby.js">`) {
		t.Fatalf("index: %s", data)
	}

	post := func(path, ctype, body string, header ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", env.http.URL+"/lobby/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, data
	}
	resp, data = post("signin", "application/x-www-form-urlencoded", "name=Zhang&password=x")
	want(t, resp, data, http.StatusUnsupportedMediaType, "unsupported_media_type")
	resp, data = post("signin", "application/json", `{"name":"Zhang","password":"`+strings.Repeat("x", 5000)+`"}`)
	want(t, resp, data, http.StatusRequestEntityTooLarge, concierge.EINVALID)
	resp, data = post("signin", "application/json", `{"name":"Zhang","pasword":"x"}`)
	want(t, resp, data, http.StatusBadRequest, concierge.EINVALID)
	resp, data = post("signin", "application/json", `{"name":"Zhang"`)
	want(t, resp, data, http.StatusBadRequest, concierge.EINVALID)
	resp, data = post("signin", "application/json", `{"name":"Zhang"}`)
	want(t, resp, data, http.StatusBadRequest, concierge.EINVALID)
	// Another site's page posting with the tablet's cookie.
	resp, data = post("signin", "application/json", `{"token":"`+tabletToken+`"}`, "Sec-Fetch-Site", "cross-site")
	want(t, resp, data, http.StatusForbidden, concierge.EUNAUTHORIZED)
	resp, data = post("signin", "application/json", `{"token":"`+tabletToken+`"}`, "Origin", "http://evil.example")
	want(t, resp, data, http.StatusForbidden, concierge.EUNAUTHORIZED)
	resp, data = post("index.html", "application/json", `{}`)
	want(t, resp, data, http.StatusMethodNotAllowed, concierge.EINVALID)

	c.signIn("Zhang", zhangPassword)
	for _, body := range []map[string]string{{"alert_id": ""}, {"alert_id": "a.b"}, {"alert_id": strings.Repeat("A", 65)}} {
		resp, data = c.do("POST", "claim", body)
		want(t, resp, data, http.StatusBadRequest, concierge.EINVALID)
	}
	// The desk knows no such alert: nothing is published.
	resp, data = c.do("POST", "reject", map[string]string{"alert_id": "01ABC", "customer_id": ""})
	want(t, resp, data, http.StatusNotFound, concierge.ENOTFOUND)
	resp, data = c.do("POST", "claim", map[string]string{"alert_id": "01ABC"})
	want(t, resp, data, http.StatusNotFound, concierge.ENOTFOUND)
	resp, data = c.do("POST", "reject", map[string]string{"alert_id": "01ABC", "customer_id": "C1", "reason": strings.Repeat("长", 201)})
	want(t, resp, data, http.StatusBadRequest, concierge.EINVALID)
	resp, data = c.do("GET", "events?after=abc", nil)
	want(t, resp, data, http.StatusBadRequest, concierge.EINVALID)
}

// A claim is first-wins, shows on every screen through the stream, and
// names the signed-in person, whatever the request says.
func TestLobbyClaimAndReject(t *testing.T) {
	env := newLobbyEnv(t, nil)
	zhang, li := env.client(), env.client()
	zhang.signIn("Zhang", zhangPassword)
	li.signIn("李经理", liPassword)
	events, _ := li.stream("")
	if ev := next(t, events, 5*time.Second); ev.Name != "hello" || decode[helloView](t, ev).Name != "李经理" {
		t.Fatalf("first event %+v", ev)
	}
	a := env.arrival(1, nil, nil)
	b := env.arrival(2, nil, nil)
	for _, id := range []string{a.ID, b.ID} {
		if ev := next(t, events, 5*time.Second); ev.Name != "arrival" || decode[arrivalView](t, ev).ID != id {
			t.Fatalf("want arrival %s, got %+v", id, ev)
		}
	}

	resp, data := zhang.do("POST", "claim", map[string]string{"alert_id": a.ID})
	want(t, resp, data, http.StatusOK, "")
	resp, data = li.do("POST", "claim", map[string]string{"alert_id": a.ID})
	want(t, resp, data, http.StatusConflict, concierge.ECONFLICT)
	ev := next(t, events, 5*time.Second)
	if c := decode[claimView](t, ev); ev.Name != "claim" || c.AlertID != a.ID || c.By != "Zhang" {
		t.Fatalf("claim event %+v", ev)
	}

	resp, data = li.do("POST", "reject", map[string]string{"alert_id": b.ID, "customer_id": b.CustomerID, "reason": "different person"})
	want(t, resp, data, http.StatusNoContent, "")
	resp, data = zhang.do("POST", "reject", map[string]string{"alert_id": b.ID, "customer_id": b.CustomerID})
	want(t, resp, data, http.StatusConflict, concierge.ECONFLICT)
	ev = next(t, events, 5*time.Second)
	if r := decode[rejectionView](t, ev); ev.Name != "rejection" || r.AlertID != b.ID || r.By != "李经理" || r.Reason != "different person" {
		t.Fatalf("rejection event %+v", ev)
	}
	// A withdrawn alert can no longer be claimed.
	env.book.Set(b.ID, alert.AlertRecord{CustomerID: b.CustomerID, At: b.At, Rejected: true})
	resp, data = zhang.do("POST", "claim", map[string]string{"alert_id": b.ID})
	want(t, resp, data, http.StatusConflict, concierge.ECONFLICT)

	// An escalation, as the daemon's escalator publishes it, marks the card.
	claims, err := alert.NewClaimer(alert.ConnConfig{URL: env.srv.ClientURL()}, lobbyBranch, lobbyLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer claims.Close()
	c := env.arrival(3, nil, nil)
	if ev := next(t, events, 5*time.Second); ev.Name != "arrival" {
		t.Fatalf("want arrival, got %+v", ev)
	}
	if _, err := claims.Escalate(context.Background(), alert.Escalation{AlertID: c.ID, CustomerID: c.CustomerID,
		After: alert.Seconds(2 * time.Minute), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ev = next(t, events, 5*time.Second)
	if e := decode[escalationView](t, ev); ev.Name != "escalation" || e.AlertID != c.ID || time.Duration(e.After) != 2*time.Minute {
		t.Fatalf("escalation event %+v", ev)
	}
}

// A page that lost its stream resumes after the last event it saw, with
// everything published meanwhile in order and nothing twice; a new page
// gets the backlog of alerts still current, without expired ones.
func TestLobbyEventsCatchUp(t *testing.T) {
	env := newLobbyEnv(t, nil)
	c := env.client()
	c.signIn("Zhang", zhangPassword)
	// Expired before anyone could see it: never shown.
	old := env.arrival(0, nil, func(a *checkin.Arrival) { a.At = a.At.Add(-time.Hour); a.FirstSeen = a.At })
	a := env.arrival(1, nil, nil)

	events, stop := c.stream("")
	next(t, events, 5*time.Second) // hello
	ev := next(t, events, 5*time.Second)
	if ev.Name != "arrival" || decode[arrivalView](t, ev).ID != a.ID || ev.ID == "" {
		t.Fatalf("backlog: want arrival %s (not the expired %s), got %+v", a.ID, old.ID, ev)
	}
	last := ev.ID
	stop()

	b := env.arrival(2, nil, nil)
	resp, data := c.do("POST", "claim", map[string]string{"alert_id": a.ID})
	want(t, resp, data, http.StatusOK, "")
	d := env.arrival(3, nil, nil)

	for _, how := range []string{"Last-Event-ID", "after"} {
		var events <-chan sseEvent
		var stop func()
		if how == "after" {
			events, stop = c.streamPath("events?after=" + last)
		} else {
			events, stop = c.stream(last)
		}
		if ev := next(t, events, 5*time.Second); ev.Name != "hello" {
			t.Fatalf("%s: first event %+v", how, ev)
		}
		var got []string
		for len(got) < 3 {
			ev := next(t, events, 5*time.Second)
			switch ev.Name {
			case "arrival":
				got = append(got, "arrival "+decode[arrivalView](t, ev).ID)
			case "claim":
				got = append(got, "claim "+decode[claimView](t, ev).AlertID)
			default:
				got = append(got, ev.Name)
			}
		}
		want := []string{"arrival " + b.ID, "claim " + a.ID, "arrival " + d.ID}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s %s: got %v, want %v", how, last, got, want)
		}
		select {
		case ev := <-events:
			if ev.Comment == "" {
				t.Fatalf("%s: unexpected event %+v", how, ev)
			}
		case <-time.After(300 * time.Millisecond):
		}
		stop()
	}
}

// Risk flags reach the branch manager only: the lobby's stream never
// carries them, nor the alert of a risk customer that staff are not to be
// alerted to, even though the manager's message is in the same stream.
func TestLobbyNeverShowsRiskFlags(t *testing.T) {
	env := newLobbyEnv(t, nil)
	c := env.client()
	c.signIn("Zhang", zhangPassword)
	risky := env.arrival(1, []checkin.RiskFlag{{Kind: "aml", Reason: "R042"}}, nil)
	marker := env.arrival(2, nil, nil)

	// The manager's copy with the flags is really there.
	sub, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: lobbyBranch, Conn: alert.ConnConfig{URL: env.srv.ClientURL()}, Logger: lobbyLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Open(); err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for m, err := range sub.Alerts(ctx, alert.FeedManager, alert.Start{All: true}) {
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != risky.ID || len(m.RiskFlags) != 1 {
			t.Fatalf("manager message %+v", m)
		}
		break
	}

	events, _ := c.stream("")
	var raw strings.Builder
	var ids []string
	for len(ids) < 2 {
		ev := next(t, events, 5*time.Second)
		raw.WriteString(ev.Name + " " + ev.Data + "\n")
		if ev.Name == "arrival" {
			ids = append(ids, decode[arrivalView](t, ev).ID)
		}
	}
	if ids[0] != risky.ID || ids[1] != marker.ID {
		t.Fatalf("arrivals %v, want %s then %s", ids, risky.ID, marker.ID)
	}
	// Nor do the manager's or the visit feed's copies follow.
	select {
	case ev := <-events:
		if ev.Comment == "" {
			t.Fatalf("unexpected event %+v", ev)
		}
	case <-time.After(300 * time.Millisecond):
	}
	for _, leak := range []string{"risk", "aml", "R042"} {
		if strings.Contains(raw.String(), leak) {
			t.Fatalf("the lobby stream mentions %q:\n%s", leak, raw.String())
		}
	}
}

// Idle streams carry heartbeats; a stream ends with "expired" when its
// session does, and at once when the lobby closes.
func TestLobbyStreamLifetime(t *testing.T) {
	env := newLobbyEnv(t, func(c *LobbyConfig) {
		c.Heartbeat = 50 * time.Millisecond
		c.SessionTTL = time.Hour
	})
	c := env.client()
	c.signIn("Zhang", zhangPassword)
	events, _ := c.stream("")
	next(t, events, 5*time.Second) // hello
	select {
	case ev := <-events:
		if ev.Comment != ": ping" {
			t.Fatalf("want a heartbeat, got %+v", ev)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no heartbeat")
	}

	// A session with 300 ms left: the stream says so and ends.
	resp, data := c.do("GET", "me", nil)
	want(t, resp, data, http.StatusOK, "")
	env.clock.Advance(decode[me](t, sseEvent{Data: string(data)}).ExpiresAt.Sub(env.clock.Now()) - 300*time.Millisecond)
	events, _ = c.stream("")
	next(t, events, 5*time.Second) // hello
	if ev := next(t, events, 5*time.Second); ev.Name != "expired" {
		t.Fatalf("want expired, got %+v", ev)
	}
	for ev := range events {
		if ev.Comment == "" {
			t.Fatalf("event after expiry: %+v", ev)
		}
	}

	c2 := env.client()
	c2.signIn("Zhang", zhangPassword)
	events, _ = c2.stream("")
	next(t, events, 5*time.Second) // hello
	env.lobby.Close()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("stream still open 5s after Close")
		}
	}
}
