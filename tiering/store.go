package tiering

import "context"

// Store keeps customers' monthly snapshots with their history. The sqlite
// package implements it.
type Store interface {
	// SaveTierSnapshots writes a batch in one transaction. A snapshot identical
	// (SameData) to the latest revision of its customer and month is left
	// alone; a different one is added as the next revision, keeping the old.
	// An import that changes nothing writes nothing at all, and a dry run
	// reports the counts and rolls back.
	SaveTierSnapshots(ctx context.Context, batch ImportBatch) (ImportCounts, error)
	// TierSnapshots returns the latest revision of each month of a customer,
	// oldest month first; empty if the customer is unknown.
	TierSnapshots(ctx context.Context, customerID string) ([]Snapshot, error)
	// TierSnapshotHistory returns every revision of every month of a customer,
	// by month then revision.
	TierSnapshotHistory(ctx context.Context, customerID string) ([]Snapshot, error)
	// EachTierCustomer calls fn with each customer's TierSnapshots, customer by
	// customer, stopping at fn's first error.
	EachTierCustomer(ctx context.Context, fn func(customerID string, snaps []Snapshot) error) error
	// TiersVersion changes whenever an import changes data, so a cache in
	// another process knows when to reload.
	TiersVersion(ctx context.Context) (int64, error)
}

// ImportBatch is one file's valid rows.
type ImportBatch struct {
	Source    string // file name, recorded with the import
	SHA256    string // of the file as read
	Rows      int    // data rows in the file, good and bad
	Snapshots []Snapshot
	DryRun    bool
}

// ImportCounts says what an import did (or, dry, would do).
type ImportCounts struct {
	Inserted  int `json:"inserted"`  // new customer-months
	Revised   int `json:"revised"`   // new revisions of known customer-months
	Unchanged int `json:"unchanged"` // identical to what is stored
}

// Changed reports whether the import changed any data.
func (c ImportCounts) Changed() bool { return c.Inserted+c.Revised > 0 }
