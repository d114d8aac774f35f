package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
)

// card publishes a verify card as the daemon's check-in would.
func (e *lobbyEnv) card(n int) checkin.Card {
	e.t.Helper()
	c := checkin.Card{ID: ulid.Make().String(), Branch: lobbyBranch, Camera: "door-2", At: e.clock.Now().UTC(),
		CustomerID: fmt.Sprintf("C%04d", 3000+n), DisplayName: "王*", Distance: 0.72, Margin: 0.1, Votes: 1,
		Tier:      &checkin.Tier{Scheme: "icbc-stars", Level: "5", LevelName: "五星", VIP: true, FormOfAddress: "王女士"},
		Thumbnail: []byte("jpeg of the live face")}
	if err := e.cards.NotifyCard(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// The lobby page shows a verify card with the face and the name to ask
// about, and nothing else; Yes makes it an arrival every page shows, with
// the member of staff; No deletes it; a second answer, an unknown card and
// a bad id get a JSON reason; a reconnecting page gets the open cards again.
func TestLobbyVerifyCards(t *testing.T) {
	env := newLobbyEnv(t, func(c *LobbyConfig) { c.Cards = true })
	zhang, li := env.client(), env.client()
	zhang.signIn("Zhang", zhangPassword)
	li.signIn("李经理", liPassword)
	events, stop := li.stream("")
	if ev := next(t, events, 5*time.Second); ev.Name != "hello" {
		t.Fatalf("first event %+v", ev)
	}
	c1, c2 := env.card(1), env.card(2)
	for _, c := range []checkin.Card{c1, c2} {
		ev := next(t, events, 5*time.Second)
		v := decode[verifyView](t, ev)
		if ev.Name != "verify" || ev.ID != "" || v.ID != c.ID || v.Name != "王女士" || string(v.Thumbnail) != "jpeg of the live face" ||
			v.Tier == nil || v.Tier.LevelName != "五星" || !v.ExpiresAt.After(v.Time) {
			t.Fatalf("verify event %+v", ev)
		}
		for _, leak := range []string{c.CustomerID, "customer", "distance"} {
			if strings.Contains(ev.Data, leak) {
				t.Fatalf("card view carries %q: %s", leak, ev.Data)
			}
		}
	}

	resp, data := zhang.do("POST", "confirm", map[string]string{"card_id": c1.ID})
	want(t, resp, data, http.StatusNoContent, "")
	resp, data = li.do("POST", "confirm", map[string]string{"card_id": c1.ID})
	want(t, resp, data, http.StatusNotFound, concierge.ENOTFOUND)
	// The arrival (through the outbox) and the answer (to every page, so
	// that the card leaves other tablets at once) come from two streams,
	// in either order.
	gotArrival, gotAnswer := false, false
	for !gotArrival || !gotAnswer {
		ev := next(t, events, 5*time.Second)
		switch ev.Name {
		case "arrival":
			if a := decode[arrivalView](t, ev); a.ID != c1.ID || a.VerifiedBy != "Zhang" || a.Customer.ID != c1.CustomerID {
				t.Fatalf("confirmed card's arrival %+v", ev)
			}
			gotArrival = true
		case "verify_answer":
			if got := decode[verifyAnswerView](t, ev); got != (verifyAnswerView{c1.ID, "confirmed"}) || strings.Contains(ev.Data, "by") {
				t.Fatalf("answer %+v", ev)
			}
			gotAnswer = true
		default:
			t.Fatalf("unexpected event %+v", ev)
		}
	}
	// It is an alert like any other: it can be claimed.
	resp, data = li.do("POST", "claim", map[string]string{"alert_id": c1.ID})
	want(t, resp, data, http.StatusOK, "")
	if ev := next(t, events, 5*time.Second); ev.Name != "claim" {
		t.Fatalf("want the claim, got %+v", ev)
	}

	resp, data = li.do("POST", "dismiss", map[string]string{"card_id": c2.ID})
	want(t, resp, data, http.StatusNoContent, "")
	ev := next(t, events, 5*time.Second)
	if got := decode[verifyAnswerView](t, ev); ev.Name != "verify_answer" || got != (verifyAnswerView{c2.ID, "dismissed"}) {
		t.Fatalf("want the dismissal, got %+v", ev)
	}
	resp, data = zhang.do("POST", "confirm", map[string]string{"card_id": c2.ID})
	want(t, resp, data, http.StatusNotFound, concierge.ENOTFOUND)
	resp, data = zhang.do("POST", "confirm", map[string]string{"card_id": "a.>"})
	want(t, resp, data, http.StatusBadRequest, concierge.EINVALID)
	anon := env.client()
	resp, data = anon.do("POST", "confirm", map[string]string{"card_id": c2.ID})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("confirm without signing in: %d %s", resp.StatusCode, data)
	}

	// A page that reconnects gets the cards still open, and only those.
	stop()
	c3 := env.card(3)
	events, _ = li.stream("")
	var cards []string
	deadline := time.After(5 * time.Second)
	for len(cards) == 0 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.Name == "verify" {
				cards = append(cards, decode[verifyView](t, ev).ID)
			}
		case <-deadline:
			t.Fatal("no card after reconnecting")
		}
	}
	if cards[0] != c3.ID {
		t.Fatalf("reconnected page got cards %v, want %s (the others were answered)", cards, c3.ID)
	}
	// An expired card is not shown.
	env.clock.Advance(alert.DefaultVerifyTTL + time.Second)
	events, _ = zhang.stream("")
	for {
		select {
		case ev := <-events:
			if ev.Name == "verify" {
				t.Fatalf("expired card shown: %s", ev.Data)
			}
			continue
		case <-time.After(time.Second):
		}
		break
	}
}

// Without a verify band the page's Yes / No have nothing to answer.
func TestLobbyNoVerifyCards(t *testing.T) {
	env := newLobbyEnv(t, nil)
	c := env.client()
	c.signIn("Zhang", zhangPassword)
	resp, data := c.do("POST", "confirm", map[string]string{"card_id": ulid.Make().String()})
	want(t, resp, data, http.StatusNotFound, concierge.ENOTFOUND)
}
