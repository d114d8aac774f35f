package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"concierge"
	"concierge/seal"
)

// Rotation is what RotateKey did.
type Rotation struct {
	Key      seal.KeyID // the key that seals every template now
	Resealed int        // templates re-encrypted
	Retired  []string   // keys the database no longer knows
}

// RotateKey moves every template to a new key, in the order that keeps
// every process able to read every template: the new key reaches the key
// file before any template is sealed with it, and the old key leaves the
// file only after no template uses it. With a key file it makes the new key
// itself; with keys from elsewhere (the environment, a systemd credential)
// the operator puts the new key first there and restarts, and RotateKey
// re-encrypts under it (EINVALID when there is no new key to use). Batches
// of batch templates, each one short transaction, let a running daemon
// write between them. Stopped by ctx, it can be run again to finish.
func (d *DB) RotateKey(ctx context.Context, batch int) (Rotation, error) {
	kr := d.Keyring()
	status, err := d.KeyStatus(ctx)
	if err != nil {
		return Rotation{}, err
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
				return Rotation{}, err
			}
		}
		keys := append([]*seal.Key{next}, kr.Keys()...)
		if err := seal.WriteKeyFile(file, dedupKeys(keys)); err != nil {
			return Rotation{}, err
		}
		if err := kr.Reload(); err != nil {
			return Rotation{}, err
		}
	case next.ID() == current:
		return Rotation{}, concierge.Errorf(concierge.EINVALID,
			"template keys come from %s: put a new key first there, the old one after it, then run keys rotate again", kr.Origin())
	}
	if err := d.UseKey(ctx, next.ID()); err != nil {
		return Rotation{}, err
	}
	rot := Rotation{Key: next.ID()}
	for attempt := 0; ; attempt++ {
		for {
			if err := ctx.Err(); err != nil {
				return rot, fmt.Errorf("keys rotate: stopped after %d templates; run it again to finish: %w", rot.Resealed, err)
			}
			n, err := d.Reseal(ctx, batch)
			if err != nil {
				return rot, err
			}
			rot.Resealed += n
			if n == 0 {
				break
			}
		}
		rot.Retired, err = d.retireOthers(ctx, next.ID())
		if err == nil {
			break
		}
		// A template sealed under the old key after the last batch: only
		// a process that had not yet seen the switch can do that, once.
		if concierge.ErrorCode(err) != concierge.ECONFLICT || attempt >= 3 {
			return rot, err
		}
	}
	if file != "" {
		if err := seal.WriteKeyFile(file, []*seal.Key{next}); err != nil {
			return rot, err
		}
	}
	return rot, nil
}

// retireOthers retires every key but keep.
func (d *DB) retireOthers(ctx context.Context, keep seal.KeyID) ([]string, error) {
	status, err := d.KeyStatus(ctx)
	if err != nil {
		return nil, err
	}
	var retired []string
	var errs []error
	for _, k := range status {
		if k.ID == keep {
			continue
		}
		if err := d.RetireKey(ctx, k.ID); err != nil {
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
