package web

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/sqlite"
)

// dbReports is the report of a real database, as the daemon gives it.
type dbReports struct{ db *sqlite.DB }

func (r dbReports) RecentServiceReport(ctx context.Context, days int) (alert.ServiceReport, error) {
	return r.db.ServiceReport(ctx, time.Now().AddDate(0, 0, -days), time.UTC)
}

// TestLobbyReportForManagersOnly: GET report answers a manager with the
// aggregates and anyone else with 403 JSON; /me and sign-in say the role.
func TestLobbyReportForManagersOnly(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	at := time.Now().Add(-time.Hour)
	if err := db.RecordVisit(ctx, checkin.Arrival{ID: "01JREPORTWEB", Branch: "b", Camera: "door-1", CustomerID: "C1001",
		At: at, Tier: &checkin.Tier{Scheme: "icbc-stars", Level: "star5"}, Distance: 0.3, Votes: 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordService(ctx, alert.ServiceEvent{Kind: alert.ServiceClaim, AlertID: "01JREPORTWEB", At: at.Add(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	e := newLobbyEnv(t, func(c *LobbyConfig) {
		c.Staff[1].Role = RoleManager // 李经理
		c.Reports = dbReports{db}
		c.Now = time.Now
	})

	anon := e.client()
	resp, data := anon.do("GET", "report", nil)
	want(t, resp, data, http.StatusUnauthorized, concierge.EUNAUTHORIZED)

	staff := e.client()
	staff.signIn("Zhang", zhangPassword)
	resp, data = staff.do("GET", "report", nil)
	want(t, resp, data, http.StatusForbidden, concierge.EUNAUTHORIZED)
	resp, data = staff.do("GET", "me", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"role":"staff"`) {
		t.Fatalf("staff /me: %d %s", resp.StatusCode, data)
	}

	mgr := e.client()
	resp, data = mgr.do("POST", "signin", map[string]string{"name": "李经理", "password": liPassword})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"role":"manager"`) {
		t.Fatalf("manager sign-in: %d %s", resp.StatusCode, data)
	}
	resp, data = mgr.do("GET", "report", nil)
	want(t, resp, data, http.StatusOK, "")
	var rep alert.ServiceReport
	if err := json.Unmarshal(data, &rep); err != nil || len(rep.Totals) != 1 || rep.Totals[0].Arrivals != 1 ||
		rep.Totals[0].Claims != 1 || time.Duration(rep.Totals[0].ClaimMedian) != 30*time.Second {
		t.Fatalf("report: %s (%v)", data, err)
	}
	if strings.Contains(string(data), "C1001") || strings.Contains(string(data), "01JREPORTWEB") {
		t.Fatalf("the report names the customer or the alert: %s", data)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}

	// A box without a report: 404 for the manager, still 403 for staff.
	e2 := newLobbyEnv(t, func(c *LobbyConfig) { c.Staff[1].Role = RoleManager })
	m2 := e2.client()
	m2.signIn("李经理", liPassword)
	resp, data = m2.do("GET", "report", nil)
	want(t, resp, data, http.StatusNotFound, concierge.ENOTFOUND)
}
