package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"concierge/tiering"
)

var _ tiering.Store = (*DB)(nil)

// Snapshots are never updated in place: a corrected month is a new revision,
// so what core banking said at every import stays answerable. Indicators,
// cards and flags are JSON because schemes add indicators without schema
// changes; indicator values are exact decimal text, never floats.
var _ = register("tiering",
	`CREATE TABLE tier_imports (
		id          INTEGER PRIMARY KEY,
		source      TEXT NOT NULL,
		sha256      TEXT NOT NULL,
		row_count   INTEGER NOT NULL,
		inserted    INTEGER NOT NULL,
		revised     INTEGER NOT NULL,
		unchanged   INTEGER NOT NULL,
		imported_at TEXT NOT NULL
	);
	CREATE TABLE tier_snapshots (
		customer_id     TEXT NOT NULL CHECK (customer_id <> ''),
		month           TEXT NOT NULL CHECK (length(month) = 7),
		revision        INTEGER NOT NULL CHECK (revision > 0),
		import_id       INTEGER NOT NULL REFERENCES tier_imports(id),
		scheme          TEXT NOT NULL,
		indicators      TEXT NOT NULL,
		cards           TEXT NOT NULL,
		private_banking INTEGER NOT NULL,
		rm_id           TEXT NOT NULL,
		rm_name         TEXT NOT NULL,
		rm_phone        TEXT NOT NULL,
		form_of_address TEXT NOT NULL,
		language        TEXT NOT NULL,
		risk_flags      TEXT NOT NULL,
		PRIMARY KEY (customer_id, month, revision)
	) WITHOUT ROWID;`,
)

const tierSnapshotCols = `s.customer_id, s.month, s.revision, s.scheme, s.indicators, s.cards, s.private_banking,
	s.rm_id, s.rm_name, s.rm_phone, s.form_of_address, s.language, s.risk_flags, i.source, i.imported_at
	FROM tier_snapshots s JOIN tier_imports i ON i.id = s.import_id`

// latestRevision keeps the rows that are the newest revision of their month.
const latestRevision = `s.revision = (SELECT MAX(x.revision) FROM tier_snapshots x
	WHERE x.customer_id = s.customer_id AND x.month = s.month)`

// SaveTierSnapshots implements tiering.Store.
func (d *DB) SaveTierSnapshots(ctx context.Context, b tiering.ImportBatch) (tiering.ImportCounts, error) {
	var counts tiering.ImportCounts
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return counts, fmt.Errorf("save tier snapshots: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO tier_imports
		(source, sha256, row_count, inserted, revised, unchanged, imported_at) VALUES (?, ?, ?, 0, 0, 0, ?)`,
		b.Source, b.SHA256, b.Rows, d.now().Format(timeFormat))
	if err != nil {
		return counts, fmt.Errorf("save tier import: %w", err)
	}
	importID, err := res.LastInsertId()
	if err != nil {
		return counts, fmt.Errorf("save tier import: %w", err)
	}
	latest, err := tx.PrepareContext(ctx, `SELECT `+tierSnapshotCols+`
		WHERE s.customer_id = ? AND s.month = ? ORDER BY s.revision DESC LIMIT 1`)
	if err != nil {
		return counts, fmt.Errorf("save tier snapshots: %w", err)
	}
	defer latest.Close()
	insert, err := tx.PrepareContext(ctx, `INSERT INTO tier_snapshots
		(customer_id, month, revision, import_id, scheme, indicators, cards, private_banking,
		 rm_id, rm_name, rm_phone, form_of_address, language, risk_flags)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return counts, fmt.Errorf("save tier snapshots: %w", err)
	}
	defer insert.Close()

	for _, s := range b.Snapshots {
		prev, err := scanTierSnapshot(latest.QueryRowContext(ctx, s.CustomerID, s.Month.String()))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			prev.Revision = 0
		case err != nil:
			return counts, fmt.Errorf("save tier snapshot %s %s: %w", s.CustomerID, s.Month, err)
		case prev.SameData(s):
			counts.Unchanged++
			continue
		}
		ind, cards, flags, err := encodeTierFacts(s)
		if err != nil {
			return counts, fmt.Errorf("save tier snapshot %s %s: %w", s.CustomerID, s.Month, err)
		}
		if _, err := insert.ExecContext(ctx, s.CustomerID, s.Month.String(), prev.Revision+1, importID,
			s.Scheme, ind, cards, s.PrivateBanking, s.RelationshipManager.ID, s.RelationshipManager.Name,
			s.RelationshipManager.Phone, s.FormOfAddress, s.Language, flags); err != nil {
			return counts, fmt.Errorf("save tier snapshot %s %s: %w", s.CustomerID, s.Month, err)
		}
		if prev.Revision == 0 {
			counts.Inserted++
		} else {
			counts.Revised++
		}
	}
	// A dry run, or a re-import of data already held, leaves no trace:
	// not even the import record, so the cache version stays put.
	if b.DryRun || !counts.Changed() {
		return counts, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE tier_imports SET inserted = ?, revised = ?, unchanged = ? WHERE id = ?`,
		counts.Inserted, counts.Revised, counts.Unchanged, importID); err != nil {
		return counts, fmt.Errorf("save tier import: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return counts, fmt.Errorf("save tier snapshots: %w", err)
	}
	return counts, nil
}

// TierSnapshots implements tiering.Store.
func (d *DB) TierSnapshots(ctx context.Context, customerID string) ([]tiering.Snapshot, error) {
	snaps, err := d.queryTierSnapshots(ctx, `SELECT `+tierSnapshotCols+`
		WHERE s.customer_id = ? AND `+latestRevision+` ORDER BY s.month`, customerID)
	if err != nil {
		return nil, fmt.Errorf("tier snapshots %s: %w", customerID, err)
	}
	return snaps, nil
}

// TierSnapshotHistory implements tiering.Store.
func (d *DB) TierSnapshotHistory(ctx context.Context, customerID string) ([]tiering.Snapshot, error) {
	snaps, err := d.queryTierSnapshots(ctx, `SELECT `+tierSnapshotCols+`
		WHERE s.customer_id = ? ORDER BY s.month, s.revision`, customerID)
	if err != nil {
		return nil, fmt.Errorf("tier snapshot history %s: %w", customerID, err)
	}
	return snaps, nil
}

// EachTierCustomer implements tiering.Store. Rows stream in customer order
// so that only one customer's snapshots are in memory at a time.
func (d *DB) EachTierCustomer(ctx context.Context, fn func(string, []tiering.Snapshot) error) error {
	rows, err := d.db.QueryContext(ctx, `SELECT `+tierSnapshotCols+`
		WHERE `+latestRevision+` ORDER BY s.customer_id, s.month`)
	if err != nil {
		return fmt.Errorf("each tier customer: %w", err)
	}
	defer rows.Close()
	var cur []tiering.Snapshot
	for rows.Next() {
		s, err := scanTierSnapshot(rows)
		if err != nil {
			return fmt.Errorf("each tier customer: %w", err)
		}
		if len(cur) > 0 && cur[0].CustomerID != s.CustomerID {
			if err := fn(cur[0].CustomerID, cur); err != nil {
				return err
			}
			cur = nil
		}
		cur = append(cur, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("each tier customer: %w", err)
	}
	if len(cur) > 0 {
		return fn(cur[0].CustomerID, cur)
	}
	return nil
}

// TiersVersion implements tiering.Store: only imports that changed data
// leave a record, so the newest record's id is the data version.
func (d *DB) TiersVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM tier_imports`).Scan(&v); err != nil {
		return 0, fmt.Errorf("tiers version: %w", err)
	}
	return v, nil
}

func (d *DB) queryTierSnapshots(ctx context.Context, query string, args ...any) ([]tiering.Snapshot, error) {
	rows, err := d.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tiering.Snapshot
	for rows.Next() {
		s, err := scanTierSnapshot(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func encodeTierFacts(s tiering.Snapshot) (ind, cards, flags string, err error) {
	indicators := s.Indicators
	if indicators == nil {
		indicators = map[string]tiering.Decimal{}
	}
	b1, err := json.Marshal(indicators) // map keys are sorted: stable text
	if err != nil {
		return "", "", "", err
	}
	b2, err := json.Marshal(nonNil(s.Cards))
	if err != nil {
		return "", "", "", err
	}
	b3, err := json.Marshal(nonNil(s.RiskFlags))
	if err != nil {
		return "", "", "", err
	}
	return string(b1), string(b2), string(b3), nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func scanTierSnapshot(r interface{ Scan(...any) error }) (tiering.Snapshot, error) {
	var (
		s                 tiering.Snapshot
		month, importedAt string
		ind, cards, flags string
	)
	err := r.Scan(&s.CustomerID, &month, &s.Revision, &s.Scheme, &ind, &cards, &s.PrivateBanking,
		&s.RelationshipManager.ID, &s.RelationshipManager.Name, &s.RelationshipManager.Phone,
		&s.FormOfAddress, &s.Language, &flags, &s.Source, &importedAt)
	if err != nil {
		return s, err
	}
	if s.Month, err = tiering.ParseMonth(month); err != nil {
		return s, err
	}
	if s.ImportedAt, err = time.Parse(timeFormat, importedAt); err != nil {
		return s, fmt.Errorf("imported_at: %w", err)
	}
	if err := json.Unmarshal([]byte(ind), &s.Indicators); err != nil {
		return s, fmt.Errorf("indicators: %w", err)
	}
	if len(s.Indicators) == 0 {
		s.Indicators = nil
	}
	if err := json.Unmarshal([]byte(cards), &s.Cards); err != nil {
		return s, fmt.Errorf("cards: %w", err)
	}
	if len(s.Cards) == 0 {
		s.Cards = nil
	}
	if err := json.Unmarshal([]byte(flags), &s.RiskFlags); err != nil {
		return s, fmt.Errorf("risk flags: %w", err)
	}
	if len(s.RiskFlags) == 0 {
		s.RiskFlags = nil
	}
	return s, nil
}
