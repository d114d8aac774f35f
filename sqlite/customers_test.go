package sqlite_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concierge"
	"concierge/enroll"
	"concierge/sqlite"
)

func TestCustomerRecord(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	seedCustomer(t, db, "C1001", "王小明", nil, at)
	// A face learnt at the door later, under a second consent.
	door := at.Add(48 * time.Hour)
	if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: "C1001", DisplayName: "王小明", Created: at},
		enroll.Consent{Reference: "F-C1001-2", TextVersion: "2026-03-v1", Channel: "counter", GrantedAt: door, Scope: enroll.ScopeNetwork},
		[]enroll.Template{{Embedding: emb(0.6), Model: "m", Created: door, Source: enroll.SourceDoor}}); err != nil {
		t.Fatal(err)
	}
	seedCustomer(t, db, "C1002", "李四", nil, at)

	ids, err := db.CustomerIDs(ctx)
	if err != nil || strings.Join(ids, ",") != "C1001,C1002" {
		t.Fatalf("ids %v, %v", ids, err)
	}
	r, err := db.CustomerRecord(ctx, "C1001")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "王小明" || !r.Active() || len(r.Consents) != 2 || r.Consents[0].Reference != "F-C1001-2" || r.Consents[0].Scope != enroll.ScopeNetwork {
		t.Fatalf("record: %+v", r)
	}
	if len(r.Templates) != 2 || r.Templates[0].Source != enroll.SourceDoor || r.Templates[0].Count != 1 ||
		r.Templates[1].Source != enroll.SourceEnrollment || r.Templates[1].Count != 2 || r.TemplateCount() != 3 {
		t.Fatalf("templates: %+v", r.Templates)
	}
	if r.Visits.Count != 3 || !r.Visits.First.Equal(at) || !r.Visits.Last.Equal(at.Add(2*time.Hour)) ||
		r.LastSeen == nil || !r.LastSeen.Equal(at.Add(2*time.Hour)) {
		t.Fatalf("visits: %+v, last seen %v", r.Visits, r.LastSeen)
	}
	if len(r.FalseMatches) != 1 || r.FalseMatches[0].By != "zhang" || r.FalseMatches[0].Reason != "a colleague" {
		t.Fatalf("false matches: %+v", r.FalseMatches)
	}
	if r.ManualTier == nil || r.ManualTier.Level != "5" {
		t.Fatalf("tier: %+v", r.ManualTier)
	}
	// No embedding in any form, even in the JSON an export writes.
	b, _ := json.Marshal(r)
	if strings.Contains(string(b), "embedding") {
		t.Fatalf("record JSON holds embeddings: %s", b)
	}

	// After a withdrawal, the consent record is all that is left.
	if _, err := db.Erase(ctx, "C1001", door.Add(time.Hour), enroll.WithdrawnByCustomer); err != nil {
		t.Fatal(err)
	}
	r, err = db.CustomerRecord(ctx, "C1001")
	if err != nil {
		t.Fatal(err)
	}
	if r.Active() || r.Name != "" || len(r.Templates) != 0 || r.Visits.Count != 0 || len(r.FalseMatches) != 0 ||
		r.ManualTier != nil || r.LastSeen != nil || len(r.Consents) != 2 || r.Consents[1].WithdrawnAt == nil {
		t.Fatalf("after withdrawal: %+v", r)
	}

	if _, err := db.CustomerRecord(ctx, "NOPE"); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("unknown customer: %v", err)
	}
}
