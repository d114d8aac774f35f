package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/internal/testenv"
)

// The daemon wires verify cards end to end: with the default
// match.verify_target it opens the in-memory verify stream with the card's
// lifetime, gives check-in a band beyond the alert threshold, and its desk
// turns a confirmed card into a recorded, published arrival with
// verified_by; /healthz has nothing to say. With verify_target 0 there is no
// band, no stream and the desk answers that the branch sends no cards.
func TestDaemonVerifyCards(t *testing.T) {
	cfg, _ := enrolledConfig(t)
	cfg.Alerts.VerifyTTL = 2 * time.Minute
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if d.cards == nil || d.checkin.Band == nil || d.checkin.Cards == nil || !d.checkin.CardThumbnailsOnly {
		t.Fatalf("cards not wired: cards %v band %v", d.cards != nil, d.checkin.Band != nil)
	}
	if band, th := d.checkin.Band(), d.app.svc.Recognition().Threshold; band <= th {
		t.Fatalf("band %.3f not beyond the alert threshold %.3f", band, th)
	}
	nc, err := natsConnect(t, d.alertConn("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := js.Stream(ctx, alert.VerifyStreamName(cfg.Branch))
	if err != nil {
		t.Fatal(err)
	}
	if c := vs.CachedInfo().Config; c.Storage != jetstream.MemoryStorage || c.MaxAge != 2*time.Minute {
		t.Fatalf("verify stream %v, max age %v", c.Storage, c.MaxAge)
	}

	card := checkin.Card{ID: ulid.Make().String(), Branch: cfg.Branch, Camera: "door-1", At: time.Now().UTC(),
		CustomerID: "C1001", DisplayName: "王*", Distance: 0.7, Margin: 0.1, Thumbnail: []byte("face")}
	if err := d.cards.NotifyCard(ctx, card); err != nil {
		t.Fatal(err)
	}
	if err := d.desk.Confirm(ctx, card.ID, "Li"); err != nil {
		t.Fatal(err)
	}
	pub := d.notifier.(*alert.Publisher)
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if _, err := d.app.db.AlertRecord(ctx, card.ID); err != nil {
			return fmt.Errorf("confirmed card not in the visit log: %v", err)
		}
		if p, q := pub.Stats.Published.Load(), pub.Stats.Enqueued.Load(); q == 0 || p < q {
			return fmt.Errorf("%d of %d alert messages published", p, q)
		}
		return nil
	})
	// The confirmed card is an alert the desk knows: it can be claimed.
	if err := d.desk.Claim(ctx, card.ID, "Li"); err != nil {
		t.Fatal(err)
	}
	if code, h, raw := getHealth(t, d.HTTPAddr()); code != 200 || h.problem("verify", "") != "" {
		t.Fatalf("healthz %d %s", code, raw)
	}
	// Counted by check-in, which made none here.
	if n := metric(t, d, "concierge_verify_cards_total"); n != 0 {
		t.Fatalf("verify cards counted: %v", n)
	}
	d.Close()

	cfg.Match.VerifyTarget = 0
	cfg.NATS.StoreDir = t.TempDir()
	d = NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.cards != nil || d.checkin.Band != nil {
		t.Fatal("cards with match.verify_target 0")
	}
	if err := d.desk.Confirm(ctx, ulid.Make().String(), "Li"); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("confirm without a band: %v", err)
	}
	nc2, err := natsConnect(t, d.alertConn("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	if _, err := js2.Stream(ctx, alert.VerifyStreamName(cfg.Branch)); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("verify stream without a band: %v", err)
	}
}

// A NATS server that refuses the daemon: cards cannot go out, and /healthz
// says so once one could not be published.
func TestDaemonVerifyCardsHealth(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(`authorization { users = [ {user: concierge, password: "s3cret-pw"} ] }`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testenv.RunNATS(t, testenv.NATSConfig(func(c *alert.ServerConfig) { c.ConfigFile = conf }))
	cfg, _ := enrolledConfig(t)
	cfg.NATS.URL = srv.ClientURL()
	cfg.NATS.User, cfg.NATS.Password = "concierge", "wrong-pw"
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, h, raw := getHealth(t, d.HTTPAddr()); h.problem("verify", "") != "" {
		t.Fatalf("a verify problem before any card: %s", raw)
	}
	card := checkin.Card{ID: ulid.Make().String(), Branch: cfg.Branch, Camera: "door-1", At: time.Now().UTC(), CustomerID: "C1001"}
	if err := d.cards.NotifyCard(context.Background(), card); err == nil {
		t.Fatal("a card went out through a server that refuses the daemon")
	}
	code, h, raw := getHealth(t, d.HTTPAddr())
	if code != 503 || !strings.Contains(h.problem("verify", ""), "could not be published") {
		t.Fatalf("healthz %d %s", code, raw)
	}
}
