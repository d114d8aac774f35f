package alert_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge/alert"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

func openSubscriber(tb testing.TB, url string) *alert.Subscriber {
	tb.Helper()
	s, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: branch, Conn: connConfig(url), RetryMax: 100 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// reader ranges over a feed in its own goroutine, owned by the test, and
// hands the alerts over a channel.
type reader struct {
	ch     chan alert.Alert
	errs   chan error
	cancel context.CancelFunc
	done   chan struct{}
}

func read(tb testing.TB, s *alert.Subscriber, feed alert.Feed, start alert.Start) *reader {
	ctx, cancel := context.WithCancel(context.Background())
	r := &reader{ch: make(chan alert.Alert, 100), errs: make(chan error, 100), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for a, err := range s.Alerts(ctx, feed, start) {
			if err != nil {
				r.errs <- err
				continue
			}
			r.ch <- a
		}
	}()
	tb.Cleanup(r.stop)
	return r
}

func (r *reader) stop() {
	r.cancel()
	<-r.done
}

// next waits for n alerts and returns their arrival ids.
func (r *reader) next(tb testing.TB, n int) ([]string, []alert.Alert) {
	tb.Helper()
	var ids []string
	var as []alert.Alert
	for len(ids) < n {
		select {
		case a := <-r.ch:
			ids = append(ids, a.ID)
			as = append(as, a)
		case err := <-r.errs:
			tb.Fatalf("alert error: %v", err)
		case <-time.After(10 * time.Second):
			tb.Fatalf("%d of %d alerts: %v", len(ids), n, ids)
		}
	}
	return ids, as
}

// none checks that no alert is waiting.
func (r *reader) none(tb testing.TB) {
	tb.Helper()
	select {
	case a := <-r.ch:
		tb.Fatalf("unexpected alert %s on %s", a.ID, a.Subject)
	default:
	}
}

func notifyN(tb testing.TB, p *alert.Publisher, from, to int) []string {
	tb.Helper()
	var ids []string
	for n := from; n <= to; n++ {
		a := vipArrival(n)
		risk := riskFlags
		if n%2 == 0 {
			risk = nil
		}
		if err := p.Notify(context.Background(), a, risk); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	return ids
}

func TestSubscriberFromStartPoints(t *testing.T) {
	srv := testenv.RunNATS(t)
	p := openPublisher(t, srv.ClientURL(), testdb.Open(t), nil)
	ids := notifyN(t, p, 1, 3)
	_, js := connect(t, srv.ClientURL())
	ctx := context.Background()
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		return wantStream(ctx, js, alert.Subject(branch, alert.FeedVisit), ids)
	})
	s := openSubscriber(t, srv.ClientURL())

	all := read(t, s, alert.FeedArrival, alert.Start{All: true})
	got, as := all.next(t, 3)
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("all: %v, want %v", got, ids)
	}
	for _, a := range as {
		if a.Subject != "concierge.b001.arrival" || a.Schema != alert.Schema || len(a.RiskFlags) != 0 || a.Stored.IsZero() {
			t.Errorf("alert %+v", a)
		}
	}
	all.stop()

	// Resume after the first alert, as a lobby page does after a reload.
	resumed := read(t, s, alert.FeedArrival, alert.Start{AfterSeq: as[0].Seq})
	if got, _ := resumed.next(t, 2); fmt.Sprint(got) != fmt.Sprint(ids[1:]) {
		t.Fatalf("after seq %d: %v, want %v", as[0].Seq, got, ids[1:])
	}

	since := read(t, s, alert.FeedArrival, alert.Start{Since: time.Now().Add(-time.Hour)})
	if got, _ := since.next(t, 3); fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("since: %v", got)
	}

	// The manager's feed has only the risk arrivals, with their flags.
	mgr := read(t, s, alert.FeedManager, alert.Start{All: true})
	got, as = mgr.next(t, 2)
	if fmt.Sprint(got) != fmt.Sprint([]string{ids[0], ids[2]}) || len(as[0].RiskFlags) != 1 {
		t.Fatalf("manager feed: %v %+v", got, as)
	}

	// From now on: only what is published after the subscription began.
	// When it began is not observable, so publish until it sees one.
	live := read(t, s, alert.FeedArrival, alert.Start{})
	n := 4
	var first alert.Alert
	var notified []string
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		notified = append(notified, notifyN(t, p, n, n)...)
		n++
		select {
		case first = <-live.ch:
			return nil
		default:
			return errors.New("no live alert yet")
		}
	})
	if slices.Contains(ids, first.ID) {
		t.Fatalf("live reader replayed old alert %s", first.ID)
	}
	if got, _ := resumed.next(t, 1); got[0] != notified[0] {
		t.Fatalf("resumed reader missed the new alert: %v", got)
	}
}

// A staff terminal rides out a NATS restart without missing or repeating
// an alert.
func TestSubscriberResumesAfterOutage(t *testing.T) {
	r := testenv.RunNATS(t)
	p := openPublisher(t, r.URL(), testdb.Open(t), nil)
	ids := notifyN(t, p, 1, 2)
	s := openSubscriber(t, r.URL())
	rd := read(t, s, alert.FeedArrival, alert.Start{All: true})
	if got, _ := rd.next(t, 2); fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("before: %v", got)
	}
	r.Stop()
	more := notifyN(t, p, 3, 5)
	r.Start()
	got, _ := rd.next(t, 3)
	if fmt.Sprint(got) != fmt.Sprint(more) {
		t.Fatalf("after the outage: %v, want %v", got, more)
	}
	rd.none(t)
}

// A terminal started before the daemon ever published waits for the
// stream rather than failing.
func TestSubscriberWaitsForStream(t *testing.T) {
	srv := testenv.RunNATS(t)
	s := openSubscriber(t, srv.ClientURL())
	rd := read(t, s, alert.FeedArrival, alert.Start{})
	p := openPublisher(t, srv.ClientURL(), testdb.Open(t), nil)
	ids := notifyN(t, p, 1, 1)
	if got, _ := rd.next(t, 1); got[0] != ids[0] {
		t.Fatalf("got %v", got)
	}
}

func TestSubscriberYieldsUndecodable(t *testing.T) {
	srv := testenv.RunNATS(t)
	p := openPublisher(t, srv.ClientURL(), testdb.Open(t), nil)
	ids := notifyN(t, p, 1, 1)
	_, js := connect(t, srv.ClientURL())
	ctx := context.Background()
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		return wantStream(ctx, js, alert.Subject(branch, alert.FeedArrival), ids)
	})
	if _, err := js.Publish(ctx, alert.Subject(branch, alert.FeedArrival), []byte(`{"schema":"other"}`)); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, notifyN(t, p, 2, 2)...)

	s := openSubscriber(t, srv.ClientURL())
	var got []string
	var errs int
	for a, err := range s.Alerts(ctx, alert.FeedArrival, alert.Start{All: true}) {
		if err != nil {
			errs++
			if a.Seq == 0 || string(a.Data) != `{"schema":"other"}` {
				t.Errorf("bad message yielded as %+v", a)
			}
			continue
		}
		got = append(got, a.ID)
		if len(got) == 2 {
			break // stopping the range ends the subscription
		}
	}
	if errs != 1 || fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("got %v and %d errors", got, errs)
	}
}

func TestParseFeed(t *testing.T) {
	for in, want := range map[string]alert.Feed{"": alert.FeedArrival, "arrival": alert.FeedArrival, "manager": alert.FeedManager,
		"arrival.manager": alert.FeedManager, "visit": alert.FeedVisit} {
		if got, err := alert.ParseFeed(in); err != nil || got != want {
			t.Errorf("ParseFeed(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := alert.ParseFeed("ack"); err == nil {
		t.Error("ParseFeed(ack): no error")
	}
}

// staffConf is the permission set docs/alerts.md recommends for lobby
// devices: the staff feed through JetStream, nothing else.
const staffConf = `
authorization {
  users = [
    {user: daemon, password: daemon-pw}
    {user: lobby, password: lobby-pw, permissions: {
      publish: {allow: [
        "$JS.API.STREAM.NAMES",
        "$JS.API.STREAM.INFO.CONCIERGE_B001",
        "$JS.API.CONSUMER.CREATE.CONCIERGE_B001.*.concierge.b001.arrival",
        "$JS.API.CONSUMER.MSG.NEXT.CONCIERGE_B001.>",
        "$JS.API.CONSUMER.INFO.CONCIERGE_B001.>",
        "$JS.API.CONSUMER.DELETE.CONCIERGE_B001.>",
      ]}
      subscribe: {allow: ["_INBOX.>"]}
    }}
  ]
}
`

// Risk flags must never reach a screen that may not see them: with the
// documented permissions a lobby device reads the staff feed and cannot
// read the manager's, by consumer, by subscription or by message get.
func TestStaffPermissions(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(staffConf), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testenv.RunNATS(t, testenv.NATSConfig(func(c *alert.ServerConfig) { c.ConfigFile = conf }))
	url := srv.ClientURL()

	p := openPublisher(t, url, testdb.Open(t), func(c *alert.PublisherConfig) { c.Conn.User, c.Conn.Password = "daemon", "daemon-pw" })
	a := vipArrival(1)
	if err := p.Notify(context.Background(), a, riskFlags); err != nil {
		t.Fatal(err)
	}

	lobby := alert.ConnConfig{URL: url, User: "lobby", Password: "lobby-pw", ReconnectWait: 50 * time.Millisecond}
	s, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: branch, Conn: lobby, RetryMax: 100 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	staff := read(t, s, alert.FeedArrival, alert.Start{All: true})
	if got, _ := staff.next(t, 1); got[0] != a.ID {
		t.Fatalf("staff feed: %v", got)
	}

	// The manager's feed yields nothing however long the device tries.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	for a, err := range s.Alerts(ctx, alert.FeedManager, alert.Start{All: true}) {
		t.Fatalf("lobby read the manager feed: %s on %s, %v", a.ID, a.Subject, err)
	}

	nc, err := nats.Connect(url, nats.UserInfo("lobby", "lobby-pw"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), alert.StreamName(branch))
	if err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer gcancel()
	if _, err := st.GetMsg(gctx, 2); err == nil {
		t.Error("lobby fetched a stream message directly")
	}
	sub, err := nc.SubscribeSync("concierge.b001.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Request("$JS.API.CONSUMER.CREATE.CONCIERGE_B001.x.concierge.b001.arrival.manager", []byte(`{}`), 500*time.Millisecond); err == nil {
		t.Error("lobby created a consumer on the manager feed")
	}
	// The allowed create subject with another filter in the request body
	// (or none) must not open the manager's feed either.
	for _, filter := range []string{`"filter_subject":"concierge.b001.arrival.manager",`, ""} {
		req := `{"stream_name":"CONCIERGE_B001","config":{"name":"y",` + filter + `"deliver_policy":"all","ack_policy":"none"}}`
		m, err := nc.Request("$JS.API.CONSUMER.CREATE.CONCIERGE_B001.y.concierge.b001.arrival", []byte(req), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(m.Data), `"error"`) {
			t.Errorf("consumer with body %s created: %s", req, m.Data)
		}
	}
	if err := p.Notify(context.Background(), vipArrival(2), riskFlags); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(500 * time.Millisecond); err == nil {
		t.Errorf("lobby subscribed to %s", m.Subject)
	}
}
