package main

import (
	"context"

	"concierge"
	"concierge/alert"
)

// openAlerts starts the embedded NATS server when no external one is
// configured, and the publisher with its SQLite outbox. The embedded
// server is closed: only the box's own identities (alert.Identities, made
// on first start under nats.credentials_dir) may connect, each with the
// permissions of its job; its store is encrypted with the key kept there.
func (d *Daemon) openAlerts(ctx context.Context) error {
	conn := natsClient(d.cfg.NATS, d.cfg.NATS.URL, "concierge-"+d.cfg.Branch)
	if d.cfg.NATS.URL == "" {
		creds, err := alert.EnsureCredentials(d.cfg.natsCredentials().Dir)
		if err != nil {
			return err
		}
		d.natsCreds = &creds
		storeKey, err := creds.StoreKey()
		if err != nil {
			return err
		}
		srv := alert.NewServer(alert.ServerConfig{Listen: d.cfg.NATS.Listen, StoreDir: d.cfg.NATS.StoreDir,
			ConfigFile: d.cfg.NATS.ServerConfig, Credentials: &creds, Branch: d.cfg.Branch, StoreKey: storeKey,
			TLSCert: d.cfg.NATS.ServerTLSCert, TLSKey: d.cfg.NATS.ServerTLSKey, Logger: d.log,
			HQURL: d.cfg.HQ.URL, HQCredentials: d.cfg.HQ.Credentials, HQCA: d.cfg.HQ.CA})
		if err := srv.Open(); err != nil {
			return concierge.Wrapf(err, "embedded nats at %s", d.cfg.NATS.Listen)
		}
		d.closers = append(d.closers, srv.Close)
		d.natsURL = srv.ClientURL()
		conn = d.alertConn(conn.Name)
	}
	d.natsURL = conn.URL
	pub, err := alert.NewPublisher(alert.PublisherConfig{
		Branch: d.cfg.Branch,
		Conn:   conn,
		Stream: alert.StreamConfig{MaxAge: d.cfg.NATS.StreamMaxAge},
		Logger: d.log,
	}, d.app.db)
	if err != nil {
		return concierge.Wrapf(err, "nats")
	}
	if err := pub.Open(ctx); err != nil {
		return concierge.Wrapf(err, "alert publisher")
	}
	d.closers = append(d.closers, pub.Close)
	d.notifier = pub
	return nil
}

// alertConn is how the daemon's own NATS clients connect: as the box's
// daemon identity to the embedded server, or to nats.url with the
// configured credentials.
func (d *Daemon) alertConn(name string) alert.ConnConfig {
	if d.natsCreds == nil {
		return natsClient(d.cfg.NATS, d.natsURL, name)
	}
	c := d.natsCreds.Conn(d.natsURL, name, alert.IdentityDaemon)
	c.TLSCA = d.cfg.NATS.TLSCA
	return c
}

// openDesk starts the desk that checks and publishes every claim and
// "not this person" mark, from the lobby page and from terminals.
func (d *Daemon) openDesk() error {
	staff, err := d.staffDirectory()
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	desk, err := alert.NewDesk(alert.DeskConfig{Branch: d.cfg.Branch, Conn: d.alertConn("concierge-" + d.cfg.Branch + "-desk"),
		Book: d.app.db, Staff: staff, Cards: d.cardDesk(), Service: d.app.db, Logger: d.log})
	if err != nil {
		return err
	}
	d.closers = append(d.closers, desk.Close)
	if err := desk.Listen(); err != nil {
		return err
	}
	d.desk = desk
	return nil
}

// openEraser starts clearing withdrawn customers from the alert stream
// and the screens (the database queues each withdrawal).
func (d *Daemon) openEraser() error {
	e, err := alert.NewEraser(alert.EraserConfig{Branch: d.cfg.Branch, Conn: d.alertConn("concierge-" + d.cfg.Branch + "-eraser"),
		Queue: erasureQueue{db: d.app.db, held: &d.held}, Logger: d.log})
	if err != nil {
		return err
	}
	if err := e.Open(); err != nil {
		return err
	}
	d.closers = append(d.closers, e.Close)
	d.eraser = e
	return nil
}

// NATSURL is the NATS server the daemon publishes to.
func (d *Daemon) NATSURL() string { return d.natsURL }
