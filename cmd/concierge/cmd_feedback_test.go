package main

import (
	"context"
	"encoding/json"
	"fmt"
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

// feedbackDB holds C1 with one false match today and C2 with three in a
// week, in a database made with the real store.
func feedbackDB(t *testing.T, now time.Time) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.db")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	enrolled := now.AddDate(0, -1, 0)
	n := 0
	for _, c := range []struct {
		id   string
		ago  []time.Duration
		dist float64
	}{{"C1", []time.Duration{time.Hour}, 0.29}, {"C2", []time.Duration{7 * 24 * time.Hour, 3 * 24 * time.Hour, 2 * time.Hour}, 0.28}} {
		if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: c.id, DisplayName: "x", Created: enrolled},
			enroll.Consent{Reference: "F-" + c.id, TextVersion: "v1", Channel: "cli", GrantedAt: enrolled},
			[]enroll.Template{{Embedding: face.Embedding{1}, Model: "dlib", Created: enrolled}}); err != nil {
			t.Fatal(err)
		}
		for _, ago := range c.ago {
			n++
			id := fmt.Sprintf("01J%023d", n)
			at := now.Add(-ago)
			if err := db.RecordVisit(ctx, checkin.Arrival{ID: id, Branch: "t1", Camera: "door-1", CustomerID: c.id,
				At: at.Add(-time.Minute), Distance: c.dist, Margin: 0.1, Votes: 2}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.RecordFalseMatch(ctx, id, "Li", "", at); err != nil {
				t.Fatal(err)
			}
		}
	}
	return path
}

func TestFeedbackList(t *testing.T) {
	now := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	old := feedbackNow
	feedbackNow = func() time.Time { return now }
	t.Cleanup(func() { feedbackNow = old })
	dbPath := feedbackDB(t, now)
	cfg := filepath.Join(t.TempDir(), "concierge.yaml")
	yaml := "branch: t1\nvision: {engine: dlib}\nmodels: {dir: " + t.TempDir() + "}\nalerts: {false_match: {timezone: UTC}}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONCIERGE_CONFIG", "")

	out, errOut, code := run(t, "feedback", "list", "--config", cfg, "--db", dbPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"CUSTOMER  RECENT (30d)  TOTAL  LAST                 STRICT UNTIL      RULE NOW                    RE-ENROLL",
		"C1        1             1      2026-11-25 14:00:00  2026-11-26 00:00  +1 votes, threshold -0.030  -",
		"C2        3             3      2026-11-25 13:00:00  re-enrollment     +2 votes, threshold -0.060  suggested",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("list\n%s\nwant\n%s", out, strings.Join(want, "\n"))
	}

	out, _, code = run(t, "feedback", "list", "--json", "--config", cfg, "--db", dbPath)
	var got []checkin.CustomerFeedback
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r checkin.CustomerFeedback
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		got = append(got, r)
	}
	if code != 0 || len(got) != 2 || got[1].CustomerID != "C2" || !got[1].ReenrollSuggested || got[1].Recent != 3 ||
		got[0].StrictUntil == nil || got[0].ExtraVotes != 1 || got[1].ExtraVotes != 2 {
		t.Fatalf("json: %s", out)
	}

	for _, args := range [][]string{{"feedback"}, {"feedback", "show"}, {"feedback", "list", "extra"}} {
		if _, _, code := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
