package alert_test

import (
	"context"
	"testing"
	"time"

	"concierge/alert"
	"concierge/internal/testenv"
)

// TestStreamAtStart: the branch stream exists once the publisher is open,
// before any alert, so the first card does not wait on "stream not found";
// with NATS down at start, it is made when NATS comes up.
func TestStreamAtStart(t *testing.T) {
	ctx := context.Background()
	srv := runServer(t, t.TempDir(), "127.0.0.1:-1")
	_, js := connect(t, srv.ClientURL())
	openPublisher(t, srv.ClientURL(), MustOpenDB(t), nil)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := js.Stream(ctx, alert.StreamName(branch))
		return err
	})

	r := newRestartable(t)
	openPublisher(t, r.url(), MustOpenDB(t), func(c *alert.PublisherConfig) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Minute })
	r.start()
	_, js = connect(t, r.url())
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, err := js.Stream(ctx, alert.StreamName(branch))
		return err
	})
}
