package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// collect subscribes a plain client to subject and returns a function
// that waits for n messages in total and returns them.
func collect(tb testing.TB, nc *nats.Conn, subject string) func(n int) []*nats.Msg {
	tb.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		tb.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		tb.Fatal(err)
	}
	var got []*nats.Msg
	return func(n int) []*nats.Msg {
		tb.Helper()
		for len(got) < n {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				tb.Fatalf("%s: %d of %d messages: %v", subject, len(got), n, err)
			}
			got = append(got, m)
		}
		return got
	}
}

func TestPublishArrival(t *testing.T) {
	srv := testenv.RunNATS(t)
	nc, _ := connect(t, srv.ClientURL())
	staff := collect(t, nc, "concierge.b001.arrival")
	all := collect(t, nc, "concierge.b001.>")
	db := testdb.Open(t)
	p := openPublisher(t, srv.ClientURL(), db, nil)

	a := vipArrival(1)
	if err := p.Notify(context.Background(), a, nil); err != nil {
		t.Fatal(err)
	}
	m := staff(1)[0]
	if got, want := m.Header.Get(nats.MsgIdHdr), a.ID+"/arrival"; got != want {
		t.Errorf("Nats-Msg-Id %q, want %q", got, want)
	}
	got, err := alert.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	fs := a.FirstSeen.UTC()
	want := alert.Message{
		Schema: alert.Schema, ID: a.ID, Branch: branch, Camera: "door-1", Time: a.At, FirstSeen: &fs,
		Customer:            alert.Customer{ID: "C1001", DisplayName: "王*", FormOfAddress: "王女士"},
		Tier:                &alert.Tier{Scheme: "icbc-stars", Level: "5", LevelName: "五星", VIP: true},
		ServiceLevel:        &alert.ServiceLevel{Priority: 2, Greeting: "王女士您好", Lane: "VIP room 1", NotifyRM: true},
		RelationshipManager: "Li",
		Match:               alert.Match{Distance: 0.31, Margin: 0.12, Votes: 3},
		ExpiresAt:           a.At.Add(30 * time.Minute),
	}
	if g, w := testenv.MustJSON(t, got), testenv.MustJSON(t, want); g != w {
		t.Errorf("message\n got %s\nwant %s", g, w)
	}
	// The wire form: RFC 3339 times in UTC whatever the arrival's zone.
	if !strings.Contains(string(m.Data), `"time":"2025-03-14T02:43:07Z"`) {
		t.Errorf("time not RFC 3339 UTC: %s", m.Data)
	}

	// Without risk flags nothing goes to the manager: arrival, then visit.
	msgs := all(2)
	if s := subjects(msgs); s != "concierge.b001.arrival concierge.b001.visit" {
		t.Fatalf("subjects %s", s)
	}
	if string(msgs[1].Data) != string(m.Data) {
		t.Errorf("visit message differs from the alert:\n%s\n%s", msgs[1].Data, m.Data)
	}
	testenv.CheckFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if n := pending(t, db); n != 0 {
			return fmt.Errorf("%d messages still pending after their acks", n)
		}
		return nil
	})
	// The counter follows the row's mark a moment later: poll it.
	testenv.CheckFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if n := p.Stats.Published.Load(); n != 2 {
			return fmt.Errorf("published %d, want 2", n)
		}
		return nil
	})
}

func TestRiskGoesToManagerOnly(t *testing.T) {
	srv := testenv.RunNATS(t)
	nc, _ := connect(t, srv.ClientURL())
	all := collect(t, nc, "concierge.b001.>")
	p := openPublisher(t, srv.ClientURL(), testdb.Open(t), nil)

	a := vipArrival(1)
	if err := p.Notify(context.Background(), a, riskFlags); err != nil {
		t.Fatal(err)
	}
	msgs := all(3)
	if s := subjects(msgs); s != "concierge.b001.arrival concierge.b001.arrival.manager concierge.b001.visit" {
		t.Fatalf("subjects %s", s)
	}
	for _, m := range []*nats.Msg{msgs[0], msgs[2]} {
		var raw map[string]any
		if err := json.Unmarshal(m.Data, &raw); err != nil {
			t.Fatal(err)
		}
		for k := range raw {
			if strings.Contains(k, "risk") {
				t.Errorf("%s carries %q: %s", m.Subject, k, m.Data)
			}
		}
		if strings.Contains(string(m.Data), "R042") || strings.Contains(string(m.Data), "aml") {
			t.Errorf("%s leaks the risk reason: %s", m.Subject, m.Data)
		}
	}
	mgr, err := alert.Decode(msgs[1].Data)
	if err != nil {
		t.Fatal(err)
	}
	if mgr.ID != a.ID || len(mgr.RiskFlags) != 1 || mgr.RiskFlags[0] != riskFlags[0] {
		t.Errorf("manager message %s", msgs[1].Data)
	}
	if got := msgs[1].Header.Get(nats.MsgIdHdr); got != a.ID+"/arrival.manager" {
		t.Errorf("manager Nats-Msg-Id %q", got)
	}
}

// A thumbnail goes with the staff alert and the manager's copy, never on
// the visit feed that history and analytics read.
func TestThumbnailStaysOffTheVisitFeed(t *testing.T) {
	sch := loadSchema(t)
	srv := testenv.RunNATS(t)
	nc, _ := connect(t, srv.ClientURL())
	all := collect(t, nc, "concierge.b001.>")
	p := openPublisher(t, srv.ClientURL(), testdb.Open(t), nil)
	a := vipArrival(1)
	a.Thumbnail = []byte("\xff\xd8\xff\xe0 a JPEG")
	if err := p.Notify(context.Background(), a, riskFlags); err != nil {
		t.Fatal(err)
	}
	for _, m := range all(3) {
		if err := validateJSON(sch, m.Data); err != nil {
			t.Errorf("%s: %v", m.Subject, err)
		}
		msg, err := alert.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		visit := m.Subject == alert.Subject(branch, alert.FeedVisit)
		if got := string(msg.Thumbnail); (got == string(a.Thumbnail)) == visit || (visit && got != "") {
			t.Errorf("%s: thumbnail %q", m.Subject, got)
		}
	}
}

func TestAlertFilter(t *testing.T) {
	srv := testenv.RunNATS(t)
	nc, _ := connect(t, srv.ClientURL())
	all := collect(t, nc, "concierge.b001.>")
	p := openPublisher(t, srv.ClientURL(), testdb.Open(t), func(c *alert.PublisherConfig) { c.Alert = alert.VIPOnly })

	plain := vipArrival(1)
	plain.Tier = nil
	risky := vipArrival(2)
	risky.Tier = nil
	vip := vipArrival(3)
	ctx := context.Background()
	for _, n := range []struct {
		a    checkin.Arrival
		risk []checkin.RiskFlag
	}{{plain, nil}, {risky, riskFlags}, {vip, nil}} {
		if err := p.Notify(ctx, n.a, n.risk); err != nil {
			t.Fatal(err)
		}
	}
	// A customer who is no VIP is still a visit, and a risk one still
	// reaches the manager.
	want := "concierge.b001.visit concierge.b001.arrival.manager concierge.b001.visit concierge.b001.arrival concierge.b001.visit"
	if s := subjects(all(5)); s != want {
		t.Fatalf("subjects\n got %s\nwant %s", s, want)
	}
}

func TestNotifyRejectsBadArrivals(t *testing.T) {
	p, err := alert.NewPublisher(alert.PublisherConfig{Branch: branch, Conn: connConfig("nats://127.0.0.1:1")}, testdb.Open(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	noID := vipArrival(1)
	noID.ID = ""
	other := vipArrival(2)
	other.Branch = "b002"
	for _, a := range []checkin.Arrival{noID, other} {
		if err := p.Notify(ctx, a, nil); concierge.ErrorCode(err) != concierge.EINVALID {
			t.Errorf("Notify(%q, branch %q) = %v, want invalid", a.ID, a.Branch, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err) // never opened: nothing to do
	}
}

func TestNewPublisherValidates(t *testing.T) {
	db := testdb.Open(t)
	for name, cfg := range map[string]alert.PublisherConfig{
		"no branch":      {Conn: connConfig("nats://x")},
		"no url":         {Branch: branch},
		"two auths":      {Branch: branch, Conn: alert.ConnConfig{URL: "nats://x", User: "u", Token: "t"}},
		"cert sans key":  {Branch: branch, Conn: alert.ConnConfig{URL: "nats://x", TLSCert: "c.pem"}},
		"dupes > maxage": {Branch: branch, Conn: connConfig("nats://x"), Stream: alert.StreamConfig{MaxAge: time.Hour, Duplicates: 2 * time.Hour}},
	} {
		if _, err := alert.NewPublisher(cfg, db); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := alert.NewPublisher(alert.PublisherConfig{Branch: branch, Conn: connConfig("nats://x")}, nil); err == nil {
		t.Error("nil outbox: no error")
	}
}

// Re-publishing an arrival (a retried Notify, a resend after a crash lost
// the acknowledgement) must not alert staff twice.
func TestRepublishIsDeduplicated(t *testing.T) {
	srv := testenv.RunNATS(t)
	_, js := connect(t, srv.ClientURL())
	ctx := context.Background()
	a := vipArrival(1)

	// The same outbox ignores the second Notify outright ...
	db := testdb.Open(t)
	p1 := openPublisher(t, srv.ClientURL(), db, nil)
	for range 2 {
		if err := p1.Notify(ctx, a, riskFlags); err != nil {
			t.Fatal(err)
		}
	}
	// ... and JetStream drops a copy from another outbox, which stands for
	// the resend of a message whose acknowledgement never arrived.
	p2 := openPublisher(t, srv.ClientURL(), testdb.Open(t), nil)
	if err := p2.Notify(ctx, a, riskFlags); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := p2.Stats.Duplicates.Load(); n != 3 {
			return fmt.Errorf("p2 saw %d duplicate acks, want 3", n)
		}
		return nil
	})
	for _, f := range []alert.Feed{alert.FeedArrival, alert.FeedManager, alert.FeedVisit} {
		if err := wantStream(ctx, js, alert.Subject(branch, f), []string{a.ID}); err != nil {
			t.Error(err)
		}
	}
	if n := p1.Stats.Enqueued.Load(); n != 6 {
		t.Errorf("p1 enqueued %d (counting the ignored copy), want 6", n)
	}
	testenv.CheckFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if n := p1.Stats.Published.Load(); n != 3 {
			return fmt.Errorf("p1 published %d, want 3", n)
		}
		return nil
	})
}

// NATS goes away between alerts and comes back on the same port and store:
// every alert arrives, once, in order.
func TestOutageDeliversInOrder(t *testing.T) {
	r := testenv.RunNATS(t)
	db := testdb.Open(t)
	// Backoff longer than the test may take: only the reconnect can wake
	// the sender in time.
	p := openPublisher(t, r.URL(), db, func(c *alert.PublisherConfig) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Minute })
	ctx := context.Background()

	var ids []string
	notify := func(n int) {
		t.Helper()
		a := vipArrival(n)
		if err := p.Notify(ctx, a, nil); err != nil {
			t.Fatalf("notify #%d: %v", n, err)
		}
		ids = append(ids, a.ID)
	}
	notify(1)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := pending(t, db); n != 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})

	r.Stop()
	for n := 2; n <= 6; n++ {
		notify(n) // returns at once: the alert is safe in the outbox
	}
	if n := pending(t, db); n != 10 {
		t.Fatalf("%d messages pending during the outage, want 10", n)
	}
	r.Start()

	_, js := connect(t, r.URL())
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := pending(t, db); n != 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
	for _, f := range []alert.Feed{alert.FeedArrival, alert.FeedVisit} {
		if err := wantStream(ctx, js, alert.Subject(branch, f), ids); err != nil {
			t.Error(err)
		}
	}
	// Arrivals and visits interleave as they were notified.
	msgs, err := streamMsgs(ctx, js, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		want := alert.Subject(branch, alert.FeedArrival)
		if i%2 == 1 {
			want = alert.Subject(branch, alert.FeedVisit)
		}
		if m.Subject != want {
			t.Fatalf("stream message %d on %s, want %s", i+1, m.Subject, want)
		}
	}
	if p.Stats.Failures.Load() == 0 {
		t.Error("no failed attempt counted during the outage")
	}
}

// The publisher starts while NATS is not up yet (the box boots before the
// NATS host): Open and Notify succeed, delivery follows the server.
func TestStartWithServerDown(t *testing.T) {
	r := testenv.RunNATS(t)
	r.Stop() // down when the client starts
	db := testdb.Open(t)
	p := openPublisher(t, r.URL(), db, func(c *alert.PublisherConfig) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Minute })
	ctx := context.Background()
	var ids []string
	for n := 1; n <= 3; n++ {
		a := vipArrival(n)
		if err := p.Notify(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	r.Start()
	_, js := connect(t, r.URL())
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		return wantStream(ctx, js, alert.Subject(branch, alert.FeedArrival), ids)
	})
}

// The daemon dies with alerts undelivered: the next run sends them.
func TestOutboxSurvivesRestart(t *testing.T) {
	r := testenv.RunNATS(t)
	r.Stop() // down when the client starts
	path := filepath.Join(t.TempDir(), "concierge.db")
	db := testdb.OpenAt(t, path)
	first := openPublisher(t, r.URL(), db, func(c *alert.PublisherConfig) { c.FlushTimeout = 50 * time.Millisecond })
	ctx := context.Background()
	var ids []string
	for n := 1; n <= 4; n++ {
		a := vipArrival(n)
		if err := first.Notify(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	start := time.Now()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with NATS down", d)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = testdb.OpenAt(t, path)
	if n := pending(t, db); n != 8 {
		t.Fatalf("%d messages left in the outbox, want 8", n)
	}
	r.Start()
	openPublisher(t, r.URL(), db, nil)
	_, js := connect(t, r.URL())
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if err := wantStream(ctx, js, alert.Subject(branch, alert.FeedArrival), ids); err != nil {
			return err
		}
		if n := pending(t, db); n != 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
}

func TestStreamConfig(t *testing.T) {
	srv := testenv.RunNATS(t)
	_, js := connect(t, srv.ClientURL())
	ctx := context.Background()
	// A stream an earlier version made captured every subject of the
	// branch, verify cards included: it is narrowed to the feeds it keeps.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CONCIERGE_B001", Subjects: []string{"concierge.b001.>"},
		Storage: jetstream.FileStorage, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	p := openPublisher(t, srv.ClientURL(), testdb.Open(t), func(c *alert.PublisherConfig) { c.Stream.MaxAge = 48 * time.Hour })
	if err := p.Notify(ctx, vipArrival(1), nil); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		s, err := js.Stream(ctx, "CONCIERGE_B001")
		if err != nil {
			return err
		}
		c := s.CachedInfo().Config
		if c.MaxAge != 48*time.Hour || c.Duplicates != 24*time.Hour || !slices.Equal(c.Subjects, alert.StreamSubjects(branch)) ||
			slices.Contains(c.Subjects, alert.Subject(branch, alert.FeedVerify)) || c.Storage.String() != "File" {
			return fmt.Errorf("stream config %+v", c)
		}
		return nil
	})
	p.Close()

	// A restart with another retention updates the stream it made.
	p = openPublisher(t, srv.ClientURL(), testdb.Open(t), func(c *alert.PublisherConfig) { c.Stream.MaxAge = 12 * time.Hour })
	if err := p.Notify(ctx, vipArrival(2), nil); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		s, err := js.Stream(ctx, "CONCIERGE_B001")
		if err != nil {
			return err
		}
		if c := s.CachedInfo().Config; c.MaxAge != 12*time.Hour || c.Duplicates != 12*time.Hour {
			return fmt.Errorf("max age %v duplicates %v", c.MaxAge, c.Duplicates)
		}
		return nil
	})
}

func TestStreamName(t *testing.T) {
	for in, want := range map[string]string{"b001": "CONCIERGE_B001", "sh-pudong_2": "CONCIERGE_SH-PUDONG_2", "a/b": "CONCIERGE_A_B"} {
		if got := alert.StreamName(in); got != want {
			t.Errorf("StreamName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServerLifecycle(t *testing.T) {
	srv := alert.NewServer(alert.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Logger: testLogger()})
	if err := srv.Open(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(srv.ClientURL(), ":-1") {
		t.Errorf("ClientURL %q", srv.ClientURL())
	}
	if err := srv.Open(); err == nil {
		t.Error("second Open: no error")
	}
	url := srv.ClientURL()
	srv.Close()
	srv.Close()
	if _, err := nats.Connect(url, nats.Timeout(200*time.Millisecond)); err == nil {
		t.Error("server still accepts connections after Close")
	}
	for name, cfg := range map[string]alert.ServerConfig{
		"bad listen": {Listen: "nowhere", StoreDir: t.TempDir()},
		"bad port":   {Listen: "127.0.0.1:x", StoreDir: t.TempDir()},
		"no store":   {Listen: "127.0.0.1:-1"},
	} {
		s := alert.NewServer(cfg)
		if err := s.Open(); err == nil {
			t.Errorf("%s: no error", name)
		}
		s.Close()
	}
}

func TestServerPortInUse(t *testing.T) {
	srv := testenv.RunNATS(t)
	s := alert.NewServer(alert.ServerConfig{Listen: srv.Addr(), StoreDir: t.TempDir(), ReadyTimeout: 200 * time.Millisecond, Logger: testLogger()})
	err := s.Open()
	s.Close()
	if err == nil {
		t.Fatal("second server on the same port: no error")
	}
}

func subjects(msgs []*nats.Msg) string {
	var s []string
	for _, m := range msgs {
		s = append(s, m.Subject)
	}
	return strings.Join(s, " ")
}
