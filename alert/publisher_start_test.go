package alert_test

import (
	"context"
	"testing"
	"time"

	"concierge/alert"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// TestStreamAtStart: the branch stream exists once the publisher is open,
// before any alert, so the first card does not wait on "stream not found";
// with NATS down at start, it is made when NATS comes up.
func TestStreamAtStart(t *testing.T) {
	ctx := context.Background()
	srv := testenv.RunNATS(t)
	_, js := connect(t, srv.ClientURL())
	openPublisher(t, srv.ClientURL(), testdb.Open(t), nil)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := js.Stream(ctx, alert.StreamName(branch))
		return err
	})

	r := testenv.RunNATS(t)
	r.Stop() // down when the client starts
	openPublisher(t, r.URL(), testdb.Open(t), func(c *alert.PublisherConfig) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Minute })
	r.Start()
	_, js = connect(t, r.URL())
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, err := js.Stream(ctx, alert.StreamName(branch))
		return err
	})
}
