package tiering

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"concierge"
)

func mustSchemes(t testing.TB) *Schemes {
	t.Helper()
	s, err := LoadSchemes("", "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// facts builds Facts from name/value pairs; "card" and "private_banking"
// are facts rather than indicators.
func facts(kv ...string) Facts {
	f := Facts{Indicators: map[string]Decimal{}}
	for i := 0; i+1 < len(kv); i += 2 {
		switch kv[i] {
		case "card":
			f.Cards = append(f.Cards, kv[i+1])
			slices.Sort(f.Cards)
		case "private_banking":
			f.PrivateBanking = kv[i+1] == "1"
		default:
			d, err := ParseDecimal(kv[i+1])
			if err != nil {
				panic(err)
			}
			f.Indicators[kv[i]] = d
		}
	}
	return f
}

// TestPresetBoundaries rates just below, at and just above every threshold
// of the shipped presets, and every alternative qualifying condition.
func TestPresetBoundaries(t *testing.T) {
	tests := []struct {
		scheme string
		facts  []string
		level  string
		vip    bool
	}{
		// icbc-stars by star points: 准星级 (0,50), 三星 [50,500), 四星 [500,2000),
		// 五星 [2000,10000), 六星 [10000,80000), 七星 ≥ 80000.
		{"icbc-stars", nil, "unrated", false},
		{"icbc-stars", []string{"points", "0"}, "unrated", false},
		{"icbc-stars", []string{"points", "0.01"}, "quasi", false},
		{"icbc-stars", []string{"points", "49.99"}, "quasi", false},
		{"icbc-stars", []string{"points", "50"}, "star3", false},
		{"icbc-stars", []string{"points", "50.01"}, "star3", false},
		{"icbc-stars", []string{"points", "499.99"}, "star3", false},
		{"icbc-stars", []string{"points", "500"}, "star4", false},
		{"icbc-stars", []string{"points", "500.01"}, "star4", false},
		{"icbc-stars", []string{"points", "1999.99"}, "star4", false},
		{"icbc-stars", []string{"points", "2000"}, "star5", true},
		{"icbc-stars", []string{"points", "2000.01"}, "star5", true},
		{"icbc-stars", []string{"points", "9999.99"}, "star5", true},
		{"icbc-stars", []string{"points", "10000"}, "star6", true},
		{"icbc-stars", []string{"points", "10000.01"}, "star6", true},
		{"icbc-stars", []string{"points", "79999.99"}, "star6", true},
		{"icbc-stars", []string{"points", "80000"}, "star7", true},
		{"icbc-stars", []string{"points", "80000.01"}, "star7", true},
		// icbc-stars by the month's average daily financial assets.
		{"icbc-stars", []string{"assets", "0"}, "unrated", false},
		{"icbc-stars", []string{"assets", "0.01"}, "quasi", false},
		{"icbc-stars", []string{"assets", "4999.99"}, "quasi", false},
		{"icbc-stars", []string{"assets", "5000"}, "star3", false},
		{"icbc-stars", []string{"assets", "49999.99"}, "star3", false},
		{"icbc-stars", []string{"assets", "50000"}, "star4", false},
		{"icbc-stars", []string{"assets", "199999.99"}, "star4", false},
		{"icbc-stars", []string{"assets", "200000"}, "star5", true},
		{"icbc-stars", []string{"assets", "999999.99"}, "star5", true},
		{"icbc-stars", []string{"assets", "1000000"}, "star6", true},
		{"icbc-stars", []string{"assets", "7999999.99"}, "star6", true},
		{"icbc-stars", []string{"assets", "8000000"}, "star7", true},
		// icbc-stars alternative conditions.
		{"icbc-stars", []string{"card", "credit_standard"}, "star4", false},
		{"icbc-stars", []string{"card", "wealth_gold"}, "star5", true},
		{"icbc-stars", []string{"card", "credit_gold"}, "star5", true},
		{"icbc-stars", []string{"card", "credit_platinum"}, "star6", true},
		{"icbc-stars", []string{"private_banking", "1"}, "star7", true},
		{"icbc-stars", []string{"private_banking", "0"}, "unrated", false},
		{"icbc-stars", []string{"card", "debit_ordinary"}, "unrated", false},
		{"icbc-stars", []string{"points", "600", "card", "credit_platinum"}, "star6", true},
		{"icbc-stars", []string{"points", "90000", "card", "credit_standard"}, "star7", true},

		// boc-wealth: 中银理财 ≥ 200,000 or loan ≥ 500,000 or 12-month card
		// spend ≥ 100,000; 财富管理 ≥ 1,000,000; 私人银行 ≥ 6,000,000.
		{"boc-wealth", nil, "ordinary", false},
		{"boc-wealth", []string{"assets", "199999.99"}, "ordinary", false},
		{"boc-wealth", []string{"assets", "200000"}, "wealth", true},
		{"boc-wealth", []string{"assets", "200000.01"}, "wealth", true},
		{"boc-wealth", []string{"assets", "999999.99"}, "wealth", true},
		{"boc-wealth", []string{"assets", "1000000"}, "wealth-management", true},
		{"boc-wealth", []string{"assets", "1000000.01"}, "wealth-management", true},
		{"boc-wealth", []string{"assets", "5999999.99"}, "wealth-management", true},
		{"boc-wealth", []string{"assets", "6000000"}, "private-banking", true},
		{"boc-wealth", []string{"assets", "6000000.01"}, "private-banking", true},
		{"boc-wealth", []string{"loan_balance", "499999.99"}, "ordinary", false},
		{"boc-wealth", []string{"loan_balance", "500000"}, "wealth", true},
		{"boc-wealth", []string{"loan_balance", "500000.01"}, "wealth", true},
		{"boc-wealth", []string{"card_spend_12m", "99999.99"}, "ordinary", false},
		{"boc-wealth", []string{"card_spend_12m", "100000"}, "wealth", true},
		{"boc-wealth", []string{"card_spend_12m", "100000.01"}, "wealth", true},
		{"boc-wealth", []string{"loan_balance", "9000000"}, "wealth", true}, // loans never reach the higher tiers
		{"boc-wealth", []string{"private_banking", "1"}, "private-banking", true},

		// generic-four: 中端 ≥ 50,000; 潜力 = assets ≥ 10,000 with income
		// growth ≥ 20%, or card spend ≥ 100,000; 高端 ≥ 500,000.
		{"generic-four", []string{"assets", "49999.99"}, "low", false},
		{"generic-four", []string{"assets", "50000"}, "mid", false},
		{"generic-four", []string{"assets", "50000.01"}, "mid", false},
		{"generic-four", []string{"assets", "499999.99"}, "mid", false},
		{"generic-four", []string{"assets", "500000"}, "high", true},
		{"generic-four", []string{"assets", "500000.01"}, "high", true},
		{"generic-four", []string{"assets", "10000", "income_growth", "20"}, "potential", false},
		{"generic-four", []string{"assets", "10000", "income_growth", "19.99"}, "low", false},
		{"generic-four", []string{"assets", "9999.99", "income_growth", "20"}, "low", false},
		{"generic-four", []string{"assets", "10000.01", "income_growth", "20.01"}, "potential", false},
		{"generic-four", []string{"income_growth", "50"}, "low", false}, // all() needs both
		{"generic-four", []string{"assets", "60000", "income_growth", "25"}, "potential", false},
		{"generic-four", []string{"card_spend_12m", "99999.99"}, "low", false},
		{"generic-four", []string{"card_spend_12m", "100000"}, "potential", false},
		{"generic-four", []string{"assets", "600000", "income_growth", "25"}, "high", true},
	}
	s := mustSchemes(t)
	for _, tt := range tests {
		sc, ok := s.Get(tt.scheme)
		if !ok {
			t.Fatalf("no scheme %s", tt.scheme)
		}
		r := sc.Rate(facts(tt.facts...))
		if r.Level != tt.level || r.VIP != tt.vip {
			t.Errorf("%s %v: got %s (vip %v), want %s (vip %v)", tt.scheme, tt.facts, r.Level, r.VIP, tt.level, tt.vip)
		}
		if r.LevelName != sc.Levels[r.Rank].Name || !reflect.DeepEqual(r.ServiceLevel, sc.Levels[r.Rank].Service) {
			t.Errorf("%s %v: rating %+v does not match its level", tt.scheme, tt.facts, r)
		}
	}
}

// TestCompositeScore checks the scorecard sums exactly and that each class
// boundary (40, 60, 80) is inclusive.
func TestCompositeScore(t *testing.T) {
	top := []string{"assets", "6000000", "txn_count", "20", "profit", "50000", "credit_rating", "1",
		"overdue_count", "0", "occupation_score", "90", "income_growth", "20"}
	with := func(base []string, kv ...string) []string {
		out := slices.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			if j := slices.Index(out, kv[i]); j >= 0 && j%2 == 0 {
				if kv[i+1] == "" {
					out = slices.Delete(out, j, j+2)
				} else {
					out[j+1] = kv[i+1]
				}
			} else {
				out = append(out, kv[i], kv[i+1])
			}
		}
		return out
	}
	tests := []struct {
		name   string
		facts  []string
		score  string
		level  string
		groups map[string]string
	}{
		{"everything top", top, "100", "a",
			map[string]string{"contribution": "50", "risk": "25", "potential": "25"}},
		{"nothing known", nil, "0", "d", map[string]string{"contribution": "0", "risk": "0", "potential": "0"}},
		{"exactly 80", with(top, "income_growth", "", "txn_count", "5"), "80", "a", nil},
		{"just below 80", with(top, "income_growth", "", "txn_count", "4"), "75", "b", nil},
		{"above 80", with(top, "income_growth", "10", "txn_count", "5"), "89", "a", nil},
		{"exactly 60", []string{"assets", "6000000", "profit", "50000", "credit_rating", "1", "txn_count", "5"}, "60", "b", nil},
		{"just below 60", []string{"assets", "6000000", "profit", "50000", "credit_rating", "1", "txn_count", "4"}, "55", "c", nil},
		{"above 60", []string{"assets", "6000000", "profit", "50000", "credit_rating", "1", "txn_count", "20"}, "65", "b", nil},
		{"exactly 40", []string{"assets", "6000000", "profit", "50000"}, "40", "c", nil},
		{"just below 40", []string{"assets", "5999999.99", "profit", "50000"}, "37.5", "d", nil},
		{"above 40", []string{"assets", "6000000", "profit", "50000", "occupation_score", "40"}, "45", "c", nil},
		{"bad risk lowers the score", with(top, "credit_rating", "9", "overdue_count", "6"), "75", "b",
			map[string]string{"contribution": "50", "risk": "0", "potential": "25"}},
		{"negative growth", with(top, "income_growth", "-5"), "85", "a", nil},
		{"growth below the first band", with(top, "income_growth", "-100.01"), "85", "a", nil},
	}
	sc, _ := mustSchemes(t).Get("composite-score")
	for _, tt := range tests {
		r := sc.Rate(facts(tt.facts...))
		if r.Score == nil || r.Score.String() != tt.score || r.Level != tt.level {
			t.Errorf("%s: score %v level %s, want %s %s", tt.name, r.Score, r.Level, tt.score, tt.level)
		}
		for g, want := range tt.groups {
			if got := r.ScoreGroups[g].String(); got != want {
				t.Errorf("%s: group %s = %s, want %s", tt.name, g, got, want)
			}
		}
	}
}

func TestPresetServiceLevels(t *testing.T) {
	s := mustSchemes(t)
	for _, sc := range s.List() {
		if sc.Levels[0].Service.Alerts() {
			t.Errorf("%s: the floor level alerts staff", sc.Name)
		}
		for i, l := range sc.Levels {
			if l.VIP && !l.Service.Alerts() {
				t.Errorf("%s/%s: VIP level without an alert", sc.Name, l.ID)
			}
			if i > 0 && l.Service.Priority.Rank() < sc.Levels[i-1].Service.Priority.Rank() {
				t.Errorf("%s/%s: priority lower than the level below", sc.Name, l.ID)
			}
		}
	}
	icbc, _ := s.Get("icbc-stars")
	star7, _ := icbc.Level("star7")
	if star7.Name != "七星" || !star7.Service.NotifyRM || star7.Service.Room == "" || star7.Service.Priority != PriorityUrgent {
		t.Errorf("七星 service = %+v", star7.Service)
	}
	// The buffer differs by star.
	star5, _ := icbc.Level("star5")
	star6, _ := icbc.Level("star6")
	if !(star5.DowngradeBufferMonths < star6.DowngradeBufferMonths && star6.DowngradeBufferMonths < star7.DowngradeBufferMonths) {
		t.Errorf("buffers 五星 %d 六星 %d 七星 %d", star5.DowngradeBufferMonths, star6.DowngradeBufferMonths, star7.DowngradeBufferMonths)
	}
}

// An operator may name a level by id or by the name staff know it by.
func TestLevelNamed(t *testing.T) {
	s, err := LoadSchemes("", "")
	if err != nil {
		t.Fatal(err)
	}
	icbc, _ := s.Get("icbc-stars")
	for _, name := range []string{"star7", "七星"} {
		if l, ok := icbc.LevelNamed(name); !ok || l.ID != "star7" {
			t.Errorf("LevelNamed(%q) = %q, %v", name, l.ID, ok)
		}
	}
	if _, ok := icbc.LevelNamed("八星"); ok {
		t.Error("an unknown level was found")
	}
}

// Alerts say 1 for the most urgent; staff take a customer to the room
// when the level has one, else to the lane.
func TestServiceLevelForAlerts(t *testing.T) {
	for _, c := range []struct {
		sl       ServiceLevel
		priority int
		place    string
	}{
		{ServiceLevel{Priority: PriorityUrgent, Lane: "counter 1", Room: "VIP room 1"}, 1, "VIP room 1"},
		{ServiceLevel{Priority: PriorityHigh, Lane: "counter 1"}, 2, "counter 1"},
		{ServiceLevel{Priority: PriorityLow}, 4, ""},
		{ServiceLevel{Priority: PriorityNone}, 5, ""},
		{ServiceLevel{Priority: "whenever"}, 5, ""},
	} {
		if p, pl := c.sl.AlertPriority(), c.sl.Place(); p != c.priority || pl != c.place {
			t.Errorf("%+v: priority %d at %q, want %d at %q", c.sl, p, pl, c.priority, c.place)
		}
	}
}

// A tier set by hand gives the level's status while its scheme is loaded
// and the level still exists; otherwise it is not found.
func TestSchemesAssigned(t *testing.T) {
	s := mustSchemes(t)
	st, err := s.Assigned("C1", "icbc-stars", "七星")
	icbc, _ := s.Get("icbc-stars")
	if err != nil || st.Level != "star7" || st.CustomerID != "C1" || icbc.Levels[st.Rank].ID != "star7" {
		t.Fatalf("assigned 七星: %+v, %v", st, err)
	}
	for _, c := range [][2]string{{"no-such-scheme", "star7"}, {"icbc-stars", "star9"}} {
		if _, err := s.Assigned("C1", c[0], c[1]); concierge.ErrorCode(err) != concierge.ENOTFOUND {
			t.Errorf("%v: %v", c, err)
		}
	}
}

// A value given for an indicator (concierge tiers evaluate) follows the
// CSV's rules: known indicator, a number, negative only for a percentage
// or a plain number, a count whole.
func TestIndicatorValue(t *testing.T) {
	s := mustSchemes(t)
	for _, c := range []struct {
		name, value string
		want        Decimal
		msg         string
	}{
		{"assets", " 6000000 ", 6000000 * decimalScale, ""},
		{"income_growth", "-3.5", -35 * decimalScale / 10, ""},
		{"txn_count", "12", 12 * decimalScale, ""},
		{"assets", "-1", 0, "assets must not be negative, got -1"},
		{"txn_count", "1.5", 0, "txn_count is a count, got 1.5"},
		{"points", "lots", 0, `points "lots": `},
		{"shoe_size", "42", 0, `unknown indicator "shoe_size"`},
	} {
		d, err := s.IndicatorValue(c.name, c.value)
		switch {
		case c.msg == "" && (err != nil || d != c.want):
			t.Errorf("%s=%q: %v, %v; want %v", c.name, c.value, d, err, c.want)
		case c.msg != "" && (concierge.ErrorCode(err) != concierge.EINVALID || !strings.Contains(concierge.ErrorMessage(err), c.msg)):
			t.Errorf("%s=%q: %v; want invalid %q", c.name, c.value, err, c.msg)
		}
	}
}

// The tier staff see: imported data first, else the tier set by hand at
// enrollment in the consent's language, else none.
func TestCurrent(t *testing.T) {
	s := mustSchemes(t)
	a := &Assignment{Scheme: "icbc-stars", Level: "star6", Language: "en"}
	st, assigned, err := s.Current("C1", nil, a, 0)
	if err != nil || !assigned || st.Level != "star6" || st.Language != "en" {
		t.Errorf("hand-set only: %+v %v %v", st, assigned, err)
	}
	if _, _, err := s.Current("C1", nil, nil, 0); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Errorf("neither: %v, want not found", err)
	}
	if _, _, err := s.Current("C1", nil, &Assignment{Scheme: "icbc-stars", Level: "gone"}, 0); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Errorf("a level no longer in the scheme: %v, want not found", err)
	}
	m, err := ParseMonth("2024-06")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProfile(s, "C1", []Snapshot{{CustomerID: "C1", Month: m, Facts: Facts{Indicators: map[string]Decimal{"points": 2000 * decimalScale}}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	day := p.Changes[0].Date
	if st, assigned, err := s.Current("C1", p, a, day); err != nil || assigned || st.Level != "star5" {
		t.Errorf("imported and hand-set: %+v %v %v, want the imported star5", st, assigned, err)
	}
	if st, assigned, err := s.Current("C1", p, a, DateOf(time.Date(2024, 5, 15, 12, 0, 0, 0, time.UTC))); err != nil || !assigned || st.Level != "star6" {
		t.Errorf("before the imported data starts: %+v %v %v, want the hand-set star6", st, assigned, err)
	}
}

// A tier set by hand names a loaded scheme (the default one for "") and one
// of its levels, by id or name.
func TestAssign(t *testing.T) {
	s := mustSchemes(t)
	for _, c := range []struct {
		scheme, level string
		want          Assignment
		msg           string
	}{
		{"", "六星", Assignment{Scheme: s.Default, Level: "star6"}, ""},
		{"icbc-stars", "star7", Assignment{Scheme: "icbc-stars", Level: "star7"}, ""},
		{"icbc-stars", "star9", Assignment{}, `tier "star9": not a level of icbc-stars (`},
		{"nope", "star7", Assignment{}, `tier scheme "nope": no such scheme`},
	} {
		a, err := s.Assign(c.scheme, c.level)
		switch {
		case c.msg == "" && (err != nil || a != c.want):
			t.Errorf("Assign(%q, %q) = %+v, %v; want %+v", c.scheme, c.level, a, err, c.want)
		case c.msg != "" && (concierge.ErrorCode(err) != concierge.EINVALID || !strings.Contains(concierge.ErrorMessage(err), c.msg)):
			t.Errorf("Assign(%q, %q): %v; want invalid %q", c.scheme, c.level, err, c.msg)
		}
	}
}
