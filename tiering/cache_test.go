package tiering

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"concierge/internal/testenv"
)

// memStore is a Store in memory for the cache's own tests; the SQLite store
// is tested against the real database in package sqlite.
type memStore struct {
	mu      sync.Mutex
	byID    map[string][]Snapshot // latest revision per month, by month
	version int64
}

func newMemStore() *memStore { return &memStore{byID: map[string][]Snapshot{}} }

func (m *memStore) SaveTierSnapshots(_ context.Context, b ImportBatch) (ImportCounts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var c ImportCounts
	for _, s := range b.Snapshots {
		snaps := m.byID[s.CustomerID]
		i := slices.IndexFunc(snaps, func(o Snapshot) bool { return o.Month == s.Month })
		switch {
		case i >= 0 && snaps[i].SameData(s):
			c.Unchanged++
			continue
		case i >= 0:
			s.Revision = snaps[i].Revision + 1
			c.Revised++
		default:
			s.Revision = 1
			c.Inserted++
		}
		if b.DryRun {
			continue
		}
		if i >= 0 {
			snaps[i] = s
		} else {
			snaps = append(snaps, s)
			slices.SortFunc(snaps, func(a, b Snapshot) int { return int(a.Month - b.Month) })
		}
		m.byID[s.CustomerID] = snaps
	}
	if !b.DryRun && c.Changed() {
		m.version++
	}
	return c, nil
}

func (m *memStore) TierSnapshots(_ context.Context, id string) ([]Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.byID[id]), nil
}

func (m *memStore) TierSnapshotHistory(ctx context.Context, id string) ([]Snapshot, error) {
	return m.TierSnapshots(ctx, id)
}

func (m *memStore) EachTierCustomer(_ context.Context, fn func(string, []Snapshot) error) error {
	m.mu.Lock()
	ids := make([]string, 0, len(m.byID))
	for id := range m.byID {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		m.mu.Lock()
		snaps := slices.Clone(m.byID[id])
		m.mu.Unlock()
		if err := fn(id, snaps); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) TiersVersion(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version, nil
}

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestCacheImportRefresh(t *testing.T) {
	ctx := context.Background()
	s := mustSchemes(t)
	store := newMemStore()
	cache := NewCache(store, s)
	cache.Logger = quietLogger
	if err := cache.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	at := time.Date(2024, 7, 1, 10, 0, 0, 0, time.Local)
	if _, ok := cache.Tier("C1", at); ok {
		t.Fatal("unknown customer found")
	}

	im := &Importer{Store: store, Schemes: s, Cache: cache}
	data := "customer_id,month,points,risk_flags\nC1,2024-06,2500,\nC2,2024-06,100,credit:C01\n"
	rep, err := im.Import(ctx, []byte(data), ImportOptions{Source: "june.csv"})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Committed || rep.Inserted != 2 {
		t.Fatalf("report = %+v", rep)
	}
	st, ok := cache.Tier("C1", at)
	if !ok || st.Level != "star5" || !st.VIP || st.HasRisk() {
		t.Fatalf("C1 = %+v, %v", st, ok)
	}
	st, ok = cache.Tier("C2", at)
	if !ok || st.Level != "star3" || !st.HasRisk() || st.RiskFlags[0].Reason != "C01" {
		t.Fatalf("C2 = %+v, %v", st, ok)
	}
	if cache.Len() != 2 {
		t.Fatalf("len = %d", cache.Len())
	}
	if err := cache.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCachePollsForOtherProcessesImports(t *testing.T) {
	ctx := context.Background()
	s := mustSchemes(t)
	store := newMemStore()
	cache := NewCache(store, s)
	cache.Logger = quietLogger
	cache.PollInterval = 5 * time.Millisecond
	if err := cache.Open(ctx); err != nil {
		t.Fatal(err)
	}
	// The import runs without the cache, as the CLI does beside the daemon.
	im := &Importer{Store: store, Schemes: s}
	if _, err := im.Import(ctx, []byte("customer_id,month,points\nC1,2024-06,90000\n"), ImportOptions{Source: "x.csv"}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st, ok := cache.Tier("C1", time.Date(2024, 6, 30, 12, 0, 0, 0, time.UTC)); !ok || st.Level != "star7" {
			return fmt.Errorf("C1 = %+v, %v", st, ok)
		}
		return nil
	})
	cache.Close()
	cache.Close() // twice is harmless
}

func TestImportRejectsFileWithBadRow(t *testing.T) {
	ctx := context.Background()
	s := mustSchemes(t)
	store := newMemStore()
	im := &Importer{Store: store, Schemes: s}
	var b []byte
	b = append(b, "customer_id,month,points\n"...)
	for i := range 50 {
		b = fmt.Appendf(b, "C%d,2024-06,%d\n", i, i*100)
	}
	b = append(b, "C50,2024-06,many\n"...)

	rep, err := im.Import(ctx, b, ImportOptions{Source: "bad.csv"})
	if err == nil || len(rep.BadRows) != 1 || rep.BadRows[0].Line != 52 || rep.Committed {
		t.Fatalf("report %+v, err %v", rep, err)
	}
	if v, _ := store.TiersVersion(ctx); v != 0 {
		t.Fatal("a rejected file changed the store")
	}
	rep, err = im.Import(ctx, b, ImportOptions{Source: "bad.csv", SkipBadRows: true})
	if err != nil || rep.Inserted != 50 || len(rep.BadRows) != 1 || !rep.Committed {
		t.Fatalf("skip-bad-rows report %+v, err %v", rep, err)
	}
}

// BenchmarkCacheTier measures the alert-path lookup over 20,000 customers
// (more than a branch's opted-in customers) with two years of monthly
// history each.
func BenchmarkCacheTier(b *testing.B) {
	s := mustSchemes(b)
	store := newMemStore()
	const customers = 20_000
	batch := make([]Snapshot, 0, customers*24)
	for i := range customers {
		for m := NewMonth(2023, 1); m <= NewMonth(2024, 12); m++ {
			sn := Snapshot{CustomerID: fmt.Sprintf("C%06d", i), Month: m,
				Facts: Facts{Indicators: map[string]Decimal{"points": DecimalFromInt(int64((i*37 + int(m)*11) % 90000))}}}
			if i%50 == 0 {
				sn.RiskFlags = []RiskFlag{{RiskCredit, "C01"}}
			}
			batch = append(batch, sn)
		}
	}
	if _, err := store.SaveTierSnapshots(context.Background(), ImportBatch{Snapshots: batch}); err != nil {
		b.Fatal(err)
	}
	cache := NewCache(store, s)
	cache.Logger = quietLogger
	if err := cache.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("C%06d", (i*7919)%customers)
	}
	at := time.Date(2024, 11, 15, 10, 30, 0, 0, time.FixedZone("CST", 8*3600))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := cache.Tier(ids[i%len(ids)], at); !ok {
			b.Fatal("missing customer")
		}
	}
}
