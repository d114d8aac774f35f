package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"concierge"
	"concierge/backup"
	"concierge/sqlite"
)

const backupUsage = `usage: concierge backup DIR [--config FILE]
Writes a consistent copy of the box's state into DIR (new or empty), while the daemon runs: the
database (face templates sealed as they are), and under DIR/keys the template key, the NATS
identities and the lobby's session key, with a MANIFEST.json of SHA-256 digests. Keep DIR/keys apart
from the rest: together they open every template. The JetStream store is not copied (docs/operations.md).`

const restoreUsage = `usage: concierge restore DIR [--force] [--config FILE]
Puts a backup made by ` + "`concierge backup`" + ` in place, into the paths of --config, after checking every file
against its manifest. Existing files are refused unless --force; stop the daemon first. Withdrawals
recorded in the database being replaced after the backup was made are applied again to the restored
one, so a restore never brings back a customer who withdrew.`

// backupSet is what a backup of this box holds, from the config's paths.
func (c Config) backupSet() backup.Set {
	set := backup.Set{DB: c.DB, Items: []backup.Item{
		{Name: "keys/template.key", Path: c.templateKeyFile()},
		{Name: "keys/nats", Path: c.natsCredentials().Dir},
	}}
	if c.Web.SessionKey == "" {
		set.Items = append(set.Items, backup.Item{Name: "keys/" + sessionKeyFile, Path: filepath.Join(filepath.Dir(c.DB), sessionKeyFile)})
	}
	return set
}

func runBackup(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("backup")
	fs.Usage = func() { fmt.Fprintln(m.Stderr, backupUsage); fs.PrintDefaults() }
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("backup: want one directory")
	}
	cfg, err := m.config()
	if err != nil {
		return err
	}
	db, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		return err
	}
	defer db.Close()
	notes := []string{"the JetStream store is not copied: it holds alerts for screens (30 minutes) and their " +
		"history (nats.stream_max_age); undelivered alerts are in the database's outbox, and restoring old stream " +
		"messages would bring back alerts of customers who withdrew since"}
	if os.Getenv("CONCIERGE_TEMPLATE_KEY") != "" || os.Getenv("CREDENTIALS_DIRECTORY") != "" {
		notes = append(notes, "the template key may come from CONCIERGE_TEMPLATE_KEY or a systemd credential: "+
			"keep that key with this backup's keys, it is not in the backup")
	}
	man, err := backup.Make(ctx, db, cfg.backupSet(), pos[0], notes, time.Now())
	if err != nil {
		return err
	}
	return writeJSON(m, map[string]any{"backup": pos[0], "made": man.Made, "files": len(man.Files), "missing": man.Missing})
}

func runRestore(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("restore")
	force := fs.Bool("force", false, "replace the existing database and keys (the daemon must be stopped)")
	fs.Usage = func() { fmt.Fprintln(m.Stderr, restoreUsage); fs.PrintDefaults() }
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("restore: want one backup directory")
	}
	cfg, err := m.config()
	if err != nil {
		return err
	}
	man, err := backup.Read(pos[0])
	if err != nil {
		return err
	}
	// Withdrawals made since the backup, read before the database goes.
	var since []sqlite.Withdrawal
	if _, err := os.Stat(cfg.DB); err == nil && *force {
		old, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
		if err == nil {
			since, err = old.WithdrawnSince(ctx, man.Made)
			old.Close()
		}
		if err != nil {
			return concierge.Errorf(concierge.EUNAVAILABLE, "cannot read the withdrawals recorded since the backup from %s (%v); "+
				"restore into an empty place and run `concierge forget` for every customer who withdrew after %s",
				cfg.DB, err, man.Made.Format(time.RFC3339))
		}
	}
	if _, err := backup.Restore(pos[0], cfg.backupSet(), *force); err != nil {
		return err
	}
	// Opening checks the restored key against the restored templates.
	db, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		return fmt.Errorf("restored database: %w", err)
	}
	defer db.Close()
	for _, w := range since {
		if _, err := db.Erase(ctx, w.CustomerID, w.At, w.Reason); err != nil && concierge.ErrorCode(err) != concierge.ENOTFOUND {
			return fmt.Errorf("apply a withdrawal made since the backup: %w", err)
		}
	}
	return writeJSON(m, map[string]any{"restored": pos[0], "made": man.Made, "withdrawals_applied_again": len(since)})
}
