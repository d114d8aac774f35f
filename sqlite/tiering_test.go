package sqlite_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"concierge"
	"concierge/internal/testenv/testdb"
	"concierge/sqlite"
	"concierge/tiering"
)

func mustOpenTierDB(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db := testdb.Open(tb)
	db.Now = func() time.Time { return time.Date(2024, 7, 2, 9, 0, 0, 0, time.UTC) }
	return db
}

func tierImporter(tb testing.TB, db *sqlite.DB) *tiering.Importer {
	tb.Helper()
	s, err := tiering.LoadSchemes("", "")
	if err != nil {
		tb.Fatal(err)
	}
	return &tiering.Importer{Store: db, Schemes: s}
}

// tierTables dumps every tier row so tests can assert "nothing changed".
func tierTables(tb testing.TB, db *sqlite.DB) string {
	tb.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT id, source, sha256, row_count, inserted, revised, unchanged, imported_at FROM tier_imports ORDER BY id`,
		`SELECT customer_id, month, revision, import_id, scheme, indicators, cards, private_banking, rm_id, rm_name,
			rm_phone, form_of_address, language, risk_flags FROM tier_snapshots ORDER BY customer_id, month, revision`,
	} {
		rows, err := db.SQL().Query(q)
		if err != nil {
			tb.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				tb.Fatal(err)
			}
			fmt.Fprintln(&b, vals...)
		}
		rows.Close()
	}
	return b.String()
}

const juneCSV = "customer_id,month,scheme,assets,points,cards,private_banking,rm_id,rm_name,rm_phone,form_of_address,language,risk_flags\n" +
	"C1,2024-05,,250000,2500,credit_gold,0,E1,李经理,13800000000,李先生,zh-CN,\n" +
	"C1,2024-06,,250000.5,2600,credit_gold,0,E1,李经理,13800000000,李先生,zh-CN,aml:A3\n" +
	"C2,2024-06,boc-wealth,6000000,0,,1,E2,王经理,,王女士,en,\n"

func TestTierImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := mustOpenTierDB(t)
	rep, err := tierImporter(t, db).Import(ctx, []byte(juneCSV), tiering.ImportOptions{Source: "june.csv"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Inserted != 3 || rep.Revised != 0 || rep.Unchanged != 0 || !rep.Committed || rep.Rows != 3 || rep.Valid != 3 {
		t.Fatalf("report = %+v", rep)
	}
	snaps, err := db.TierSnapshots(ctx, "C1")
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 {
		t.Fatalf("snapshots = %+v", snaps)
	}
	jun := snaps[1]
	if jun.Month.String() != "2024-06" || jun.Indicators["assets"].String() != "250000.5" ||
		jun.Indicators["points"].String() != "2600" || !jun.HasCard("credit_gold") ||
		jun.RelationshipManager != (tiering.RelationshipManager{ID: "E1", Name: "李经理", Phone: "13800000000"}) ||
		jun.FormOfAddress != "李先生" || jun.Language != "zh-CN" ||
		len(jun.RiskFlags) != 1 || jun.RiskFlags[0] != (tiering.RiskFlag{Kind: tiering.RiskAML, Reason: "A3"}) ||
		jun.Revision != 1 || jun.Source != "june.csv" || !jun.ImportedAt.Equal(db.Now()) {
		t.Fatalf("June = %+v", jun)
	}
	c2, _ := db.TierSnapshots(ctx, "C2")
	if len(c2) != 1 || c2[0].Scheme != "boc-wealth" || !c2[0].PrivateBanking || c2[0].Cards != nil || c2[0].RiskFlags != nil {
		t.Fatalf("C2 = %+v", c2)
	}
	if none, err := db.TierSnapshots(ctx, "nobody"); err != nil || len(none) != 0 {
		t.Fatalf("unknown customer = %v, %v", none, err)
	}
}

func TestTierReimportChangesNothing(t *testing.T) {
	ctx := context.Background()
	db := mustOpenTierDB(t)
	im := tierImporter(t, db)
	if _, err := im.Import(ctx, []byte(juneCSV), tiering.ImportOptions{Source: "june.csv"}); err != nil {
		t.Fatal(err)
	}
	before := tierTables(t, db)
	v1, _ := db.TiersVersion(ctx)

	// The same data again, even re-encoded as GB18030 with a BOM-less export
	// and the rows in another order, is the same data.
	lines := strings.Split(strings.TrimSpace(juneCSV), "\n")
	shuffled := strings.Join([]string{lines[0], lines[3], lines[2], lines[1]}, "\n") + "\n"
	gb, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(shuffled))
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{[]byte(juneCSV), gb} {
		rep, err := im.Import(ctx, data, tiering.ImportOptions{Source: "june-again.csv"})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Inserted != 0 || rep.Revised != 0 || rep.Unchanged != 3 || rep.Committed {
			t.Fatalf("re-import report = %+v", rep)
		}
	}
	if after := tierTables(t, db); after != before {
		t.Fatalf("re-import changed the tables:\n%s\nwas\n%s", after, before)
	}
	if v2, _ := db.TiersVersion(ctx); v2 != v1 {
		t.Fatalf("version %d -> %d", v1, v2)
	}
}

func TestTierCorrectionKeepsHistory(t *testing.T) {
	ctx := context.Background()
	db := mustOpenTierDB(t)
	im := tierImporter(t, db)
	if _, err := im.Import(ctx, []byte(juneCSV), tiering.ImportOptions{Source: "june.csv"}); err != nil {
		t.Fatal(err)
	}
	v1, _ := db.TiersVersion(ctx)
	fix := "customer_id,month,points,assets,scheme,cards,private_banking,rm_id,rm_name,rm_phone,form_of_address,language,risk_flags\n" +
		"C1,2024-06,1999.99,250000.5,,credit_gold,0,E1,李经理,13800000000,李先生,zh-CN,aml:A3\n" +
		"C3,2024-06,10,0,,,0,,,,,,\n"
	rep, err := im.Import(ctx, []byte(fix), tiering.ImportOptions{Source: "june-fix.csv"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Inserted != 1 || rep.Revised != 1 || !rep.Committed {
		t.Fatalf("report = %+v", rep)
	}
	if v2, _ := db.TiersVersion(ctx); v2 <= v1 {
		t.Fatalf("version did not move: %d -> %d", v1, v2)
	}
	cur, _ := db.TierSnapshots(ctx, "C1")
	if got := cur[1]; got.Revision != 2 || got.Indicators["points"].String() != "1999.99" || got.Source != "june-fix.csv" {
		t.Fatalf("current June = %+v", got)
	}
	hist, err := db.TierSnapshotHistory(ctx, "C1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range hist {
		got = append(got, fmt.Sprintf("%s r%d %s", s.Month, s.Revision, s.Indicators["points"]))
	}
	if strings.Join(got, "; ") != "2024-05 r1 2500; 2024-06 r1 2600; 2024-06 r2 1999.99" {
		t.Fatalf("history = %v", got)
	}
}

func TestTierBadRowRejectsWholeFile(t *testing.T) {
	ctx := context.Background()
	db := mustOpenTierDB(t)
	im := tierImporter(t, db)
	var b strings.Builder
	b.WriteString("customer_id,month,points\n")
	for i := range 200 {
		fmt.Fprintf(&b, "C%03d,2024-06,%d\n", i, i*50)
		if i == 120 {
			b.WriteString("X1,2024-06,-5\n") // line 123
		}
	}
	data := []byte(b.String())

	rep, err := im.Import(ctx, data, tiering.ImportOptions{Source: "big.csv"})
	if concierge.ErrorCode(err) != concierge.EINVALID || !strings.Contains(concierge.ErrorMessage(err), "1 of 201 rows are bad") {
		t.Fatalf("err = %v", err)
	}
	if len(rep.BadRows) != 1 || rep.BadRows[0].Line != 123 || rep.BadRows[0].Code != tiering.CodeNegativeAmount || rep.Committed {
		t.Fatalf("report = %+v", rep)
	}
	if got := tierTables(t, db); got != "" {
		t.Fatalf("a rejected file left rows:\n%s", got)
	}

	rep, err = im.Import(ctx, data, tiering.ImportOptions{Source: "big.csv", DryRun: true, SkipBadRows: true})
	if err != nil || rep.Inserted != 200 || rep.Committed || !rep.DryRun {
		t.Fatalf("dry run = %+v, %v", rep, err)
	}
	if got := tierTables(t, db); got != "" {
		t.Fatalf("a dry run left rows:\n%s", got)
	}

	rep, err = im.Import(ctx, data, tiering.ImportOptions{Source: "big.csv", SkipBadRows: true})
	if err != nil || rep.Inserted != 200 || !rep.Committed || len(rep.BadRows) != 1 {
		t.Fatalf("skip-bad-rows = %+v, %v", rep, err)
	}
	var n int
	db.SQL().QueryRow(`SELECT COUNT(*) FROM tier_snapshots`).Scan(&n)
	if n != 200 {
		t.Fatalf("rows = %d", n)
	}
	var imp struct{ rows, ins int }
	db.SQL().QueryRow(`SELECT row_count, inserted FROM tier_imports`).Scan(&imp.rows, &imp.ins)
	if imp.rows != 201 || imp.ins != 200 {
		t.Fatalf("import record = %+v", imp)
	}
}

func TestTierCacheOverSQLite(t *testing.T) {
	ctx := context.Background()
	db := mustOpenTierDB(t)
	im := tierImporter(t, db)
	cache := tiering.NewCache(db, im.Schemes)
	cache.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := cache.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	im.Cache = cache

	var b strings.Builder
	b.WriteString("customer_id,month,points,risk_flags\n")
	for m := time.January; m <= time.December; m++ {
		p := "600"
		if m == time.March {
			p = "2000" // one month above the 五星 line
		}
		fmt.Fprintf(&b, "C1,2024-%02d,%s,\n", m, p)
	}
	b.WriteString("C9,2024-03,50,fraud:F12\n")
	if _, err := im.Import(ctx, []byte(b.String()), tiering.ImportOptions{Source: "2024.csv"}); err != nil {
		t.Fatal(err)
	}
	bj := time.FixedZone("CST", 8*3600)
	tests := []struct {
		id    string
		at    time.Time
		level string
		risk  bool
	}{
		{"C1", time.Date(2024, 3, 30, 12, 0, 0, 0, bj), "star4", false},
		{"C1", time.Date(2024, 3, 31, 9, 0, 0, 0, bj), "star5", false},
		{"C1", time.Date(2024, 6, 30, 9, 0, 0, 0, bj), "star5", false},
		{"C1", time.Date(2024, 12, 30, 9, 0, 0, 0, bj), "star5", false},
		{"C1", time.Date(2024, 12, 31, 9, 0, 0, 0, bj), "star4", false},
		{"C9", time.Date(2024, 3, 31, 9, 0, 0, 0, bj), "star3", true},
	}
	for _, tt := range tests {
		st, ok := cache.Tier(tt.id, tt.at)
		if !ok || st.Level != tt.level || st.HasRisk() != tt.risk {
			t.Errorf("%s at %s: %+v, %v; want %s risk %v", tt.id, tt.at.Format(time.DateOnly), st, ok, tt.level, tt.risk)
		}
	}
	// The store streams customers one by one, each with its months in order.
	var ids []string
	err := db.EachTierCustomer(ctx, func(id string, snaps []tiering.Snapshot) error {
		ids = append(ids, fmt.Sprintf("%s:%d", id, len(snaps)))
		for i := 1; i < len(snaps); i++ {
			if snaps[i].Month <= snaps[i-1].Month || snaps[i].CustomerID != id {
				t.Errorf("%s: snapshots out of order", id)
			}
		}
		return nil
	})
	if err != nil || strings.Join(ids, ",") != "C1:12,C9:1" {
		t.Fatalf("each = %v, %v", ids, err)
	}
	stop := fmt.Errorf("stop")
	if err := db.EachTierCustomer(ctx, func(string, []tiering.Snapshot) error { return stop }); err != stop {
		t.Fatalf("fn error not returned: %v", err)
	}
}
