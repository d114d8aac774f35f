package sqlite_test

import (
	"context"
	"testing"
	"time"

	"concierge"
	"concierge/enroll"
	"concierge/internal/testenv/testdb"
)

// A network-scope enrollment and its withdrawal queue themselves for the
// network in the transaction that made them; a branch-scope one never
// does, and neither does what came from the network.
func TestNetworkOutbox(t *testing.T) {
	ctx := context.Background()
	db := testdb.Open(t)
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	save := func(id, scope string) {
		t.Helper()
		if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: id, DisplayName: "N " + id, Created: at},
			enroll.Consent{Reference: "F-" + id, TextVersion: "v", Channel: "kiosk", GrantedAt: at, Scope: scope},
			[]enroll.Template{{Embedding: emb(0.4), Model: "m", Created: at}}); err != nil {
			t.Fatal(err)
		}
	}
	save("C-branch", enroll.ScopeBranch)
	save("C-net", enroll.ScopeNetwork)
	changes, err := db.NetworkChanges(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].CustomerID != "C-net" || changes[0].Kind != enroll.ChangeEnroll {
		t.Fatalf("changes %+v, want C-net's enrollment only", changes)
	}
	cs, _ := db.Consents(ctx, "C-net")
	if len(cs) != 1 || cs[0].Scope != enroll.ScopeNetwork {
		t.Fatalf("consents %+v", cs)
	}
	e, err := db.NetworkEnrollment(ctx, "C-net")
	if err != nil || len(e.Templates) != 1 || e.Templates[0].Embedding != emb(0.4) || e.Consent.Reference != "F-C-net" {
		t.Fatalf("network enrollment %+v: %v", e, err)
	}
	if _, err := db.NetworkEnrollment(ctx, "C-branch"); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("a branch-scope customer for the network: %v", err)
	}
	if err := db.FinishNetworkChange(ctx, changes[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Forget(ctx, "C-branch", at); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Forget(ctx, "C-net", at); err != nil {
		t.Fatal(err)
	}
	changes, _ = db.NetworkChanges(ctx, 10)
	if len(changes) != 1 || changes[0].CustomerID != "C-net" || changes[0].Kind != enroll.ChangeWithdraw {
		t.Fatalf("changes %+v, want C-net's withdrawal only", changes)
	}

	// From the network: stored, replaced by the next word, and erased by a
	// withdrawal without echoing back.
	db.FinishNetworkChange(ctx, changes[0].ID)
	ne := enroll.NetworkEnrollment{Customer: enroll.Customer{ID: "C-far", DisplayName: "Far", Created: at},
		Consent:   enroll.Consent{Reference: "F-far", TextVersion: "v", Channel: "kiosk", GrantedAt: at},
		Templates: []enroll.Template{{Embedding: emb(0.1), Model: "m", Created: at}, {Embedding: emb(0.2), Model: "m", Created: at}}}
	for range 2 {
		if err := db.ApplyNetworkEnrollment(ctx, "b002", ne); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE customer_id = 'C-far'`); n != 2 {
		t.Fatalf("%d templates after applying twice, want 2", n)
	}
	ne.Templates = ne.Templates[:1]
	if err := db.ApplyNetworkEnrollment(ctx, "b003", ne); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE customer_id = 'C-far'`); n != 1 {
		t.Fatalf("%d templates after a newer enrollment, want 1", n)
	}
	ts, _ := db.Templates(ctx, "m")
	if len(ts) != 1 || ts[0].CustomerID != "C-far" {
		t.Fatalf("gallery templates %+v", ts)
	}
	if err := db.ApplyNetworkWithdrawal(ctx, "C-far", at); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplyNetworkWithdrawal(ctx, "C-nobody", at); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE customer_id = 'C-far'`); n != 0 {
		t.Fatal("templates left after a network withdrawal")
	}
	if n := count(t, db, `SELECT COUNT(*) FROM erasures WHERE customer_id = 'C-far'`); n != 1 {
		t.Fatalf("%d erasures queued, want 1 for the alert stream", n)
	}
	if changes, _ := db.NetworkChanges(ctx, 10); len(changes) != 0 {
		t.Fatalf("a network withdrawal echoed back: %+v", changes)
	}
	// Enrolled again elsewhere: the record of the withdrawal here stays.
	if err := db.ApplyNetworkEnrollment(ctx, "b002", ne); err != nil {
		t.Fatal(err)
	}
	cs, _ = db.Consents(ctx, "C-far")
	if len(cs) != 2 || cs[0].Active() == cs[1].Active() {
		t.Fatalf("consents after re-enrollment elsewhere: %+v", cs)
	}
	if err := db.ApplyNetworkEnrollment(ctx, "", ne); concierge.ErrorCode(err) != concierge.EINVALID {
		t.Fatalf("no origin: %v", err)
	}

	// A box that never joined a hub drops the withdrawals of customers who
	// never left it; an erased customer's enrollment is never sent.
	save("C-alone", enroll.ScopeNetwork)
	save("C-alone2", enroll.ScopeNetwork)
	if _, err := db.Forget(ctx, "C-alone", at); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM network_outbox WHERE customer_id = 'C-alone' AND kind = 'enroll'`); n != 0 {
		t.Fatal("an erased customer's enrollment is still queued for the network")
	}
	if n, err := db.DropUnsharedWithdrawals(ctx); err != nil || n != 1 {
		t.Fatalf("dropped %d withdrawals: %v", n, err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM network_outbox WHERE customer_id = 'C-alone'`); n != 0 {
		t.Fatal("the withdrawn customer's id stays queued")
	}
	if n := count(t, db, `SELECT COUNT(*) FROM network_outbox WHERE customer_id = 'C-alone2'`); n != 1 {
		t.Fatal("an active network enrollment was dropped")
	}

	if p, _ := db.NetworkPosition(ctx); p != 0 {
		t.Fatalf("position %d before any", p)
	}
	db.SetNetworkPosition(ctx, 42)
	if p, _ := db.NetworkPosition(ctx); p != 42 {
		t.Fatalf("position %d, want 42", p)
	}
	db.Forget(ctx, "C-alone2", at)
	if n, _ := db.DropUnsharedWithdrawals(ctx); n != 0 {
		t.Fatal("a box that read the hub's stream dropped a withdrawal the network needs")
	}
}
