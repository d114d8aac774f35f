package sqlite_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"concierge"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/internal/testenv/testdb"
)

// Door templates learned from a confirmed visit are stored sealed under
// the consent in force, load in the door group, replace the oldest, are
// refused for a visit marked "not this person" and removed by a later
// mark, never extend retention or count as re-enrollment, stay off the
// network and go with the erasure.
func TestDoorTemplates(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	day := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: "C1", DisplayName: "x", Created: day},
		enroll.Consent{Reference: "F-C1", TextVersion: "v1", Channel: "kiosk", GrantedAt: day, Scope: enroll.ScopeNetwork},
		[]enroll.Template{{Embedding: emb(0.1), Model: "m", Created: day}}); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"01V1", "01V2", "01V3"} {
		if err := db.RecordVisit(ctx, checkin.Arrival{ID: id, Branch: "b001", Camera: "door-1", CustomerID: "C1",
			At: day.Add(time.Duration(24*(i+1)) * time.Hour), Distance: 0.5, Margin: 0.1, Votes: 1}); err != nil {
			t.Fatal(err)
		}
	}
	later := day.Add(100 * 24 * time.Hour)
	v1 := enroll.DoorConsents{"v1"}
	door := func(v float32) enroll.Template {
		return enroll.Template{Embedding: emb(v), Model: "m", Created: later}
	}
	saved, err := db.SaveDoorTemplates(ctx, v1, "C1", "01V1", []enroll.Template{door(0.2), door(0.3)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 2 || saved[0].ID == 0 || saved[0].Source != enroll.SourceDoor || saved[0].ConsentID == 0 {
		t.Fatalf("saved %+v", saved)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE visit_id = '01V1' AND source = 'door'`); n != 2 {
		t.Fatalf("%d door templates of visit 01V1", n)
	}
	ts, err := db.Templates(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]int{}
	for _, tm := range ts {
		groups[tm.Source+"/"+tm.Group]++
		if tm.Source == enroll.SourceDoor && tm.Embedding != emb(0.2) && tm.Embedding != emb(0.3) {
			t.Fatalf("door template %d does not open to what was stored", tm.ID)
		}
	}
	if groups["door/door"] != 2 || groups["enrollment/"] != 1 {
		t.Fatalf("templates by source/group: %v", groups)
	}

	if mine, err := db.CustomerTemplates(ctx, "C1", "m"); err != nil || len(mine) != 3 {
		t.Fatalf("C1's templates: %d, %v; want 3", len(mine), err)
	}
	// The second visit replaces the oldest door template.
	if _, err := db.SaveDoorTemplates(ctx, v1, "C1", "01V2", []enroll.Template{door(0.4)}, []int64{saved[0].ID}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE source = 'door'`); n != 2 {
		t.Fatalf("%d door templates after a replacement, want 2", n)
	}

	// Retention and re-enrollment look at the enrollment only: door
	// templates made 100 days later do not make the customer fresh.
	stale, err := db.StaleCustomers(ctx, day.Add(50*24*time.Hour))
	if err != nil || len(stale) != 1 || stale[0] != "C1" {
		t.Fatalf("stale customers %v, %v: door templates extended retention", stale, err)
	}
	net, err := db.NetworkEnrollment(ctx, "C1")
	if err != nil || len(net.Templates) != 1 || net.Templates[0].Embedding != emb(0.1) {
		t.Fatalf("network enrollment carries %d templates (%v), want the enrollment's only", len(net.Templates), err)
	}

	// "Not this person" on visit 2 removes what it taught; visit 2 can
	// teach nothing afterwards.
	if _, _, err := db.RecordFalseMatch(ctx, "01V2", "Li", "", later.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.VisitTemplates(ctx, "01V2"); n != 0 {
		t.Fatalf("%d door templates of a visit marked not this person", n)
	}
	if n, _ := db.VisitTemplates(ctx, "01V1"); n != 1 {
		t.Fatalf("%d door templates left of visit 1, want 1", n)
	}
	if _, err := db.SaveDoorTemplates(ctx, v1, "C1", "01V2", []enroll.Template{door(0.5)}, nil); concierge.ErrorCode(err) != concierge.ECONFLICT {
		t.Fatalf("door templates of a rejected visit: %v, want ECONFLICT", err)
	}
	marks, err := db.FalseMatches(ctx)
	if err != nil || len(marks) != 1 || marks[0].Reenrolled {
		t.Fatalf("marks %+v, %v: a door template is no re-enrollment", marks, err)
	}

	// Learning turned off drops what was learned, and nothing else.
	if n, err := db.DropDoorTemplates(ctx); err != nil || n != 1 {
		t.Fatalf("dropped %d door templates, %v; want 1", n, err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates`); n != 1 {
		t.Fatalf("%d templates left, want the enrollment's 1", n)
	}
	// Erasure takes them all; a customer without consent learns nothing.
	if _, err := db.Erase(ctx, "C1", later.Add(2*time.Hour), "withdrawn"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates`); n != 0 {
		t.Fatalf("%d templates after erasure", n)
	}
	if _, err := db.SaveDoorTemplates(ctx, v1, "C1", "01V3", []enroll.Template{door(0.6)}, nil); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("door templates after erasure: %v, want ENOTFOUND", err)
	}
}

// Door templates are stored only under a consent whose text covers them,
// checked in the storing transaction: a customer who signed the kiosk's
// 2026-12-v2 text (which says only the kiosk's photos are kept) learns
// nothing, and the refusal drops nothing either, until they sign a text
// that covers learning (a re-enrollment records it); then the templates
// go under the new consent.
func TestDoorTemplatesNeedCoveringConsent(t *testing.T) {
	db := testdb.Open(t)
	ctx := context.Background()
	day := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	enrollUnder := func(version string, at time.Time) {
		t.Helper()
		if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: "C2", DisplayName: "x", Created: day},
			enroll.Consent{Reference: "kiosk " + version, TextVersion: version, Channel: "kiosk", GrantedAt: at, Scope: enroll.ScopeBranch},
			[]enroll.Template{{Embedding: emb(0.1), Model: "m", Created: at}}); err != nil {
			t.Fatal(err)
		}
	}
	enrollUnder("2026-12-v2@sha256:0123456789abcdef", day)
	covers := enroll.DoorConsents{"2026-12-v3", "bank-2027-01"}
	door := func(v float32, at time.Time) enroll.Template {
		return enroll.Template{Embedding: emb(v), Model: "m", Created: at}
	}
	// A door template a bank stored while it (wrongly) listed v2: the
	// refusal below must not drop it either.
	old, err := db.SaveDoorTemplates(ctx, enroll.DoorConsents{"2026-12-v2"}, "C2", "01V0", []enroll.Template{door(0.15, day)}, nil)
	if err != nil || len(old) != 1 {
		t.Fatalf("door template under a listed v2: %+v, %v", old, err)
	}

	at := day.Add(24 * time.Hour)
	_, err = db.SaveDoorTemplates(ctx, covers, "C2", "01V1", []enroll.Template{door(0.2, at)}, []int64{old[0].ID})
	if !errors.Is(err, enroll.ErrConsentNotCovered) || concierge.ErrorCode(err) != concierge.ECONFLICT {
		t.Fatalf("door templates under the v2 text: %v, want ECONFLICT wrapping ErrConsentNotCovered", err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM templates WHERE source = 'door'`); n != 1 {
		t.Fatalf("%d door templates after a refusal, want the 1 stored before", n)
	}
	if n, _ := db.VisitTemplates(ctx, "01V1"); n != 0 {
		t.Fatalf("%d door templates of a visit under an uncovering consent", n)
	}
	// The version alone is not enough when the list pins the text's hash.
	if _, err := db.SaveDoorTemplates(ctx, enroll.DoorConsents{"2026-12-v2@sha256:ffffffffffffffff"}, "C2", "01V1",
		[]enroll.Template{door(0.2, at)}, nil); !errors.Is(err, enroll.ErrConsentNotCovered) {
		t.Fatalf("door templates under another hash of v2: %v, want ErrConsentNotCovered", err)
	}

	// The customer signs the v3 text at the kiosk: learning starts, under
	// the new consent.
	enrollUnder("2026-12-v3@sha256:fedcba9876543210", at.Add(time.Hour))
	var v3 int64
	if err := db.SQL().QueryRowContext(ctx, `SELECT id FROM consents WHERE text_version LIKE '2026-12-v3@%'`).Scan(&v3); err != nil {
		t.Fatal(err)
	}
	saved, err := db.SaveDoorTemplates(ctx, covers, "C2", "01V2", []enroll.Template{door(0.3, at.Add(2*time.Hour))}, nil)
	if err != nil || len(saved) != 1 || saved[0].ConsentID != v3 {
		t.Fatalf("door templates under the v3 consent: %+v, %v; want 1 under consent %d", saved, err, v3)
	}
	if n, _ := db.VisitTemplates(ctx, "01V2"); n != 1 {
		t.Fatalf("%d door templates of the visit after re-consent, want 1", n)
	}
}
