package main

import (
	"context"
	"fmt"

	"concierge/sqlite"
)

const keysUsage = `usage: concierge keys status|rotate [--batch N] [--config FILE] [--db PATH]
status: the template keys the database knows, which one seals new templates, how many templates
        each seals, and where this process read its keys from.
rotate: makes a new key, adds it to the key file beside the old one, re-encrypts every template
        in small transactions (the daemon keeps running and follows), then drops the old key from
        the database and the file. With keys from CONCIERGE_TEMPLATE_KEY or the systemd credential,
        put the new key first there (the old one after it), restart, and run rotate to re-encrypt.`

func runKeys(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 || (args[0] != "status" && args[0] != "rotate") {
		fmt.Fprintln(m.Stderr, keysUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return usagef("keys: want status or rotate")
	}
	action := args[0]
	fs := m.flags("keys " + action)
	batch := fs.Int("batch", 100, "rotate: templates re-encrypted per transaction")
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, keysUsage)
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("keys %s: unexpected argument %q", action, pos[0])
	}
	if *batch < 1 || *batch > 10_000 {
		return usagef("keys rotate: --batch %d must be 1-10000", *batch)
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
	if action == "rotate" {
		return keysRotate(ctx, m, db, *batch)
	}
	return keysStatus(ctx, m, db)
}

func keysStatus(ctx context.Context, m *Main, db *sqlite.DB) error {
	keys, err := db.KeyStatus(ctx)
	if err != nil {
		return err
	}
	return writeJSON(m, map[string]any{"source": db.Keyring().Origin(), "keys": keys})
}

// keysRotate moves every template to a new key (sqlite.DB.RotateKey) and
// reports it.
func keysRotate(ctx context.Context, m *Main, db *sqlite.DB, batch int) error {
	rot, err := db.RotateKey(ctx, batch)
	if err != nil {
		return err
	}
	kr := db.Keyring()
	m.Logger.Info("template key rotated", "key", rot.Key, "templates", rot.Resealed, "retired", len(rot.Retired))
	out := map[string]any{"key": rot.Key, "templates_resealed": rot.Resealed, "retired": rot.Retired, "source": kr.Origin()}
	if kr.File() == "" && len(kr.IDs()) > 1 {
		out["note"] = "remove the old keys from " + kr.Origin() + ": no template needs them"
	}
	return writeJSON(m, out)
}
