package main

import (
	"context"
	"fmt"

	"concierge"
	"concierge/alert"
)

// openAlerts starts the embedded NATS server when no external one is
// configured, and the publisher with its SQLite outbox.
func (d *Daemon) openAlerts(ctx context.Context) error {
	conn := natsClient(d.cfg.NATS, d.cfg.NATS.URL, "concierge-"+d.cfg.Branch)
	if d.cfg.NATS.URL == "" {
		srv := alert.NewServer(alert.ServerConfig{Listen: d.cfg.NATS.Listen, StoreDir: d.cfg.NATS.StoreDir,
			ConfigFile: d.cfg.NATS.ServerConfig, Logger: d.log})
		if err := srv.Open(); err != nil {
			return concierge.Errorf(concierge.EUNAVAILABLE, "embedded nats at %s: %v", d.cfg.NATS.Listen, err)
		}
		d.closers = append(d.closers, srv.Close)
		// The embedded server is ours on loopback: no credentials.
		conn = alert.ConnConfig{URL: srv.ClientURL(), Name: conn.Name}
	}
	d.natsURL = conn.URL
	pub, err := alert.NewPublisher(alert.PublisherConfig{
		Branch: d.cfg.Branch,
		Conn:   conn,
		Stream: alert.StreamConfig{MaxAge: d.cfg.NATS.StreamMaxAge},
		Logger: d.log,
	}, d.app.db)
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "nats: %v", err)
	}
	if err := pub.Open(ctx); err != nil {
		return fmt.Errorf("alert publisher: %w", err)
	}
	d.closers = append(d.closers, pub.Close)
	d.notifier = pub
	return nil
}

// NATSURL is the NATS server the daemon publishes to.
func (d *Daemon) NATSURL() string { return d.natsURL }
