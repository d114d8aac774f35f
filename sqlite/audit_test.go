package sqlite_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"concierge/internal/testenv/testdb"
	"concierge/sqlite"
)

func TestAuditAppendAndFilter(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return t0.Add(time.Hour) }
	for _, e := range []sqlite.AuditEntry{
		{At: t0, Actor: "k1", Action: "start", Session: "s1", CustomerID: "C1", Outcome: "ok"},
		{At: t0.Add(time.Minute), Actor: "k1", Action: "photo", Session: "s1", CustomerID: "C1", Outcome: "refused", Detail: "several_faces"},
		{Actor: "k2", Action: "withdraw", CustomerID: "C2", Outcome: "ok"}, // At from db.Now
		{At: t0, Actor: "-", Action: "auth", Outcome: "refused", Detail: strings.Repeat("王", 400)},
	} {
		if err := db.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.Audit(ctx, sqlite.AuditFilter{})
	if err != nil || len(all) != 4 {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	if !all[2].At.Equal(t0.Add(time.Hour)) {
		t.Errorf("zero At: got %v, want db.Now", all[2].At)
	}
	if d := all[3].Detail; len(d) > 510 || !utf8.ValidString(d) {
		t.Errorf("long detail kept as %d bytes, valid UTF-8 %v", len(d), utf8.ValidString(d))
	}
	c1, _ := db.Audit(ctx, sqlite.AuditFilter{CustomerID: "C1"})
	if len(c1) != 2 || c1[0].Action != "start" || c1[1].Detail != "several_faces" {
		t.Fatalf("C1: %+v", c1)
	}
	late, _ := db.Audit(ctx, sqlite.AuditFilter{Since: t0.Add(30 * time.Minute)})
	if len(late) != 1 || late[0].Actor != "k2" {
		t.Fatalf("since: %+v", late)
	}
	one, _ := db.Audit(ctx, sqlite.AuditFilter{Actor: "k1", Action: "photo", Limit: 5})
	if len(one) != 1 || one[0].Outcome != "refused" {
		t.Fatalf("actor+action: %+v", one)
	}
	// The table refuses rows that say nothing.
	if err := db.AppendAudit(ctx, sqlite.AuditEntry{Actor: "k1", Action: "start"}); err == nil {
		t.Fatal("entry without outcome accepted")
	}
}
