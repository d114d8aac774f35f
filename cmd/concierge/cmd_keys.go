package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"concierge"
	"concierge/seal"
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

// keysRotate follows the order that keeps every process able to read
// every template: the new key reaches the key file before any template is
// sealed with it, and the old key leaves the file only after no template
// uses it.
func keysRotate(ctx context.Context, m *Main, db *sqlite.DB, batch int) error {
	kr := db.Keyring()
	status, err := db.KeyStatus(ctx)
	if err != nil {
		return err
	}
	var current seal.KeyID
	for _, k := range status {
		if k.Current {
			current = k.ID
		}
	}
	file := kr.File()
	next := kr.Current()
	switch {
	case file != "":
		// A key first in the file but not yet in use is a rotation that
		// stopped early: finish it with that key.
		if next.ID() == current {
			if next, err = seal.GenerateKey(); err != nil {
				return err
			}
		}
		keys := append([]*seal.Key{next}, kr.Keys()...)
		if err := seal.WriteKeyFile(file, dedupKeys(keys)); err != nil {
			return err
		}
		if err := kr.Reload(); err != nil {
			return err
		}
	case next.ID() == current:
		return concierge.Errorf(concierge.EINVALID,
			"template keys come from %s: put a new key first there, the old one after it, then run keys rotate again", kr.Origin())
	}
	if err := db.UseKey(ctx, next.ID()); err != nil {
		return err
	}
	total := 0
	var retired []string
	for attempt := 0; ; attempt++ {
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("keys rotate: stopped after %d templates; run it again to finish: %w", total, err)
			}
			n, err := db.Reseal(ctx, batch)
			if err != nil {
				return err
			}
			total += n
			if n == 0 {
				break
			}
		}
		retired, err = retireOthers(ctx, db, next.ID())
		if err == nil {
			break
		}
		// A template sealed under the old key after the last batch: only
		// a process that had not yet seen the switch can do that, once.
		if concierge.ErrorCode(err) != concierge.ECONFLICT || attempt >= 3 {
			return err
		}
	}
	if file != "" {
		if err := seal.WriteKeyFile(file, []*seal.Key{next}); err != nil {
			return err
		}
	}
	m.Logger.Info("template key rotated", "key", next.ID(), "templates", total, "retired", len(retired))
	out := map[string]any{"key": next.ID(), "templates_resealed": total, "retired": retired, "source": kr.Origin()}
	if file == "" && len(kr.IDs()) > 1 {
		out["note"] = "remove the old keys from " + kr.Origin() + ": no template needs them"
	}
	return writeJSON(m, out)
}

func retireOthers(ctx context.Context, db *sqlite.DB, keep seal.KeyID) ([]string, error) {
	status, err := db.KeyStatus(ctx)
	if err != nil {
		return nil, err
	}
	var retired []string
	var errs []error
	for _, k := range status {
		if k.ID == keep {
			continue
		}
		if err := db.RetireKey(ctx, k.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		retired = append(retired, k.ID.String())
	}
	return retired, errors.Join(errs...)
}

func dedupKeys(keys []*seal.Key) []*seal.Key {
	var out []*seal.Key
	for _, k := range keys {
		if !slices.ContainsFunc(out, func(o *seal.Key) bool { return o.ID() == k.ID() }) {
			out = append(out, k)
		}
	}
	return out
}
