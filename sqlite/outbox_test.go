package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"concierge/alert"
	"concierge/internal/testenv/testdb"
	"concierge/sqlite"
)

func outboxMsg(id string) alert.OutboxMessage {
	return alert.OutboxMessage{MsgID: id, Subject: "concierge.b001.arrival", Data: []byte(`{"id":"` + id + `"}`)}
}

func pendingIDs(tb testing.TB, db *sqlite.DB, limit int) ([]string, []int64) {
	tb.Helper()
	msgs, err := db.PendingOutbox(context.Background(), limit)
	if err != nil {
		tb.Fatal(err)
	}
	var ids []string
	var seqs []int64
	for _, m := range msgs {
		ids = append(ids, m.MsgID)
		seqs = append(seqs, m.Seq)
		if string(m.Data) != `{"id":"`+m.MsgID+`"}` || m.Subject != "concierge.b001.arrival" || m.Created.IsZero() {
			tb.Errorf("message %+v", m)
		}
	}
	return ids, seqs
}

func TestOutboxOrderAndSent(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{outboxMsg("a/arrival"), outboxMsg("a/visit")}); err != nil {
		t.Fatal(err)
	}
	if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{outboxMsg("b/arrival"), outboxMsg("b/visit")}); err != nil {
		t.Fatal(err)
	}
	// A second Notify of the same arrival queues nothing new.
	if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{outboxMsg("a/arrival"), outboxMsg("a/visit")}); err != nil {
		t.Fatal(err)
	}
	ids, seqs := pendingIDs(t, db, 100)
	if fmt.Sprint(ids) != "[a/arrival a/visit b/arrival b/visit]" {
		t.Fatalf("pending %v", ids)
	}
	if ids, _ := pendingIDs(t, db, 3); len(ids) != 3 {
		t.Fatalf("limit 3 gave %d", len(ids))
	}
	if err := db.MarkOutboxSent(ctx, seqs[0], seqs[1]); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkOutboxSent(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, _ := pendingIDs(t, db, 100); fmt.Sprint(ids) != "[b/arrival b/visit]" {
		t.Fatalf("pending after marking a: %v", ids)
	}
	// Sent ids stay known, so a late duplicate is not queued again.
	if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{outboxMsg("a/arrival")}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := pendingIDs(t, db, 100); len(ids) != 2 {
		t.Fatalf("sent message queued again: %v", ids)
	}
}

// One Notify's messages are stored together or not at all: a manager
// message must never be queued without the visit that goes with it.
func TestOutboxEnqueueIsAtomic(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	bad := outboxMsg("")
	if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{outboxMsg("a/arrival"), bad}); err == nil {
		t.Fatal("empty msg id accepted")
	}
	if ids, _ := pendingIDs(t, db, 100); len(ids) != 0 {
		t.Fatalf("half a batch stored: %v", ids)
	}
}

func TestOutboxPurge(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	now := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{outboxMsg("old"), outboxMsg("new"), outboxMsg("unsent")}); err != nil {
		t.Fatal(err)
	}
	_, seqs := pendingIDs(t, db, 100)
	if err := db.MarkOutboxSent(ctx, seqs[0]); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if err := db.MarkOutboxSent(ctx, seqs[1]); err != nil {
		t.Fatal(err)
	}
	// Marking again keeps the first time, so the purge below still takes "old".
	if err := db.MarkOutboxSent(ctx, seqs[0]); err != nil {
		t.Fatal(err)
	}
	n, err := db.PurgeOutbox(ctx, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("purged %d, want 1 (the old sent message)", n)
	}
	// Unsent messages are never purged, however old.
	if n, err := db.PurgeOutbox(ctx, now.Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("second purge: %d, %v; want only the other sent message", n, err)
	}
	if ids, _ := pendingIDs(t, db, 100); fmt.Sprint(ids) != "[unsent]" {
		t.Fatalf("pending %v", ids)
	}
	// Sequence numbers are never reused after a purge: order holds.
	if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{outboxMsg("later")}); err != nil {
		t.Fatal(err)
	}
	if _, s := pendingIDs(t, db, 100); s[1] <= seqs[2] {
		t.Fatalf("seq %d reused after purge (last %d)", s[1], seqs[2])
	}
}

func TestOutboxSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{outboxMsg("x/arrival"), outboxMsg("x/visit")}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ids, _ := pendingIDs(t, db, 100); fmt.Sprint(ids) != "[x/arrival x/visit]" {
		t.Fatalf("after reopen: %v", ids)
	}
}
