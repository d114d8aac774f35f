package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"concierge"
	"concierge/alert"
	"concierge/hub"
	"concierge/tiering"
)

// hqCatchUp bounds how long the daemon waits, before it starts the
// cameras, for the hub's events it missed: withdrawals made elsewhere
// while the box was off are carried out before it recognises anyone. A
// hub that does not answer in time does not keep the branch from working.
const hqCatchUp = 10 * time.Second

// hqStaleAfter is how long the hub may stay silent before /healthz says
// the box is out of step with the network: a WAN outage of minutes is
// routine, one that keeps withdrawals from being carried out is not.
const hqStaleAfter = 10 * time.Minute

// hqProblem is the hub's entry in /healthz, if any.
func (d *Daemon) hqProblem(now time.Time) *problem {
	if d.hq == nil {
		return nil
	}
	if s := d.hq.Stale(now, hqStaleAfter); s != "" {
		return &problem{Component: "hq", Reason: s}
	}
	return nil
}

// openHQ starts replication with the bank's hub when hq.url is set.
func (d *Daemon) openHQ(ctx context.Context) error {
	if d.cfg.HQ.URL == "" {
		n, err := d.app.db.DropUnsharedWithdrawals(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			d.log.Info("hq: network changes that no other branch needs were dropped from the queue (withdrawals of customers who never left this box, repeated door changes)", "changes", n)
		}
		return nil
	}
	if d.natsCreds == nil {
		return nil
	}
	// The hub lets a branch speak only under its own id: a box with another
	// branch's credential would wait for the hub forever.
	if id, err := hub.CredsBranch(d.cfg.HQ.Credentials); err != nil {
		return concierge.Errorf(concierge.EINVALID, "hq.credentials: %w", err)
	} else if id != "" && id != d.cfg.Branch {
		return concierge.Errorf(concierge.EINVALID, "hq.credentials: %s was made for branch %q, this box is %q",
			d.cfg.HQ.Credentials, id, d.cfg.Branch)
	}
	key, err := hub.ReadKey(d.cfg.HQ.networkKey())
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "hq.network_key: %w", err)
	}
	opt, err := nats.NkeyOptionFromSeed(d.natsCreds.SeedFile(alert.IdentityDaemon))
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "hq: %w", err)
	}
	nc, err := nats.Connect(d.natsURL, opt, nats.Name("concierge-"+d.cfg.Branch+"-hq"), nats.MaxReconnects(-1))
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "hq: %w", err)
	}
	d.closers = append(d.closers, func() error { nc.Close(); return nil })
	schemes, err := tiering.LoadSchemes(d.cfg.Tiering.SchemesDir, d.cfg.Tiering.Scheme)
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "tiering: %w", err)
	}
	// A tier file from HQ was checked there (concierge tiers import --hub);
	// rows this box's schemes refuse are skipped, not the whole file.
	importTiers := func(ctx context.Context, source string, data []byte) error {
		im := &tiering.Importer{Store: d.app.db, Schemes: schemes}
		_, err := im.Import(ctx, data, tiering.ImportOptions{Source: "hq:" + source, Encoding: tiering.EncodingAuto, SkipBadRows: true})
		return err
	}
	// A box that does not learn keeps no door templates, its own or the
	// network's (openLearning drops them).
	doors := 0
	if d.cfg.doorFactor() > 0 {
		doors = d.cfg.Match.DoorTemplates
	}
	rep, err := hub.NewReplicator(hub.ReplicatorConfig{Branch: d.cfg.Branch, Conn: nc, Store: d.app.db,
		NetworkKey: key, Logger: d.log, Tiers: importTiers, DoorTemplates: doors})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, hqCatchUp)
	err = rep.CatchUp(cctx)
	cancel()
	if err != nil {
		d.log.Warn("hq: not caught up with the hub; recognising with what the box holds", slog.Any("error", err))
	}
	// The gallery was loaded before the catch-up changed the database.
	if err := d.app.svc.Reload(ctx); err != nil {
		return err
	}
	if err := rep.Open(); err != nil {
		return err
	}
	d.closers = append(d.closers, rep.Close)
	d.hq = rep
	return nil
}
