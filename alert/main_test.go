package alert_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"concierge/alert"
	"concierge/checkin"
	"concierge/sqlite"
)

const branch = "b001"

// testLogger shows the components' logs with -v only: callbacks of a
// closed NATS connection may still log after the test has ended.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// runServer starts an embedded server on listen ("127.0.0.1:-1" for any
// port) with JetStream in storeDir; it is closed when the test ends.
func runServer(tb testing.TB, storeDir, listen string) *alert.Server {
	tb.Helper()
	s := alert.NewServer(alert.ServerConfig{Listen: listen, StoreDir: storeDir, Logger: testLogger()})
	if err := s.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// restartable is a server that a test stops and starts again on the same
// port and store, as after a crash or an upgrade of the NATS box.
type restartable struct {
	tb     testing.TB
	store  string
	listen string
	srv    *alert.Server
}

func newRestartable(tb testing.TB) *restartable {
	r := &restartable{tb: tb, store: filepath.Join(tb.TempDir(), "js"), listen: freeAddr(tb)}
	return r
}

func (r *restartable) url() string { return "nats://" + r.listen }

func (r *restartable) start() {
	r.tb.Helper()
	r.srv = runServer(r.tb, r.store, r.listen)
}

func (r *restartable) stop() {
	r.tb.Helper()
	if err := r.srv.Close(); err != nil {
		r.tb.Fatal(err)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// MustOpenDB opens a fresh database in the test's temp dir.
func MustOpenDB(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "concierge.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// openDBAt opens the database at path, as a restarted daemon would.
func openDBAt(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func connConfig(url string) alert.ConnConfig {
	return alert.ConnConfig{URL: url, ReconnectWait: 50 * time.Millisecond}
}

// openPublisher opens a publisher to url on db; edit may change its config.
func openPublisher(tb testing.TB, url string, db alert.Outbox, edit func(*alert.PublisherConfig)) *alert.Publisher {
	tb.Helper()
	cfg := alert.PublisherConfig{
		Branch:     branch,
		Conn:       connConfig(url),
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
		Logger:     testLogger(),
	}
	if edit != nil {
		edit(&cfg)
	}
	p, err := alert.NewPublisher(cfg, db)
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// connect is a plain client, standing in for a staff device.
func connect(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

var epoch = time.Date(2025, 3, 14, 2, 42, 7, 0, time.UTC)

// vipArrival is the n-th arrival of a test: a 五星 VIP with an RM.
func vipArrival(n int) checkin.Arrival {
	at := epoch.Add(time.Duration(n) * time.Minute)
	return checkin.Arrival{
		ID:          ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String(),
		Branch:      branch,
		Camera:      "door-1",
		At:          at,
		FirstSeen:   at.Add(-1500 * time.Millisecond),
		CustomerID:  fmt.Sprintf("C%04d", 1000+n),
		DisplayName: "王*",
		Distance:    0.31,
		Margin:      0.12,
		Votes:       3,
		Tier: &checkin.Tier{
			Scheme: "icbc-stars", Level: "5", LevelName: "五星", VIP: true,
			Service:             &checkin.ServiceLevel{Priority: 2, Greeting: "王女士您好", Lane: "VIP room 1", NotifyRM: true},
			RelationshipManager: "Li",
			FormOfAddress:       "王女士",
		},
	}
}

var riskFlags = []checkin.RiskFlag{{Kind: "aml", Reason: "R042"}}

// streamMsgs returns the messages JetStream holds on subject (all of
// them for ""), in order.
func streamMsgs(ctx context.Context, js jetstream.JetStream, subject string) ([]*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, alert.StreamName(branch))
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			return nil, fmt.Errorf("seq %d: %w", seq, err)
		}
		if subject == "" || m.Subject == subject {
			out = append(out, m)
		}
	}
	return out, nil
}

// wantStream checks that subject holds exactly the arrivals ids, in order.
func wantStream(ctx context.Context, js jetstream.JetStream, subject string, ids []string) error {
	msgs, err := streamMsgs(ctx, js, subject)
	if err != nil {
		return err
	}
	var got []string
	for _, m := range msgs {
		a, err := alert.Decode(m.Data)
		if err != nil {
			return err
		}
		got = append(got, a.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		return fmt.Errorf("%s holds %v, want %v", subject, got, ids)
	}
	return nil
}

func pending(tb testing.TB, db *sqlite.DB) int {
	tb.Helper()
	msgs, err := db.PendingOutbox(context.Background(), 1000)
	if err != nil {
		tb.Fatal(err)
	}
	return len(msgs)
}
