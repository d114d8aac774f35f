package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concierge/enroll"
	"concierge/face"
	"concierge/sqlite"
)

// TestAssignedTier: a tier set by hand at enrollment (no core-banking data)
// is what `tiers show` and `tiers evaluate` report, and the card's greeting
// has the scheme's default address where "{address}" stood.
func TestAssignedTier(t *testing.T) {
	cfgPath := faceConfig(t)
	blair := lfw(t, "Tony_Blair")
	if _, stderr, code := run(t, "enroll", "--config", cfgPath, "--customer", "C2002", "--name", "Mr B", "--consent", "F-2",
		"--tier-scheme", "icbc-stars", "--tier", "六星", blair[0], blair[1]); code != 0 {
		t.Fatalf("enroll: exit %d %s", code, stderr)
	}

	out, stderr, code := run(t, "tiers", "show", "--config", cfgPath, "--customer", "C2002")
	if code != 0 {
		t.Fatalf("tiers show: exit %d %s", code, stderr)
	}
	var show struct {
		Status *struct {
			Level     string `json:"level"`
			LevelName string `json:"level_name"`
			VIP       bool   `json:"vip"`
		} `json:"status"`
		Assigned *struct {
			Scheme, Level string
		} `json:"assigned"`
	}
	if err := json.Unmarshal([]byte(out), &show); err != nil || show.Status == nil || show.Status.Level != "star6" ||
		show.Status.LevelName != "六星" || !show.Status.VIP || show.Assigned == nil || show.Assigned.Level != "star6" {
		t.Fatalf("tiers show = %s (%v)", out, err)
	}

	out, stderr, code = run(t, "tiers", "evaluate", "--config", cfgPath, "--customer", "C2002")
	var ev struct{ Greeting, Level string }
	if err := json.Unmarshal([]byte(out), &ev); err != nil || code != 0 || ev.Level != "star6" ||
		!strings.HasPrefix(ev.Greeting, "尊敬的客户您好") || strings.Contains(ev.Greeting, "{") {
		t.Fatalf("tiers evaluate: exit %d %s %s", code, out, stderr)
	}
	if _, stderr, code := run(t, "tiers", "show", "--config", cfgPath, "--customer", "C9999"); code != 1 || !strings.Contains(stderr, "no tier data") {
		t.Errorf("tiers show of a customer without a tier: exit %d %s", code, stderr)
	}

	// What the lobby card and identify get.
	cfg, err := ReadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tiers, err := openTiers(ctx, cfg, db, testLogger(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tiers.Close()
	tier, _ := tiers.Lookup("C2002", time.Now())
	if tier == nil || tier.LevelName != "六星" || tier.Service == nil ||
		!strings.HasPrefix(tier.Service.Greeting, "尊敬的客户您好") {
		t.Fatalf("card tier = %+v", tier)
	}
}

// TestLookupGreetingInCustomerLanguage: the card's greeting and tier badge
// the daemon hands check-in follow the customer's language from the tier
// CSV where the scheme has one.
func TestLookupGreetingInCustomerLanguage(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	month := time.Now().AddDate(0, -2, 0).Format("2006-01")
	csv := writeTiersFile(t, dir, "tiers.csv", []byte("customer_id,month,assets,scheme,language,form_of_address\n"+
		"C1,"+month+",250000,icbc-stars,en,Ms Wang\nC2,"+month+",250000,icbc-stars,zh-CN,王女士\n"))
	if r := runTiersCmd(t, "tiers", "import", "--db", db, csv); r.code != 0 {
		t.Fatalf("import: %s", r.stderr)
	}
	cfg := DefaultConfig()
	cfg.DB = db
	ctx := context.Background()
	sdb, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	// C3 has no tier data, only a tier set at enrollment, where they read
	// the consent in English: that is their language on record.
	if _, err := sdb.SaveEnrollment(ctx, enroll.Customer{ID: "C3", DisplayName: "Ann Lee", Created: time.Now()},
		enroll.Consent{Reference: "F-3", TextVersion: "v1", Channel: "kiosk", Language: "en", GrantedAt: time.Now()},
		[]enroll.Template{{Embedding: face.Embedding{1}, Model: "dlib", Created: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := sdb.SetTierAssignment(ctx, sqlite.TierAssignment{CustomerID: "C3", Scheme: "icbc-stars", Level: "star6", AssignedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	tiers, err := openTiers(ctx, cfg, sdb, testLogger(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tiers.Close()
	for id, want := range map[string][2]string{"C1": {"Hello Ms Wang, welcome.", "Five stars"}, "C2": {"王女士您好，欢迎光临", "五星"},
		"C3": {"Hello valued customer, welcome. Please have a seat in the VIP lounge.", "Six stars"}} {
		tier, _ := tiers.Lookup(id, time.Now())
		if tier == nil || tier.Service == nil || tier.Service.Greeting != want[0] || tier.LevelName != want[1] {
			t.Errorf("%s: tier %+v, want greeting %q and badge %q", id, tier, want[0], want[1])
		}
	}
}
