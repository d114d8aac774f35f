package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"
)

type tiersResult struct {
	code           int
	stdout, stderr string
}

// runTiersCmd runs the binary's Run with the given arguments against a
// private database unless the arguments name one.
func runTiersCmd(t *testing.T, args ...string) tiersResult {
	t.Helper()
	t.Setenv("CONCIERGE_CONFIG", "")
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Stdin: strings.NewReader("")}
	code := m.exitCode(m.Run(context.Background(), args))
	return tiersResult{code, stdout.String(), stderr.String()}
}

func decodeTiers(t *testing.T, r tiersResult) map[string]any {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
	}
	return v
}

func writeTiersFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTiersEvaluateRaw(t *testing.T) {
	tests := []struct {
		args      []string
		level     string
		levelName string
		vip       bool
	}{
		{[]string{"--scheme", "icbc-stars", "--points", "2000"}, "star5", "五星", true},
		{[]string{"--scheme", "icbc-stars", "--points", "1999.99"}, "star4", "四星", false},
		{[]string{"--points", "80000"}, "star7", "七星", true}, // the default scheme is icbc-stars
		{[]string{"--scheme", "icbc-stars", "--card", "credit_platinum"}, "star6", "六星", true},
		{[]string{"--scheme", "icbc-stars", "--private-banking"}, "star7", "七星", true},
		{[]string{"--scheme", "boc-wealth", "--assets", "6000000"}, "private-banking", "私人银行", true},
		{[]string{"--scheme", "boc-wealth", "--assets", "5999999.99"}, "wealth-management", "中银财富管理", true},
		{[]string{"--scheme", "boc-wealth", "--loan-balance", "500000"}, "wealth", "中银理财", true},
		{[]string{"--scheme", "boc-wealth", "--card-spend", "100000"}, "wealth", "中银理财", true},
		{[]string{"--scheme", "generic-four", "--assets", "10000", "--indicator", "income_growth=20"}, "potential", "潜力客户", false},
		{[]string{"--scheme", "composite-score", "--assets", "6000000", "--indicator", "profit=50000"}, "c", "成长客户", false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			v := decodeTiers(t, runTiersCmd(t, append([]string{"tiers", "evaluate"}, tt.args...)...))
			if v["level"] != tt.level || v["level_name"] != tt.levelName || v["vip"] != tt.vip {
				t.Fatalf("got %v", v)
			}
			sl, ok := v["service_level"].(map[string]any)
			if !ok || sl["priority"] == nil {
				t.Fatalf("service_level = %v", v["service_level"])
			}
			if v["scheme"] == nil {
				t.Fatalf("no scheme in %v", v)
			}
		})
	}
}

func TestTiersEvaluateErrors(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"tiers", "evaluate"}, 2, "want --customer ID"},
		{[]string{"tiers", "evaluate", "--customer", "C1", "--points", "5"}, 2, "--customer uses stored data"},
		{[]string{"tiers", "evaluate", "--points", "5", "--at", "2024-01-01"}, 2, "--at needs --customer"},
		{[]string{"tiers", "evaluate", "--points", "lots"}, 1, `points "lots": not a number`},
		{[]string{"tiers", "evaluate", "--assets", "-1"}, 1, "assets must not be negative"},
		{[]string{"tiers", "evaluate", "--scheme", "nope", "--points", "1"}, 1, `unknown tier scheme "nope"`},
		{[]string{"tiers", "evaluate", "--indicator", "shoe_size=42"}, 1, `unknown indicator "shoe_size"`},
		{[]string{"tiers", "evaluate", "--indicator", "income_growth"}, 2, "want NAME=VALUE"},
		{[]string{"tiers", "evaluate", "--customer", "C1", "--at", "yesterday"}, 2, "want YYYY-MM-DD"},
		{[]string{"tiers", "frobnicate"}, 2, `unknown action "frobnicate"`},
		{[]string{"tiers", "import"}, 2, "exactly one FILE.csv"},
		{[]string{"tiers", "show"}, 2, "want --customer ID"},
		{[]string{"tiers", "schemes", "nope"}, 1, `unknown tier scheme "nope"`},
	}
	if r := runTiersCmd(t, "tiers"); r.code != 2 || !strings.Contains(r.stderr, "missing action") {
		t.Errorf("tiers alone: exit %d %q", r.code, r.stderr)
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runTiersCmd(t, append(tt.args, "--db", filepath.Join(t.TempDir(), "c.db"))...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) || r.stdout != "" {
				t.Fatalf("exit %d, stderr %q, stdout %q; want exit %d and %q", r.code, r.stderr, r.stdout, tt.code, tt.stderr)
			}
		})
	}
}

// TestTiersCalendarAcceptance: one month above 五星 upgrades at that month's
// end; falling below is not downgraded before the next 30 June / 31
// December plus the buffer.
func TestTiersCalendarAcceptance(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	var b strings.Builder
	b.WriteString("customer_id,month,points,rm_name,form_of_address,risk_flags\n")
	for m := 1; m <= 12; m++ {
		p, flags := "600", ""
		if m == 3 {
			p = "2000"
		}
		if m == 9 {
			flags = "fraud:F12"
		}
		fmt.Fprintf(&b, "C1,2024-%02d,%s,李经理,李先生,%s\n", m, p, flags)
	}
	csvPath := writeTiersFile(t, dir, "2024.csv", []byte(b.String()))
	rep := decodeTiers(t, runTiersCmd(t, "tiers", "import", "--db", db, csvPath))
	if rep["inserted"] != 12.0 || rep["committed"] != true {
		t.Fatalf("import = %v", rep)
	}
	tests := []struct {
		at, level string
		risk      bool
	}{
		{"2024-03-30", "star4", false},
		{"2024-03-31", "star5", false},
		{"2024-06-30", "star5", false},
		{"2024-09-15", "star5", true},  // September's export flags fraud
		{"2024-10-01", "star5", false}, // October's no longer does
		{"2024-12-30", "star5", false},
		{"2024-12-31", "star4", false},
	}
	for _, tt := range tests {
		v := decodeTiers(t, runTiersCmd(t, "tiers", "evaluate", "--db", db, "--customer", "C1", "--at", tt.at))
		_, hasRisk := v["risk_flags"]
		if v["level"] != tt.level || hasRisk != tt.risk || v["at"] != tt.at {
			t.Errorf("%s: %v", tt.at, v)
		}
	}
	v := decodeTiers(t, runTiersCmd(t, "tiers", "evaluate", "--db", db, "--customer", "C1", "--at", "2024-04-01"))
	if v["greeting"] != "李先生您好，欢迎光临" || v["since"] != "2024-03-31" {
		t.Errorf("greeting/since = %v / %v", v["greeting"], v["since"])
	}
	r := runTiersCmd(t, "tiers", "evaluate", "--db", db, "--customer", "C1", "--at", "2023-12-31")
	if r.code != 1 || !strings.Contains(r.stderr, "no tier data on or before 2023-12-31") {
		t.Errorf("before the data: exit %d %s", r.code, r.stderr)
	}
	r = runTiersCmd(t, "tiers", "evaluate", "--db", db, "--customer", "nobody")
	if r.code != 1 || !strings.Contains(r.stderr, `no tier data for customer "nobody"`) {
		t.Errorf("unknown customer: exit %d %s", r.code, r.stderr)
	}

	tiersNow = func() time.Time { return time.Date(2024, 4, 1, 9, 0, 0, 0, time.Local) }
	defer func() { tiersNow = time.Now }()
	show := decodeTiers(t, runTiersCmd(t, "tiers", "show", "--db", db, "--customer", "C1"))
	st, _ := show["status"].(map[string]any)
	snaps, _ := show["snapshots"].([]any)
	changes, _ := show["changes"].([]any)
	if show["at"] != "2024-04-01" || st["level"] != "star5" || len(snaps) != 12 || len(changes) != 2 {
		t.Fatalf("show = %v", show)
	}
}

func TestTiersImportRejectsBadRow(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	var b strings.Builder
	b.WriteString("customer_id,month,assets,scheme\n")
	for i := range 100 {
		fmt.Fprintf(&b, "C%03d,2024-06,%d,boc-wealth\n", i, i*100_000)
		if i == 40 {
			b.WriteString("C999,2024-06,200000,boc-wealth,extra\n") // line 43
		}
	}
	path := writeTiersFile(t, dir, "june.csv", []byte(b.String()))

	r := runTiersCmd(t, "tiers", "import", "--db", db, path)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, path+":43: 5 fields but the header has 4") ||
		!strings.Contains(r.stderr, "1 of 101 rows are bad; nothing was imported") {
		t.Fatalf("exit %d\nstderr %s\nstdout %s", r.code, r.stderr, r.stdout)
	}
	if r := runTiersCmd(t, "tiers", "evaluate", "--db", db, "--customer", "C001", "--at", "2024-07-01"); r.code != 1 {
		t.Fatalf("a rejected import stored data: %s", r.stdout)
	}

	dry := decodeTiers(t, runTiersCmd(t, "tiers", "import", "--db", db, "--dry-run", "--skip-bad-rows", path))
	if dry["inserted"] != 100.0 || dry["committed"] != false || dry["dry_run"] != true {
		t.Fatalf("dry run = %v", dry)
	}
	if r := runTiersCmd(t, "tiers", "evaluate", "--db", db, "--customer", "C001", "--at", "2024-07-01"); r.code != 1 {
		t.Fatalf("a dry run stored data: %s", r.stdout)
	}

	rep := decodeTiers(t, runTiersCmd(t, "tiers", "import", "--db", db, "--skip-bad-rows", path))
	if rep["inserted"] != 100.0 || len(rep["bad_rows"].([]any)) != 1 {
		t.Fatalf("skip-bad-rows = %v", rep)
	}
	v := decodeTiers(t, runTiersCmd(t, "tiers", "evaluate", "--db", db, "--customer", "C060", "--at", "2024-07-01"))
	if v["level"] != "private-banking" {
		t.Fatalf("C060 = %v", v)
	}
	again := decodeTiers(t, runTiersCmd(t, "tiers", "import", "--db", db, "--skip-bad-rows", path))
	if again["inserted"] != 0.0 || again["unchanged"] != 100.0 || again["committed"] != false {
		t.Fatalf("re-import = %v", again)
	}
}

func TestTiersImportGB18030(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	text := "客户号,月份,月日均金融资产,客户经理,称呼,分层体系\r\nC1,202406,1200000,王经理,王女士,boc-wealth\r\n"
	gb, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	path := writeTiersFile(t, dir, "export.csv", gb)
	rep := decodeTiers(t, runTiersCmd(t, "tiers", "import", "--db", db, path))
	if rep["encoding"] != "gb18030" || rep["inserted"] != 1.0 {
		t.Fatalf("import = %v", rep)
	}
	v := decodeTiers(t, runTiersCmd(t, "tiers", "evaluate", "--db", db, "--customer", "C1", "--at", "2024-07-01"))
	rm, _ := v["relationship_manager"].(map[string]any)
	if v["level_name"] != "中银财富管理" || v["form_of_address"] != "王女士" || rm["name"] != "王经理" {
		t.Fatalf("C1 = %v", v)
	}
}

func TestTiersOperatorSchemes(t *testing.T) {
	dir := t.TempDir()
	schemes := filepath.Join(dir, "schemes")
	if err := os.Mkdir(schemes, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTiersFile(t, schemes, "pb10m.yaml", []byte(`name: pb-10m
title: private banking at 10M
calendar: {effective: month_start}
levels:
  - {id: retail, name: 零售}
  - id: pb
    name: 私人银行
    vip: true
    qualify: [{indicator: assets, at_least: 10_000_000}]
    service: {priority: urgent, notify_rm: true, room: PB}
`))
	cfg := writeTiersFile(t, dir, "concierge.yaml", []byte(fmt.Sprintf("tiering:\n  scheme: pb-10m\n  schemes_dir: %s\n", schemes)))

	for assets, level := range map[string]string{"9999999.99": "retail", "10000000": "pb"} {
		v := decodeTiers(t, runTiersCmd(t, "tiers", "evaluate", "--config", cfg, "--assets", assets))
		if v["scheme"] != "pb-10m" || v["level"] != level {
			t.Errorf("assets %s: %v", assets, v)
		}
	}
	r := runTiersCmd(t, "tiers", "schemes", "--config", cfg)
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("schemes: %v %s %s", err, r.stdout, r.stderr)
	}
	defaults := 0
	for _, s := range list {
		if s["default"] == true {
			defaults++
			if s["name"] != "pb-10m" || s["source"] != filepath.Join(schemes, "pb10m.yaml") {
				t.Errorf("default scheme = %v", s)
			}
		}
	}
	if len(list) != 5 || defaults != 1 {
		t.Errorf("schemes = %v", list)
	}
	one := decodeTiers(t, runTiersCmd(t, "tiers", "schemes", "icbc-stars"))
	if levels, _ := one["levels"].([]any); len(levels) != 7 {
		t.Errorf("icbc-stars = %v", one)
	}

	// A malformed operator scheme stops the command with file, line and reason.
	writeTiersFile(t, schemes, "broken.yaml", []byte("name: broken\nlevels:\n  - {id: a, name: A}\n  - {id: b, name: B, qualify: [{indicator: assets, at_least: lots}]}\n"))
	r = runTiersCmd(t, "tiers", "evaluate", "--config", cfg, "--assets", "1")
	if r.code != 1 || !strings.Contains(r.stderr, filepath.Join(schemes, "broken.yaml")+`:4: "lots": not a number`) {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}
