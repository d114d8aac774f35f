package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
	"concierge/sqlite"
)

func TestReport(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	old := reportNow
	reportNow = func() time.Time { return now }
	t.Cleanup(func() { reportNow = old })
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "c.db")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	enrolled := now.AddDate(0, -1, 0)
	if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: "C1", DisplayName: "王小明", Created: enrolled},
		enroll.Consent{Reference: "F-C1", TextVersion: "v1", Channel: "cli", GrantedAt: enrolled},
		[]enroll.Template{{Embedding: face.Embedding{1}, Model: "dlib", Created: enrolled}}); err != nil {
		t.Fatal(err)
	}
	star5 := &checkin.Tier{Scheme: "icbc-stars", Level: "star5"}
	for _, v := range []struct {
		id    string
		at    time.Time
		claim time.Duration
	}{
		{"01REPORT0000000000000000001", now.AddDate(0, 0, -10), 5 * time.Second}, // before --since 7d
		{"01REPORT0000000000000000002", now.AddDate(0, 0, -1), 12 * time.Second},
		{"01REPORT0000000000000000003", now.AddDate(0, 0, -1).Add(time.Hour), 40 * time.Second},
		{"01REPORT0000000000000000004", now.Add(-time.Hour), 0},
	} {
		if err := db.RecordVisit(ctx, checkin.Arrival{ID: v.id, Branch: "t1", Camera: "door-1", CustomerID: "C1", At: v.at,
			Tier: star5, Distance: 0.3, Votes: 2}); err != nil {
			t.Fatal(err)
		}
		if v.claim > 0 {
			if err := db.RecordService(ctx, alert.ServiceEvent{Kind: alert.ServiceClaim, AlertID: v.id, At: v.at.Add(v.claim)}); err != nil {
				t.Fatal(err)
			}
		} else if err := db.RecordService(ctx, alert.ServiceEvent{Kind: alert.ServiceEscalation, AlertID: v.id, At: v.at.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	cfg := filepath.Join(dir, "concierge.yaml")
	yaml := "branch: t1\nvision: {engine: dlib}\nmodels: {dir: " + t.TempDir() + "}\nalerts: {false_match: {timezone: UTC}}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONCIERGE_CONFIG", "")
	common := []string{"--config", cfg, "--db", dbPath}

	out, errOut, code := run(t, append([]string{"report"}, common...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := []string{
		"service from 2026-11-27 00:00 to 2026-12-03 10:00 (UTC)",
		"",
		"DAY TIER ARRIVALS CLAIMED TO CLAIM MEDIAN P90 ESCALATED NOT THIS PERSON VERIFY YES VERIFY NO",
		"2026-12-02 五星 (icbc-stars/star5) 2 2 12s 40s 0 0 0 0",
		"2026-12-03 五星 (icbc-stars/star5) 1 0 - - 1 0 0 0",
		"total 五星 (icbc-stars/star5) 3 2 12s 40s 1 0 0 0",
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("report:\n%s", out)
	}
	for i := range want {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
	if strings.Contains(out, "C1") || strings.Contains(out, "王") {
		t.Fatal("the report names a customer")
	}

	out, errOut, code = run(t, append([]string{"report", "--since", "30d", "--json"}, common...)...)
	var rep alert.ServiceReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("--json: exit %d, %s %s", code, out, errOut)
	}
	if len(rep.Days) != 3 || len(rep.Totals) != 1 || rep.Totals[0].Arrivals != 4 || rep.Totals[0].LevelName != "五星" ||
		time.Duration(rep.Totals[0].ClaimP90) != 40*time.Second || !strings.Contains(out, `"claim_median_s":12`) {
		t.Fatalf("--json: %s", out)
	}
	for _, since := range []string{"24h", "2026-12-02"} {
		out, _, code = run(t, append([]string{"report", "--since", since, "--json"}, common...)...)
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Totals[0].Arrivals != 3 {
			t.Errorf("--since %s: exit %d, %s", since, code, out)
		}
	}

	for _, bad := range []string{"7 days", "0d", "-3h", "2026-13-01", "2027-01-01"} {
		_, errOut, code := run(t, append([]string{"report", "--since", bad}, common...)...)
		if code != 2 || !strings.Contains(errOut, "report: --since") {
			t.Errorf("--since %q: exit %d, %s", bad, code, errOut)
		}
	}
}
