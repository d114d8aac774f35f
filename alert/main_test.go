package alert_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"concierge/alert"
	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/sqlite"
)

const branch = "b001"

// testLogger shows the components' logs with -v only.
var testLogger = testenv.Logger

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
