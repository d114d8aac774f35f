package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"concierge/alert"
	"concierge/checkin"
	"concierge/replay"
	"concierge/sqlite"
)

// benchAlerts is the daemon's alert path for the benchmark, so that latency
// is measured to the alert's publication, as staff would see it: the visit
// log and the outbox in SQLite, the publisher, an embedded NATS server with
// JetStream, and a subscriber standing in for the lobby's tablets that notes
// when each alert arrives. Its database and JetStream store are throwaway
// files in dir, never the configured database: a benchmark run against a
// real branch's gallery must not put alerts in its outbox.
type benchAlerts struct {
	db  *sqlite.DB
	srv *alert.Server
	pub *alert.Publisher
	nc  *nats.Conn

	mu       sync.Mutex
	received map[string]time.Time // arrival id → when the subscriber got it
}

func openBenchAlerts(ctx context.Context, branch, dir string, log *slog.Logger) (_ *benchAlerts, err error) {
	b := &benchAlerts{received: map[string]time.Time{}}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.db, err = sqlite.Open(ctx, filepath.Join(dir, "bench-alerts.db")); err != nil {
		return nil, err
	}
	b.srv = alert.NewServer(alert.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(dir, "bench-js"), Logger: log})
	if err = b.srv.Open(); err != nil {
		return nil, fmt.Errorf("bench nats: %w", err)
	}
	if b.nc, err = nats.Connect(b.srv.ClientURL(), nats.Name("concierge-bench-subscriber")); err != nil {
		return nil, fmt.Errorf("bench nats: %w", err)
	}
	if _, err = b.nc.Subscribe(alert.Subject(branch, alert.FeedArrival), b.receive); err != nil {
		return nil, fmt.Errorf("bench subscribe: %w", err)
	}
	if err = b.nc.Flush(); err != nil {
		return nil, fmt.Errorf("bench subscribe: %w", err)
	}
	b.pub, err = alert.NewPublisher(alert.PublisherConfig{Branch: branch,
		Conn: alert.ConnConfig{URL: b.srv.ClientURL(), Name: "concierge-bench"}, Logger: log}, b.db)
	if err != nil {
		return nil, err
	}
	if err = b.pub.Open(ctx); err != nil {
		b.pub = nil
		return nil, fmt.Errorf("bench publisher: %w", err)
	}
	return b, nil
}

func (b *benchAlerts) receive(m *nats.Msg) {
	at := time.Now()
	var msg struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(m.Data, &msg) != nil || msg.ID == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.received[msg.ID]; !ok {
		b.received[msg.ID] = at
	}
}

var _ replay.Publisher = (*benchAlerts)(nil)

// Notify hands the arrival to the publisher, as the daemon's notifier does.
func (b *benchAlerts) Notify(ctx context.Context, a checkin.Arrival, risk []checkin.RiskFlag) error {
	return b.pub.Notify(ctx, a, risk)
}

// RecordVisit and PurgeVisits are the visit log's, in the throwaway database.
func (b *benchAlerts) RecordVisit(ctx context.Context, a checkin.Arrival) error {
	return b.db.RecordVisit(ctx, a)
}

func (b *benchAlerts) PurgeVisits(ctx context.Context, before time.Time) (int64, error) {
	return b.db.PurgeVisits(ctx, before)
}

// Latencies waits up to timeout for every arrival's alert and returns, for
// each, the time from the first usable face to the alert's receipt.
func (b *benchAlerts) Latencies(arrivals []checkin.Arrival, timeout time.Duration) ([]time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		b.mu.Lock()
		var out []time.Duration
		for _, a := range arrivals {
			if at, ok := b.received[a.ID]; ok {
				out = append(out, at.Sub(a.FirstSeen))
			}
		}
		b.mu.Unlock()
		if len(out) == len(arrivals) {
			return out, nil
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("bench: %d of %d alerts published within %v", len(out), len(arrivals), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close stops the publisher, the subscriber, the server and the database.
func (b *benchAlerts) Close() {
	if b.pub != nil {
		b.pub.Close()
	}
	if b.nc != nil {
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Close()
	}
	if b.db != nil {
		b.db.Close()
	}
}
