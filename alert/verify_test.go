package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// card is the n-th verify card of a test, decided now.
func testCard(n int, now time.Time) checkin.Card {
	a := vipArrival(n)
	return checkin.Card{ID: a.ID, Branch: branch, Camera: "door-1", At: now, CustomerID: a.CustomerID,
		DisplayName: "王女士", Tier: a.Tier, Distance: 0.71, Margin: 0.09, Votes: 2, FirstSeen: now.Add(-time.Second),
		Thumbnail: []byte(fmt.Sprintf("jpeg of face %d", n))}
}

// cardsIn returns the ids of the cards the verify stream holds.
func cardsIn(ctx context.Context, js jetstream.JetStream) ([]string, error) {
	ids, _, err := verifyStream(ctx, js)
	return ids, err
}

// verifyStream returns the ids of the cards the verify stream holds and
// its answers as "id answer by".
func verifyStream(ctx context.Context, js jetstream.JetStream) (ids, answers []string, err error) {
	s, err := js.Stream(ctx, alert.VerifyStreamName(branch))
	if err != nil {
		return nil, nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, nil, err
	}
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		var a alert.CardAnswer
		if json.Unmarshal(m.Data, &a) == nil && a.Schema == alert.VerifyAnswerSchema {
			if strings.Contains(string(m.Data), "thumbnail") || strings.Contains(string(m.Data), "customer") {
				return nil, nil, fmt.Errorf("an answer carries card data: %s", m.Data)
			}
			answers = append(answers, a.CardID+" "+a.Answer+" "+a.By)
			continue
		}
		c, err := alert.DecodeCard(m.Data)
		if err != nil {
			return nil, nil, err
		}
		ids = append(ids, c.ID)
	}
	return ids, answers, nil
}

// TestVerifyCards on the closed server: a card goes to its own stream, in
// memory and kept for the card's life only, never into the branch stream;
// the lobby reads it with the face but cannot publish one; a confirm
// through the desk makes a normal arrival with verified_by and deletes the
// card; a dismiss deletes it at once; erasure deletes a withdrawn
// customer's cards.
func TestVerifyCards(t *testing.T) {
	srv, creds := closedServer(t)
	url := srv.ClientURL()
	ctx := context.Background()
	db := testdb.Open(t)
	p := openPublisher(t, url, db, func(c *alert.PublisherConfig) {
		c.Conn = creds.Conn(url, "daemon", alert.IdentityDaemon)
		c.AlertTTL = 100 * 365 * 24 * time.Hour
	})
	// Confirmed cards become arrivals through check-in and the publisher,
	// as in the daemon.
	cfg := checkin.DefaultConfig()
	cfg.Branch = branch
	svc, err := checkin.NewService(cfg, enroll.NewGallery("m"))
	if err != nil {
		t.Fatal(err)
	}
	svc.Notifier = p
	svc.Logger = testLogger()
	now := time.Now()
	cards, err := alert.NewCards(alert.CardsConfig{Branch: branch, Conn: creds.Conn(url, "cards", alert.IdentityDaemon),
		TTL: 2 * time.Minute, Confirmed: svc.ConfirmCard, Logger: testLogger(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := cards.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cards.Close() })
	// Something in the main stream first, so that it exists.
	if err := p.Notify(ctx, vipArrival(9), nil); err != nil {
		t.Fatal(err)
	}
	c1, c2, c3 := testCard(1, now), testCard(2, now), testCard(3, now)
	for _, c := range []checkin.Card{c1, c2, c3} {
		if err := cards.NotifyCard(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	_, djs, _ := connectAs(t, url, creds, alert.IdentityDaemon)
	vs, err := djs.Stream(ctx, alert.VerifyStreamName(branch))
	if err != nil {
		t.Fatal(err)
	}
	if vc := vs.CachedInfo().Config; vc.Storage != jetstream.MemoryStorage || vc.MaxAge != 2*time.Minute {
		t.Fatalf("verify stream storage %v max age %v, want memory and the card's TTL", vc.Storage, vc.MaxAge)
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if pending(t, db) > 0 {
			return errors.New("outbox not drained")
		}
		return nil
	})
	if msgs, err := streamMsgs(ctx, djs, alert.Subject(branch, alert.FeedVerify)); err != nil || len(msgs) != 0 {
		t.Fatalf("the branch stream holds %d cards (%v)", len(msgs), err)
	}
	if name, err := djs.StreamNameBySubject(ctx, alert.Subject(branch, alert.FeedVerify)); err != nil || name != alert.VerifyStreamName(branch) {
		t.Fatalf("verify subject is in stream %q (%v)", name, err)
	}

	// The lobby reads the cards, faces included.
	lobby := creds.Conn(url, "lobby", alert.IdentityLobby)
	s, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: branch, Conn: lobby, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	var read []alert.CardMessage
	for e, err := range s.Events(rctx, alert.Start{All: true}, alert.FeedVerify) {
		if err != nil {
			t.Fatal(err)
		}
		read = append(read, *e.Card)
		if len(read) == 3 {
			break
		}
	}
	cancel()
	if len(read) != 3 || read[0].ID != c1.ID || read[0].Schema != alert.VerifySchema || read[0].Customer.DisplayName != "王女士" ||
		string(read[0].Thumbnail) != "jpeg of face 1" || !read[0].ExpiresAt.Equal(now.Add(2*time.Minute).UTC()) {
		t.Fatalf("lobby read %+v", read)
	}
	// ... but cannot publish one, nor delete one.
	_, ljs, _ := connectAs(t, url, creds, alert.IdentityLobby)
	pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if _, err := ljs.Publish(pctx, alert.Subject(branch, alert.FeedVerify), []byte(`{"schema":"concierge.verify.v1"}`)); err == nil {
		t.Error("lobby published a card")
	}
	pcancel()
	pctx, pcancel = context.WithTimeout(ctx, 500*time.Millisecond)
	if st, err := ljs.Stream(pctx, alert.VerifyStreamName(branch)); err == nil {
		if err := st.DeleteMsg(pctx, 1); err == nil {
			t.Error("lobby deleted a card")
		}
	}
	pcancel()

	desk, err := alert.NewDesk(alert.DeskConfig{Branch: branch, Conn: creds.Conn(url, "desk", alert.IdentityDaemon),
		Book: testenv.NewAlertBook(), Staff: testenv.StaffList{"Zhang": "pin-1234"}, Cards: cards, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer desk.Close()
	if err := desk.Listen(); err != nil {
		t.Fatal(err)
	}
	ask := func(verb, id, secret string) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return alert.AskDesk(ctx, lobby, branch, verb, alert.DeskRequest{AlertID: id, By: "Zhang", Secret: secret}, testLogger())
	}
	if err := ask("confirm", c1.ID, "wrong"); concierge.ErrorCode(err) != concierge.EUNAUTHORIZED {
		t.Fatalf("confirm with a wrong password: %v", err)
	}
	if err := ask("confirm", c1.ID, "pin-1234"); err != nil {
		t.Fatal(err)
	}
	if err := ask("confirm", c1.ID, "pin-1234"); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("second confirm: %v", err)
	}
	if err := ask("dismiss", c2.ID, "pin-1234"); err != nil {
		t.Fatal(err)
	}
	if err := ask("confirm", "01JP98PWCR5S2K33TS5K32AFDS", "pin-1234"); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("confirm of an unknown card: %v", err)
	}
	ids, answers, err := verifyStream(ctx, djs)
	if err != nil || !slices.Equal(ids, []string{c3.ID}) {
		t.Fatalf("verify stream holds %v (%v), want only the unanswered card", ids, err)
	}
	// Every screen learns of the answers, without the faces.
	if want := []string{c1.ID + " confirmed Zhang", c2.ID + " dismissed Zhang"}; !slices.Equal(answers, want) {
		t.Fatalf("answers %v, want %v", answers, want)
	}
	// The confirmed card is a normal arrival, with the member of staff.
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		msgs, err := streamMsgs(ctx, djs, alert.Subject(branch, alert.FeedArrival))
		if err != nil {
			return err
		}
		for _, m := range msgs {
			a, err := alert.Decode(m.Data)
			if err != nil {
				return err
			}
			if a.ID == c1.ID {
				if a.VerifiedBy != "Zhang" || a.Customer.ID != c1.CustomerID || len(a.Thumbnail) != 0 {
					return fmt.Errorf("arrival %+v", a)
				}
				return nil
			}
		}
		return errors.New("no arrival for the confirmed card")
	})

	// An expired card cannot be confirmed.
	now = now.Add(3 * time.Minute)
	if err := cards.Confirm(ctx, c3.ID, "Zhang"); concierge.ErrorCode(err) != concierge.ECONFLICT {
		t.Fatalf("confirm of an expired card: %v", err)
	}
	now = now.Add(-3 * time.Minute)

	// Erasure deletes a withdrawn customer's cards.
	e, err := alert.NewEraser(alert.EraserConfig{Branch: branch, Conn: creds.Conn(url, "eraser", alert.IdentityDaemon),
		Queue: &queue{}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Open(); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n, err := e.Erase(ctx, alert.ErasureRequest{ID: 1, CustomerID: c3.CustomerID}); err != nil || n != 1 {
		t.Fatalf("erase: %d, %v", n, err)
	}
	if ids, err := cardsIn(ctx, djs); err != nil || len(ids) != 0 {
		t.Fatalf("verify stream after erasure: %v (%v)", ids, err)
	}
	// The erasure message takes the card off every screen.
	msgs, err := streamMsgs(ctx, djs, alert.Subject(branch, alert.FeedErasure))
	if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), c3.ID) || strings.Contains(string(msgs[0].Data), c3.CustomerID) {
		t.Fatalf("erasure messages %d (%v)", len(msgs), err)
	}
	if !strings.HasPrefix(alert.VerifyStreamName(branch), alert.StreamName(branch)) {
		t.Fatal("verify stream name")
	}
}

// Cards open while NATS is down, as the daemon may start before its
// server; the first card after the server comes up makes the stream, and
// so does the first after a restart, which does not keep a memory stream.
func TestCardsNATSLater(t *testing.T) {
	r := testenv.RunNATS(t)
	r.Stop() // down when the client starts
	cards, err := alert.NewCards(alert.CardsConfig{Branch: branch, Conn: connConfig(r.URL()), Logger: testLogger(),
		PublishTimeout: 500 * time.Millisecond, Confirmed: func(context.Context, checkin.Card, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	if err := cards.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer cards.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Open took %v with NATS down", d)
	}
	if err := cards.NotifyCard(ctx, testCard(1, time.Now())); concierge.ErrorCode(err) != concierge.EUNAVAILABLE || cards.Err() == "" {
		t.Fatalf("card with NATS down: %v (Err %q)", err, cards.Err())
	}
	for round := range 2 {
		r.Start()
		c := testCard(2+round, time.Now())
		testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			if err := cards.NotifyCard(ctx, c); err != nil {
				return fmt.Errorf("round %d: %w", round, err)
			}
			return nil
		})
		if cards.Err() != "" {
			t.Fatalf("round %d: Err %q after a card went out", round, cards.Err())
		}
		_, js := connect(t, r.URL())
		if ids, err := cardsIn(ctx, js); err != nil || !slices.Contains(ids, c.ID) {
			t.Fatalf("round %d: verify stream holds %v (%v)", round, ids, err)
		}
		r.Stop()
	}
}
