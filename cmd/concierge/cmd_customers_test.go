package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
	"concierge/sqlite"
)

// customersDB holds C1001 (enrolled at the kiosk, a face learnt at the
// door, two visits, a "not this person" mark, a tier set by hand) and
// C1002, who withdrew.
func customersDB(t *testing.T, at time.Time) (cfgPath, dbPath string) {
	t.Helper()
	dir := t.TempDir()
	dbPath = filepath.Join(dir, "c.db")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct{ id, name string }{{"C1001", "王小明"}, {"C1002", "Li Si"}} {
		if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: c.id, DisplayName: c.name, Created: at},
			enroll.Consent{Reference: "F-" + c.id, TextVersion: "v1", Channel: "kiosk", Language: "zh", GrantedAt: at},
			[]enroll.Template{{Embedding: face.Embedding{1}, Model: "dlib", Created: at}, {Embedding: face.Embedding{0, 1}, Model: "dlib", Created: at}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: "C1001", DisplayName: "王小明", Created: at},
		enroll.Consent{Reference: "F-C1001-door", TextVersion: "v1", Channel: "kiosk", GrantedAt: at.Add(time.Hour), Scope: enroll.ScopeNetwork},
		[]enroll.Template{{Embedding: face.Embedding{0, 0, 1}, Model: "dlib", Created: at.Add(time.Hour), Source: enroll.SourceDoor}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetTierAssignment(ctx, sqlite.TierAssignment{CustomerID: "C1001", Scheme: "icbc-stars", Level: "star5", AssignedAt: at}); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"01JCUSTOMERS00000000000001", "01JCUSTOMERS00000000000002"} {
		if err := db.RecordVisit(ctx, checkin.Arrival{ID: id, Branch: "t1", Camera: "door-1", CustomerID: "C1001",
			At: at.Add(time.Duration(i+2) * time.Hour), Distance: 0.3, Margin: 0.1, Votes: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := db.RecordFalseMatch(ctx, "01JCUSTOMERS00000000000001", "张丽", "his brother", at.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Erase(ctx, "C1002", at.Add(4*time.Hour), enroll.WithdrawnByCustomer); err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "concierge.yaml")
	yaml := "branch: t1\nvision: {engine: dlib}\nmodels: {dir: " + t.TempDir() + "}\nalerts: {false_match: {timezone: UTC}}\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONCIERGE_CONFIG", "")
	return cfgPath, dbPath
}

func TestCustomersListShowExport(t *testing.T) {
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	old := customersNow
	customersNow = func() time.Time { return at.Add(24 * time.Hour) }
	t.Cleanup(func() { customersNow = old })
	cfg, dbPath := customersDB(t, at)
	common := []string{"--config", cfg, "--db", dbPath}

	if _, errOut, code := run(t, append([]string{"customers", "list"}, common...)...); code != 2 || !strings.Contains(errOut, "--by NAME is required") {
		t.Fatalf("list without --by: exit %d, %s", code, errOut)
	}

	out, errOut, code := run(t, append([]string{"customers", "list", "--by", "auditor Wu"}, common...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"ID     NAME  CONSENT    SCOPE    CHANNEL  GRANTED           WITHDRAWN         TEMPLATES                 LAST SEEN         TIER",
		"C1001  王*    active     network  kiosk    2026-11-02 10:00  -                 door 1, enrollment 2      2026-11-02 12:00  五星 (icbc-stars/star5, assigned)",
		"C1002  -     withdrawn  branch   kiosk    2026-11-02 09:00  2026-11-02 13:00  -                         -                 -",
	}
	if len(lines) != len(want) {
		t.Fatalf("list:\n%s", out)
	}
	for i := range want {
		if strings.Join(strings.Fields(lines[i]), " ") != strings.Join(strings.Fields(want[i]), " ") {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
	if strings.Contains(out, "王小明") {
		t.Fatal("list shows a full name without --full-names")
	}

	out, _, code = run(t, append([]string{"customers", "list", "--by", "auditor Wu", "--json", "--full-names"}, common...)...)
	var first customerLine
	if code != 0 || json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &first) != nil ||
		first.Name != "王小明" || first.Templates["door"] != 1 || first.Templates["enrollment"] != 2 || first.Tier == nil || first.Tier.Level != "star5" {
		t.Fatalf("list --json: exit %d, %s", code, out)
	}

	out, errOut, code = run(t, append([]string{"customers", "show", "C1001", "--by", "auditor Wu"}, common...)...)
	if code != 0 {
		t.Fatalf("show: exit %d, %s", code, errOut)
	}
	for _, s := range []string{"王小明", "F-C1001-door", "door", "enrollment", "2 (first 2026-11-02 11:00, last 2026-11-02 12:00)",
		"his brother", "张丽", "1 marks"} {
		if !strings.Contains(out, s) {
			t.Errorf("show lacks %q:\n%s", s, out)
		}
	}

	out, _, code = run(t, append([]string{"customers", "show", "C1002", "--by", "auditor Wu", "--json"}, common...)...)
	var gone customerView
	if code != 0 || json.Unmarshal([]byte(out), &gone) != nil {
		t.Fatalf("show withdrawn: exit %d, %s", code, out)
	}
	if gone.Consent != "withdrawn" || gone.Name != "" || len(gone.Templates) != 0 || gone.Visits.Count != 0 || len(gone.Consents) != 1 ||
		gone.Consents[0].WithdrawnAt == nil || gone.Tier != nil {
		t.Fatalf("withdrawn customer shows more than the consent record: %s", out)
	}

	if _, errOut, code := run(t, append([]string{"customers", "show", "NOPE", "--by", "auditor Wu"}, common...)...); code != 1 || !strings.Contains(errOut, "customer NOPE: no such customer") {
		t.Fatalf("unknown customer: exit %d, %s", code, errOut)
	}

	out, errOut, code = run(t, append([]string{"customers", "export", "--customer", "C1001", "--by", "auditor Wu"}, common...)...)
	var exp customerExport
	if code != 0 || json.Unmarshal([]byte(out), &exp) != nil {
		t.Fatalf("export: exit %d, %s %s", code, out, errOut)
	}
	if exp.ExportedBy != "auditor Wu" || len(exp.Customers) != 1 || exp.Customers[0].Name != "王小明" || exp.Customers[0].TemplateCount() != 3 ||
		len(exp.Customers[0].FalseMatches) != 1 || strings.Contains(out, "embedding") ||
		len(exp.Customers[0].Audit) != 1 || exp.Customers[0].Audit[0].Action != "customers.show" {
		t.Fatalf("export: %s", out)
	}
	out, _, code = run(t, append([]string{"customers", "export", "--by", "auditor Wu"}, common...)...)
	if code != 0 || json.Unmarshal([]byte(out), &exp) != nil || len(exp.Customers) != 2 {
		t.Fatalf("export all: exit %d, %s", code, out)
	}

	// Every read is in the audit log, with who read what.
	db, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	entries, err := db.Audit(context.Background(), sqlite.AuditFilter{Actor: "auditor Wu"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+" "+e.CustomerID+" "+e.Outcome)
	}
	wantAudit := "customers.list  ok|customers.list  ok|customers.show C1001 ok|customers.show C1002 ok|customers.show NOPE not_found|" +
		"customers.export C1001 ok|customers.export C1001 ok|customers.export C1002 ok"
	if strings.Join(got, "|") != wantAudit {
		t.Fatalf("audit:\n got %s\nwant %s", strings.Join(got, "|"), wantAudit)
	}
}
