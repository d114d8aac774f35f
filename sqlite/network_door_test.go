package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/internal/testenv/testdb"
	"concierge/sqlite"
)

// kinds lists the queued network changes as kind:customer, oldest first,
// and finishes them.
func drain(t *testing.T, db *sqlite.DB) []string {
	t.Helper()
	cs, err := db.NetworkChanges(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.Kind+":"+c.CustomerID)
		if err := db.FinishNetworkChange(context.Background(), c.ID); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func distinct(ss []string) []string {
	var out []string
	for _, s := range ss {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// The box's own door templates of a customer holding a network-scope
// consent queue a door change whenever they change (learned, marked,
// dropped, erased); a branch-scope customer's never do, nor do door
// templates received from the network. Received sets replace the
// sending branch's, are trimmed to the box's cap and survive a
// re-enrollment elsewhere; a network consent given here that ends for
// another reason than the customer's withdrawal here queues a retraction.
func TestNetworkDoorOutbox(t *testing.T) {
	ctx := context.Background()
	db := testdb.Open(t)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	save := func(id, scope string) {
		t.Helper()
		if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: id, DisplayName: "N " + id, Created: at},
			enroll.Consent{Reference: "F-" + id, TextVersion: "v", Channel: "kiosk", GrantedAt: at, Scope: scope},
			[]enroll.Template{{Embedding: emb(0.4), Model: "m", Created: at}}); err != nil {
			t.Fatal(err)
		}
	}
	visit := func(id, customer string) {
		t.Helper()
		if err := db.RecordVisit(ctx, checkin.Arrival{ID: id, Branch: "b001", Camera: "door-1", CustomerID: customer,
			At: at.Add(time.Hour), Distance: 0.5, Margin: 0.1, Votes: 1}); err != nil {
			t.Fatal(err)
		}
	}
	door := func(v float32) enroll.Template {
		return enroll.Template{Embedding: emb(v), Model: "m", Created: at.Add(time.Hour)}
	}
	save("C-net", enroll.ScopeNetwork)
	save("C-branch", enroll.ScopeBranch)
	drain(t, db)
	visit("V1", "C-net")
	visit("V2", "C-branch")
	if _, err := db.SaveDoorTemplates(ctx, enroll.DoorConsents{"v"}, "C-net", "V1", []enroll.Template{door(0.2), door(0.3)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SaveDoorTemplates(ctx, enroll.DoorConsents{"v"}, "C-branch", "V2", []enroll.Template{door(0.5)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := distinct(drain(t, db)); len(got) != 1 || got[0] != "door:C-net" {
		t.Fatalf("changes %v, want C-net's door set only", got)
	}
	s, err := db.NetworkDoorSet(ctx, "C-net")
	if err != nil || len(s.Templates) != 2 || s.Templates[0].Embedding != emb(0.2) || s.Templates[1].VisitID != "V1" {
		t.Fatalf("door set %+v, %v", s, err)
	}
	if s, _ := db.NetworkDoorSet(ctx, "C-branch"); len(s.Templates) != 0 {
		t.Fatalf("a branch-scope customer's door set has %d templates", len(s.Templates))
	}

	// From the network: stored under the customer's network consent with
	// their origin, queueing nothing, replaced by the branch's next set,
	// trimmed to keep, skipped for a customer without a network consent.
	set := func(origin, customer string, vs ...float32) enroll.NetworkDoorSet {
		s := enroll.NetworkDoorSet{Origin: origin, CustomerID: customer, At: at}
		for i, v := range vs {
			tm := door(v)
			tm.Created = at.Add(time.Duration(i) * time.Minute)
			s.Templates = append(s.Templates, enroll.NetworkDoorTemplate{Template: tm, VisitID: fmt.Sprintf("%s-V%d", origin, i)})
		}
		return s
	}
	for range 2 {
		skipped, err := db.ApplyNetworkDoorSets(ctx, []enroll.NetworkDoorSet{set("b002", "C-net", 0.6, 0.7, 0.8), set("b002", "C-branch", 0.6)}, 10)
		if err != nil || len(skipped) != 1 || skipped[0] != "C-branch" {
			t.Fatalf("skipped %v, %v; want C-branch", skipped, err)
		}
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE customer_id = 'C-net' AND source = 'door' AND origin = 'b002'`); n != 3 {
		t.Fatalf("%d door templates from b002, want 3", n)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE customer_id = 'C-branch' AND origin <> ''`); n != 0 {
		t.Fatalf("%d door templates from b002 of a branch-scope customer", n)
	}
	if got := drain(t, db); len(got) != 0 {
		t.Fatalf("received door templates queued %v", got)
	}
	ts, _ := db.CustomerTemplates(ctx, "C-net", "m")
	doors := 0
	for _, tm := range ts {
		if tm.Group == enroll.DoorGroup {
			doors++
		}
	}
	if doors != 5 {
		t.Fatalf("C-net scores %d door templates, want 5 (2 own, 3 from b002)", doors)
	}
	// b002's next word replaces its last; b003's set is trimmed so that
	// the customer keeps 6, the box's own first.
	if _, err := db.ApplyNetworkDoorSets(ctx, []enroll.NetworkDoorSet{set("b002", "C-net", 0.9), set("b003", "C-net", 0.1, 0.15, 0.25, 0.35)}, 6); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE customer_id = 'C-net' AND source = 'door'`); n != 6 {
		t.Fatalf("C-net holds %d door templates, want 6", n)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE customer_id = 'C-net' AND source = 'door' AND origin = ''`); n != 2 {
		t.Fatalf("the box's own door templates were trimmed: %d left", n)
	}
	if s, _ := db.NetworkDoorSet(ctx, "C-net"); len(s.Templates) != 2 {
		t.Fatalf("the box's door set carries %d templates, want its own 2", len(s.Templates))
	}

	// A re-enrollment from the network keeps the door templates (under
	// its consent) and makes the box send its own set again.
	ne := enroll.NetworkEnrollment{Customer: enroll.Customer{ID: "C-far", DisplayName: "Far", Created: at},
		Consent:   enroll.Consent{Reference: "F-far", TextVersion: "v", Channel: "kiosk", GrantedAt: at},
		Templates: []enroll.Template{{Embedding: emb(0.1), Model: "m", Created: at}}}
	if err := db.ApplyNetworkEnrollment(ctx, "b002", ne); err != nil {
		t.Fatal(err)
	}
	visit("V3", "C-far")
	if _, err := db.SaveDoorTemplates(ctx, enroll.DoorConsents{"v"}, "C-far", "V3", []enroll.Template{door(0.3)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ApplyNetworkDoorSets(ctx, []enroll.NetworkDoorSet{set("b003", "C-far", 0.7)}, 10); err != nil {
		t.Fatal(err)
	}
	if got := distinct(drain(t, db)); len(got) != 1 || got[0] != "door:C-far" {
		t.Fatalf("changes %v, want C-far's door set (learned under b002's consent)", got)
	}
	ne.Consent.Reference, ne.Templates[0].Embedding = "F-far-2", emb(0.15)
	if err := db.ApplyNetworkEnrollment(ctx, "b004", ne); err != nil {
		t.Fatal(err)
	}
	ts, _ = db.CustomerTemplates(ctx, "C-far", "m")
	groups := map[string]int{}
	for _, tm := range ts {
		groups[tm.Group]++
	}
	if groups[""] != 1 || groups[enroll.DoorGroup] != 2 {
		t.Fatalf("C-far after a re-enrollment elsewhere: %v, want 1 enrollment and 2 door templates", groups)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM consents WHERE customer_id = 'C-far'`); n != 1 {
		t.Fatalf("C-far has %d consent rows, want b004's only", n)
	}
	if got := distinct(drain(t, db)); len(got) != 1 || got[0] != "door:C-far" {
		t.Fatalf("changes %v, want C-far's door set again", got)
	}

	// A mark removes what the visit taught, and the change is queued.
	if _, _, err := db.RecordFalseMatch(ctx, "V1", "Li", "", at.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := distinct(drain(t, db)); len(got) != 1 || got[0] != "door:C-net" {
		t.Fatalf("changes %v after a mark", got)
	}
	if s, _ := db.NetworkDoorSet(ctx, "C-net"); len(s.Templates) != 0 {
		t.Fatalf("door set after the mark: %d templates", len(s.Templates))
	}

	// A withdrawal from the network at a box that learned: its door set
	// empties (queued by the erasure) and, its consent being b004's, no
	// retraction; a network consent given here and ended by the network
	// or retention is retracted; the customer's own withdrawal is a
	// withdrawal. Received door templates go with the erasure.
	if err := db.ApplyNetworkWithdrawal(ctx, "C-far", at.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := distinct(drain(t, db)); len(got) != 1 || got[0] != "door:C-far" {
		t.Fatalf("changes %v after a withdrawal from the network", got)
	}
	if s, _ := db.NetworkDoorSet(ctx, "C-far"); len(s.Templates) != 0 {
		t.Fatalf("door set after erasure: %d templates", len(s.Templates))
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE customer_id = 'C-far'`); n != 0 {
		t.Fatalf("%d templates of C-far after erasure", n)
	}
	if err := db.ApplyNetworkWithdrawal(ctx, "C-far", at.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplyNetworkWithdrawal(ctx, "C-never", at.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, db); len(got) != 0 {
		t.Fatalf("a withdrawal of a customer the box holds nothing of queued %v", got)
	}
	save("C-ret", enroll.ScopeNetwork)
	save("C-own", enroll.ScopeNetwork)
	drain(t, db)
	if err := db.ApplyNetworkWithdrawal(ctx, "C-net", at.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Erase(ctx, "C-ret", at.Add(5*time.Hour), enroll.WithdrawnRetention); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Forget(ctx, "C-own", at.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Forget(ctx, "C-branch", at.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got := distinct(drain(t, db))
	// C-net's own door set was already empty (the mark): nothing to send.
	want := []string{"retract:C-net", "retract:C-ret", "withdraw:C-own"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
}

// A box that never reached a hub keeps one queued door change per
// customer still holding a network consent, and none of withdrawals and
// retractions.
func TestDropUnsharedDoorChanges(t *testing.T) {
	ctx := context.Background()
	db := testdb.Open(t)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, id := range []string{"C1", "C2"} {
		if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: id, DisplayName: "N", Created: at},
			enroll.Consent{Reference: "F-" + id, TextVersion: "v", Channel: "kiosk", GrantedAt: at, Scope: enroll.ScopeNetwork},
			[]enroll.Template{{Embedding: emb(0.4), Model: "m", Created: at}}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			v := fmt.Sprintf("%s-V%d", id, i)
			if err := db.RecordVisit(ctx, checkin.Arrival{ID: v, Branch: "b001", Camera: "door-1", CustomerID: id,
				At: at.Add(time.Hour), Distance: 0.5, Margin: 0.1, Votes: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := db.SaveDoorTemplates(ctx, enroll.DoorConsents{"v"}, id, v, []enroll.Template{{Embedding: emb(0.1 * float32(i+1)), Model: "m", Created: at}}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.Erase(ctx, "C2", at, enroll.WithdrawnRetention); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DropUnsharedWithdrawals(ctx); err != nil {
		t.Fatal(err)
	}
	got := drain(t, db)
	want := []string{"enroll:C1", "door:C1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("left queued %v, want %v", got, want)
	}
}

// A database made before door templates travelled keeps its queued
// changes through the migration, and its queue then takes door changes.
func TestNetworkDoorMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "concierge.db")
	db := testdb.OpenAt(t, path)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: "C1", DisplayName: "N", Created: at},
		enroll.Consent{Reference: "F-C1", TextVersion: "v", Channel: "kiosk", GrantedAt: at, Scope: enroll.ScopeNetwork},
		[]enroll.Template{{Embedding: emb(0.4), Model: "m", Created: at}}); err != nil {
		t.Fatal(err)
	}
	// Back to the schema before the step: the old queue, its triggers, no
	// templates.origin, the step not applied.
	for _, q := range []string{
		`DROP TRIGGER network_enrolled`, `DROP TRIGGER network_ended`, `DROP TRIGGER network_withdrawn`,
		`DROP TRIGGER network_retracted`, `DROP TRIGGER network_door_added`, `DROP TRIGGER network_door_removed`,
		`DROP TRIGGER network_door_consent`,
		`CREATE TABLE old_outbox (id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL,
			kind TEXT NOT NULL CHECK (kind IN ('enroll', 'withdraw')), at TEXT NOT NULL)`,
		`INSERT INTO old_outbox SELECT id, customer_id, kind, at FROM network_outbox`,
		`DROP TABLE network_outbox`,
		`ALTER TABLE old_outbox RENAME TO network_outbox`,
		`CREATE TRIGGER network_enrolled AFTER INSERT ON consents WHEN NEW.scope = 'network' AND NEW.origin = ''
		BEGIN INSERT INTO network_outbox (customer_id, kind, at) VALUES (NEW.customer_id, 'enroll', NEW.granted_at); END`,
		`CREATE TRIGGER network_ended AFTER UPDATE OF withdrawn_at ON consents WHEN OLD.withdrawn_at IS NULL AND NEW.withdrawn_at IS NOT NULL
		BEGIN DELETE FROM network_outbox WHERE customer_id = NEW.customer_id AND kind = 'enroll'; END`,
		`CREATE TRIGGER network_withdrawn AFTER UPDATE OF withdrawn_at ON consents
			WHEN OLD.withdrawn_at IS NULL AND NEW.withdrawn_at IS NOT NULL AND NEW.scope = 'network' AND NEW.withdrawn_reason = 'withdrawn'
		BEGIN INSERT INTO network_outbox (customer_id, kind, at) VALUES (NEW.customer_id, 'withdraw', NEW.withdrawn_at); END`,
		`ALTER TABLE templates DROP COLUMN origin`,
		`DELETE FROM schema_migrations WHERE component = 'network_door'`,
	} {
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	db = testdb.OpenAt(t, path)
	if err := db.RecordVisit(ctx, checkin.Arrival{ID: "V1", Branch: "b001", Camera: "door-1", CustomerID: "C1",
		At: at.Add(time.Hour), Distance: 0.5, Margin: 0.1, Votes: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SaveDoorTemplates(ctx, enroll.DoorConsents{"v"}, "C1", "V1", []enroll.Template{{Embedding: emb(0.2), Model: "m", Created: at}}, nil); err != nil {
		t.Fatal(err)
	}
	got := drain(t, db)
	want := []string{"enroll:C1", "door:C1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("queued %v after the migration, want %v", got, want)
	}
	// Ids are never reused once the queue is empty (the hub deduplicates
	// by them).
	if _, err := db.Forget(ctx, "C1", at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cs, _ := db.NetworkChanges(ctx, 10)
	if len(cs) == 0 || cs[0].ID <= 2 {
		t.Fatalf("changes %+v after an emptied queue: an id was reused", cs)
	}
}
