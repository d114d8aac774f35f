package main

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"concierge/alert"
	"concierge/internal/testenv"
)

// TestDaemonStreamAtStart: a fresh box's branch stream exists once the
// daemon is up, before anyone has arrived, so the lobby's first card does
// not wait on "stream not found" (the issue saw it 9.3 s late).
func TestDaemonStreamAtStart(t *testing.T) {
	cfg, _ := enrolledConfig(t)
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	nc, err := natsConnect(t, d.natsCreds.Conn(d.NATSURL(), "stream-check", alert.IdentityDaemon))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		_, err := js.Stream(context.Background(), alert.StreamName(cfg.Branch))
		return err
	})
}
