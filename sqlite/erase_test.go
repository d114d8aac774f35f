package sqlite_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/internal/testenv/testdb"
	"concierge/sqlite"
)

// seedCustomer enrolls a customer and gives them everything the database
// can hold of a person: visits, outbox messages with a face thumbnail
// (one sent, one pending), a "not this person" mark, an audit trail and a
// hand-set tier. It returns the alert ids.
func seedCustomer(t *testing.T, db *sqlite.DB, id, name string, thumb []byte, at time.Time) []string {
	t.Helper()
	ctx := context.Background()
	if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: id, DisplayName: name, Created: at},
		enroll.Consent{Reference: "F-" + id, TextVersion: "2026-03-v1", Channel: "kiosk", GrantedAt: at},
		[]enroll.Template{{Embedding: emb(0.4), Model: "m", Created: at}, {Embedding: emb(0.5), Model: "m", Created: at}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetTierAssignment(ctx, sqlite.TierAssignment{CustomerID: id, Scheme: "icbc-stars", Level: "5", AssignedAt: at}); err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for i := 0; i < 3; i++ {
		a := checkin.Arrival{ID: fmt.Sprintf("01%s%d", strings.ToUpper(strings.ReplaceAll(id, "-", "")), i), Branch: "b001", Camera: "door-1",
			CustomerID: id, DisplayName: name, At: at.Add(time.Duration(i) * time.Hour), Distance: 0.3, Margin: 0.1, Votes: 2}
		if err := db.RecordVisit(ctx, a); err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(alert.Message{Schema: "concierge.arrival.v1", ID: a.ID, Branch: "b001", Camera: "door-1",
			Time: a.At, Customer: alert.Customer{ID: id, DisplayName: name}, Thumbnail: thumb})
		if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{
			{MsgID: a.ID + "/arrival", Subject: "concierge.b001.arrival", Data: payload, Created: a.At},
			{MsgID: a.ID + "/visit", Subject: "concierge.b001.visit", Data: []byte(`{"id":"` + a.ID + `"}`), Created: a.At},
		}); err != nil {
			t.Fatal(err)
		}
		alerts = append(alerts, a.ID)
	}
	// An event about an alert whose visit is already purged still names
	// them in the outbox.
	orphanID := "01ORPHAN" + strings.ReplaceAll(id, "-", "")
	orphan, _ := json.Marshal(alert.Escalation{Schema: alert.EscalationSchema, AlertID: orphanID, Branch: "b001", CustomerID: id})
	if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{{MsgID: orphanID + "/arrival.manager", Subject: "concierge.b001.arrival.manager",
		Data: orphan, Created: at}}); err != nil {
		t.Fatal(err)
	}
	alerts = append(alerts, orphanID)
	pending, _ := db.PendingOutbox(ctx, 1)
	if err := db.MarkOutboxSent(ctx, pending[0].Seq); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.RecordFalseMatch(ctx, alerts[0], "zhang", "a colleague", at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"start", "finish"} {
		if err := db.AppendAudit(ctx, sqlite.AuditEntry{At: at, Actor: "kiosk-1", Action: action, Session: "s1",
			CustomerID: id, Outcome: "ok", Detail: "customer " + id + ", 3 photos"}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(alerts)
	return alerts
}

// cellsHolding lists "table.column" for every cell of every table that
// holds needle, whatever the schema: tables added later are covered too.
func cellsHolding(t *testing.T, db *sqlite.DB, needle string) []string {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var out []string
	for _, table := range tables {
		rows, err := db.SQL().Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				var s string
				switch v := v.(type) {
				case string:
					s = v
				case []byte:
					s = string(v)
				}
				if strings.Contains(s, needle) && !slices.Contains(out, table+"."+cols[i]) {
					out = append(out, table+"."+cols[i])
				}
			}
		}
		rows.Close()
	}
	slices.Sort(out)
	return out
}

func fileBytes(t *testing.T, db *sqlite.DB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(db.Path() + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		out["db"+suffix] = b
	}
	return out
}

func TestForgetErasesEverythingButTheConsentRecord(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	const (
		id   = "C-ERASE-7731"
		name = "Quillon Vexmarrow 萧霁川"
	)
	thumb := bytes.Repeat([]byte("\xff\xd8JPEG-FACE-OF-QV"), 40)
	alerts := seedCustomer(t, db, id, name, thumb, at)
	keepAlerts := seedCustomer(t, db, "C-KEEP", "Keeper Person", []byte("other-face"), at)

	// Before: the name is in the files (the check below can fail).
	found := false
	for _, b := range fileBytes(t, db) {
		found = found || bytes.Contains(b, []byte("Quillon Vexmarrow"))
	}
	if !found {
		t.Fatal("the name is in no file before forget: the test proves nothing")
	}

	withdrawn := at.Add(48 * time.Hour)
	n, err := db.Forget(ctx, id, withdrawn)
	if err != nil || n != 2 {
		t.Fatalf("forget = %d, %v", n, err)
	}

	// No byte of the name or the face is left in the database, WAL or
	// shared memory.
	for file, b := range fileBytes(t, db) {
		for _, s := range []string{"Quillon", "Vexmarrow", "萧霁川", "JPEG-FACE-OF-QV", base64.StdEncoding.EncodeToString(thumb)[:40]} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s still holds %q", file, s)
			}
		}
	}
	// The customer id is left only in the consent record (and its anchor)
	// and in the queued erasure.
	want := []string{"consents.customer_id", "consents.reference", "customers.id", "erasures.customer_id"}
	if got := cellsHolding(t, db, id); !slices.Equal(got, want) {
		t.Fatalf("the customer id is in %v, want only %v", got, want)
	}
	for _, alertID := range alerts {
		if got := cellsHolding(t, db, alertID); !slices.Equal(got, []string{"erasures.alert_ids"}) {
			t.Fatalf("alert %s is in %v", alertID, got)
		}
	}

	// What is kept proves the withdrawal.
	cs, err := db.Consents(ctx, id)
	if err != nil || len(cs) != 1 || cs[0].Reference != "F-"+id || cs[0].TextVersion != "2026-03-v1" || cs[0].Channel != "kiosk" ||
		!cs[0].GrantedAt.Equal(at) || cs[0].WithdrawnAt == nil || !cs[0].WithdrawnAt.Equal(withdrawn) ||
		cs[0].WithdrawnReason != enroll.WithdrawnByCustomer {
		t.Fatalf("consent record = %+v, %v", cs, err)
	}
	if c, err := db.Customer(ctx, id); err != nil || c.DisplayName != "" {
		t.Fatalf("customer = %+v, %v", c, err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM audit WHERE actor = 'kiosk-1' AND customer_id = ''`); n != 2 {
		t.Fatalf("%d anonymous audit rows, want the 2 of the erased customer", n)
	}

	// The erasure is queued for the NATS side with every alert found.
	es, err := db.PendingErasures(ctx)
	if err != nil || len(es) != 1 {
		t.Fatalf("pending erasures = %+v, %v", es, err)
	}
	if e := es[0]; e.CustomerID != id || !slices.Equal(e.AlertIDs, alerts) || e.Requested.IsZero() {
		t.Fatalf("erasure = %+v, want alerts %v", e, alerts)
	}

	// The other customer keeps everything.
	if got := cellsHolding(t, db, "Keeper Person"); !slices.Contains(got, "customers.display_name") {
		t.Fatalf("the other customer's name is in %v", got)
	}
	if v, _ := db.Visits(ctx, "C-KEEP", time.Time{}); len(v) != 3 {
		t.Fatalf("the other customer has %d visits, want 3", len(v))
	}
	if n := count(t, db, `SELECT COUNT(*) FROM alert_outbox WHERE msg_id LIKE ?`, keepAlerts[0]+"/%"); n != 2 {
		t.Fatalf("the other customer has %d outbox rows of %s, want 2", n, keepAlerts[0])
	}
	if ts, _ := db.Templates(ctx, "m"); len(ts) != 2 || ts[0].CustomerID != "C-KEEP" {
		t.Fatalf("templates left: %+v", ts)
	}

	// An arrival decided just before the gallery dropped them lands after
	// the erasure: finishing sweeps it up and keeps the erasure pending.
	late := checkin.Arrival{ID: "01LATE", Branch: "b001", Camera: "door-1", CustomerID: id, At: withdrawn.Add(time.Second)}
	if err := db.RecordVisit(ctx, late); err != nil {
		t.Fatal(err)
	}
	latePayload, _ := json.Marshal(alert.Message{ID: late.ID, Customer: alert.Customer{ID: id, DisplayName: name}, Thumbnail: thumb})
	if err := db.EnqueueOutbox(ctx, []alert.OutboxMessage{{MsgID: late.ID + "/arrival", Subject: "concierge.b001.arrival", Data: latePayload}}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishErasure(ctx, es[0].ID); concierge.ErrorCode(err) != concierge.ECONFLICT {
		t.Fatalf("finish with a late alert: %v", err)
	}
	es, _ = db.PendingErasures(ctx)
	if len(es) != 1 || !slices.Contains(es[0].AlertIDs, late.ID) || len(es[0].AlertIDs) != len(alerts)+1 {
		t.Fatalf("erasure after the late alert = %+v", es)
	}
	if got := cellsHolding(t, db, late.ID); !slices.Equal(got, []string{"erasures.alert_ids"}) {
		t.Fatalf("the late alert is in %v", got)
	}

	// Once the NATS side is done, the consent record alone names them.
	if err := db.FinishErasure(ctx, es[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := cellsHolding(t, db, id); !slices.Equal(got, []string{"consents.customer_id", "consents.reference", "customers.id"}) {
		t.Fatalf("after the erasure the customer id is in %v", got)
	}
	if es, _ := db.PendingErasures(ctx); len(es) != 0 {
		t.Fatalf("pending after finish: %+v", es)
	}
	if err := db.FinishErasure(ctx, es[0].ID); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("finish twice: %v", err)
	}
	for file, b := range fileBytes(t, db) {
		if bytes.Contains(b, []byte("Vexmarrow")) {
			t.Errorf("%s holds the name after the erasure finished", file)
		}
	}

	// A customer who enrolls again before the erasure is finished keeps
	// what is recorded of them since.
	if _, err := db.Forget(ctx, "C-KEEP", withdrawn); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: "C-KEEP", DisplayName: "K. P.", Created: at},
		enroll.Consent{Reference: "F-2", TextVersion: "v1", Channel: "cli", GrantedAt: withdrawn.Add(time.Hour)},
		[]enroll.Template{{Embedding: emb(0.4), Model: "m", Created: withdrawn.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordVisit(ctx, checkin.Arrival{ID: "01AGAIN", Branch: "b001", Camera: "door-1", CustomerID: "C-KEEP",
		At: withdrawn.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	es, _ = db.PendingErasures(ctx)
	if len(es) != 1 || es[0].CustomerID != "C-KEEP" {
		t.Fatalf("pending = %+v", es)
	}
	if err := db.FinishErasure(ctx, es[0].ID); err != nil {
		t.Fatal(err)
	}
	if v, _ := db.Visits(ctx, "C-KEEP", time.Time{}); len(v) != 1 || v[0].ID != "01AGAIN" {
		t.Fatalf("the re-enrolled customer's visits: %+v", v)
	}
	if _, err := os.Stat(db.Path() + "-wal"); err == nil {
		if st, _ := os.Stat(db.Path() + "-wal"); st.Size() != 0 {
			t.Fatalf("the WAL holds %d bytes after the checkpoint", st.Size())
		}
	}
}
