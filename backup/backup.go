// Package backup copies a Concierge box's state to a directory and back: a
// consistent snapshot of the database taken while the daemon runs, and the
// files the database cannot be used without (the template key, the NATS
// identities, the lobby's session key), each recorded with its SHA-256 in
// a manifest that a restore verifies before it touches anything.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"concierge"
)

// ManifestFile is the manifest's name inside a backup.
const ManifestFile = "MANIFEST.json"

// dbName is the database's name inside a backup.
const dbName = "concierge.db"

// Snapshotter writes a consistent copy of a live database (sqlite.DB).
type Snapshotter interface {
	BackupTo(ctx context.Context, path string) error
}

// Item is a file or a directory of the box that a backup carries: Name is
// where it goes inside the backup, Path where it lives on the box.
type Item struct {
	Name string
	Path string
}

// Set is what a box's backup holds: the database and the items.
type Set struct {
	DB    string
	Items []Item
}

// Entry is one file of a backup, with its digest.
type Entry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes a backup.
type Manifest struct {
	Format  int       `json:"format"`
	Made    time.Time `json:"made"`
	Files   []Entry   `json:"files"`
	Missing []string  `json:"missing,omitempty"` // items the box did not have
	Notes   []string  `json:"notes,omitempty"`   // what is not in the backup, and why
}

// Make writes a backup of set into dir, which must not exist or be empty.
// Files are 0600 in 0700 directories: the backup holds sealed templates and
// the key that opens them.
func Make(ctx context.Context, db Snapshotter, set Set, dir string, notes []string, now time.Time) (Manifest, error) {
	m := Manifest{Format: 1, Made: now.UTC(), Notes: notes}
	if err := emptyDir(dir); err != nil {
		return m, err
	}
	if err := db.BackupTo(ctx, filepath.Join(dir, dbName)); err != nil {
		return m, err
	}
	for _, it := range set.Items {
		if _, err := os.Stat(it.Path); errors.Is(err, fs.ErrNotExist) {
			m.Missing = append(m.Missing, it.Name)
			continue
		}
		if err := copyTree(it.Path, filepath.Join(dir, it.Name)); err != nil {
			return m, fmt.Errorf("backup %s: %w", it.Name, err)
		}
	}
	files, err := digests(dir)
	if err != nil {
		return m, err
	}
	m.Files = files
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), append(data, '\n'), 0o600); err != nil {
		return m, fmt.Errorf("backup manifest: %w", err)
	}
	return m, nil
}

// Read reads and verifies a backup's manifest against its files: a file
// missing, added or changed is an error, before anything is restored.
func Read(dir string) (Manifest, error) {
	var m Manifest
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return m, concierge.Errorf(concierge.EINVALID, "%s is not a Concierge backup: %w", dir, err)
	}
	if err := json.Unmarshal(data, &m); err != nil || m.Format != 1 {
		return m, concierge.Errorf(concierge.EINVALID, "%s: unreadable manifest (format %d): %w", dir, m.Format, err)
	}
	files, err := digests(dir)
	if err != nil {
		return m, err
	}
	want := map[string]Entry{}
	for _, e := range m.Files {
		want[e.Name] = e
	}
	for _, e := range files {
		w, ok := want[e.Name]
		switch {
		case !ok:
			return m, concierge.Errorf(concierge.EINVALID, "backup %s: %s is not in the manifest", dir, e.Name)
		case w != e:
			return m, concierge.Errorf(concierge.EINVALID, "backup %s: %s does not match the manifest (damaged or changed)", dir, e.Name)
		}
		delete(want, e.Name)
	}
	for name := range want {
		return m, concierge.Errorf(concierge.EINVALID, "backup %s: %s is missing", dir, name)
	}
	return m, nil
}

// Restore puts a verified backup in place of set. Existing targets are
// refused unless force; with force they are replaced (the database's
// -wal and -shm removed with it). The daemon must not be running.
func Restore(dir string, set Set, force bool) (Manifest, error) {
	m, err := Read(dir)
	if err != nil {
		return m, err
	}
	targets := []string{set.DB}
	for _, it := range set.Items {
		if _, err := os.Stat(filepath.Join(dir, it.Name)); err == nil {
			targets = append(targets, it.Path)
		}
	}
	var existing []string
	for _, t := range targets {
		if _, err := os.Stat(t); err == nil {
			existing = append(existing, t)
		}
	}
	if len(existing) > 0 && !force {
		return m, concierge.Errorf(concierge.ECONFLICT, "restore would overwrite %s (use --force, with the daemon stopped)",
			strings.Join(existing, ", "))
	}
	if err := os.MkdirAll(filepath.Dir(set.DB), 0o700); err != nil {
		return m, err
	}
	// The database goes in under a temporary name and is renamed over the
	// old one, so a failed copy leaves the old database as it was.
	tmp := set.DB + ".restore"
	os.Remove(tmp)
	if err := copyFile(filepath.Join(dir, dbName), tmp); err != nil {
		return m, fmt.Errorf("restore database: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(set.DB + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			os.Remove(tmp)
			return m, fmt.Errorf("restore database: %w", err)
		}
	}
	if err := os.Rename(tmp, set.DB); err != nil {
		os.Remove(tmp)
		return m, fmt.Errorf("restore database: %w", err)
	}
	for _, it := range set.Items {
		src := filepath.Join(dir, it.Name)
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.RemoveAll(it.Path); err != nil {
			return m, fmt.Errorf("restore %s: %w", it.Name, err)
		}
		if err := copyTree(src, it.Path); err != nil {
			return m, fmt.Errorf("restore %s: %w", it.Name, err)
		}
	}
	return m, nil
}

// emptyDir makes dir (0700) or accepts it when it exists and is empty.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, 0o700)
	case err != nil:
		return fmt.Errorf("backup: %w", err)
	case len(entries) > 0:
		return concierge.Errorf(concierge.ECONFLICT, "backup directory %s is not empty", dir)
	}
	return os.Chmod(dir, 0o700)
}

// copyTree copies a file, or a directory's regular files recursively, with
// owner-only modes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case d.Type().IsRegular():
			if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
				return err
			}
			return copyFile(path, to)
		}
		return nil // sockets, links: nothing of ours
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// digests lists every file under dir but the manifest, sorted by name.
func digests(dir string) ([]Entry, error) {
	var out []Entry
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == ManifestFile {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		out = append(out, Entry{Name: filepath.ToSlash(rel), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}
