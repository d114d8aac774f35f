package tiering

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"concierge"
)

// Importer loads core-banking exports into a Store.
type Importer struct {
	Store   Store
	Schemes *Schemes
	// Cache, if set, is refreshed after an import that changed data, so the
	// alert path sees new tiers at once in this process.
	Cache *Cache
}

// ImportOptions control one import.
type ImportOptions struct {
	Source   string // file name for the record and messages
	Encoding string // "", "auto", "utf-8" or "gb18030"
	DryRun   bool
	// SkipBadRows imports the valid rows of a file with bad ones; without
	// it any bad row rejects the whole file.
	SkipBadRows bool
}

// ImportReport is what an import found and did.
type ImportReport struct {
	Source   string     `json:"source"`
	Encoding string     `json:"encoding"`
	Rows     int        `json:"rows"`
	Valid    int        `json:"valid"`
	BadRows  []RowError `json:"bad_rows"`
	ImportCounts
	DryRun    bool `json:"dry_run"`
	Committed bool `json:"committed"`
}

// Import parses data and stores its valid rows in one transaction. With
// bad rows and no SkipBadRows it stores nothing and returns an EINVALID
// error; the report lists every problem either way.
func (im *Importer) Import(ctx context.Context, data []byte, opts ImportOptions) (*ImportReport, error) {
	rep := &ImportReport{Source: opts.Source, DryRun: opts.DryRun, BadRows: []RowError{}}
	parsed, err := im.Schemes.ParseCSV(data, opts.Encoding)
	if parsed != nil {
		rep.Encoding, rep.Rows, rep.Valid = parsed.Encoding, parsed.Rows, len(parsed.Snapshots)
		rep.BadRows = append(rep.BadRows, parsed.Problems...)
	}
	if err != nil {
		return rep, err
	}
	if len(parsed.Problems) > 0 && !opts.SkipBadRows {
		return rep, concierge.Errorf(concierge.EINVALID, "%s: %d of %d rows are bad; nothing was imported",
			opts.Source, parsed.BadLines(), parsed.Rows)
	}
	if len(parsed.Snapshots) == 0 {
		return rep, nil
	}
	sum := sha256.Sum256(data)
	counts, err := im.Store.SaveTierSnapshots(ctx, ImportBatch{
		Source: opts.Source, SHA256: hex.EncodeToString(sum[:]), Rows: parsed.Rows,
		Snapshots: parsed.Snapshots, DryRun: opts.DryRun,
	})
	if err != nil {
		return rep, fmt.Errorf("import %s: %w", opts.Source, err)
	}
	rep.ImportCounts = counts
	rep.Committed = !opts.DryRun && counts.Changed()
	if rep.Committed && im.Cache != nil {
		if err := im.Cache.Refresh(ctx); err != nil {
			return rep, fmt.Errorf("import %s: refresh cache: %w", opts.Source, err)
		}
	}
	return rep, nil
}
