package tiering

import (
	"concierge/internal/testenv"
	"strings"
	"testing"
	"time"

	"concierge"
)

// span is a run of months with the same facts.
type span struct {
	from, to string
	kv       []string
}

func history(t testing.TB, id string, spans ...span) []Snapshot {
	t.Helper()
	var out []Snapshot
	for _, s := range spans {
		from, err := ParseMonth(s.from)
		if err != nil {
			t.Fatal(err)
		}
		to, err := ParseMonth(s.to)
		if err != nil {
			t.Fatal(err)
		}
		for m := from; m <= to; m++ {
			out = append(out, Snapshot{CustomerID: id, Month: m, Facts: facts(s.kv...)})
		}
	}
	return out
}

func day(t testing.TB, s string) Date {
	t.Helper()
	d, err := ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// expect is a date and the level the customer holds on it.
type expect struct{ date, level string }

func checkLevels(t *testing.T, p *Profile, want []expect) {
	t.Helper()
	for _, w := range want {
		st, ok := p.On(day(t, w.date))
		got := "(none)"
		if ok {
			got = st.Level
		}
		if got != w.level {
			t.Errorf("%s: level %s, want %s (changes %v)", w.date, got, w.level, p.Changes)
		}
	}
}

// TestCalendar walks customers across a year or more of the shipped
// schemes' calendars: upgrades at month end (ICBC) or month start (BOC),
// downgrades only on the scheme's dates and only after the level's buffer.
func TestCalendar(t *testing.T) {
	tests := []struct {
		name   string
		scheme string
		spans  []span
		want   []expect
	}{
		{
			name:   "icbc: one month above 五星 upgrades at that month's end",
			scheme: "icbc-stars",
			spans: []span{
				{"2024-01", "2024-02", []string{"points", "600"}},
				{"2024-03", "2024-03", []string{"points", "2000"}},
				{"2024-04", "2025-03", []string{"points", "600"}},
			},
			want: []expect{
				{"2023-12-31", "(none)"},
				{"2024-01-01", "unrated"},
				{"2024-01-30", "unrated"},
				{"2024-01-31", "star4"},
				{"2024-03-30", "star4"},
				{"2024-03-31", "star5"},
				{"2024-06-30", "star5"}, // downgrade day, but March is in the last six months
				{"2024-09-30", "star5"}, // below for six months, but not a downgrade day
				{"2024-12-30", "star5"},
				{"2024-12-31", "star4"},
				{"2025-06-30", "star4"},
			},
		},
		{
			name:   "icbc: falls below in January, downgraded 30 June after six months' buffer",
			scheme: "icbc-stars",
			spans: []span{
				{"2023-07", "2023-12", []string{"points", "2500"}},
				{"2024-01", "2024-12", []string{"points", "1999.99"}},
			},
			want: []expect{
				{"2023-07-31", "star5"},
				{"2024-01-31", "star5"},
				{"2024-05-31", "star5"},
				{"2024-06-29", "star5"},
				{"2024-06-30", "star4"},
				{"2024-12-31", "star4"},
			},
		},
		{
			name:   "icbc: falls below in February, kept through 30 June, downgraded 31 December",
			scheme: "icbc-stars",
			spans: []span{
				{"2023-07", "2024-01", []string{"points", "2500"}},
				{"2024-02", "2024-12", []string{"points", "600"}},
			},
			want: []expect{
				{"2024-06-30", "star5"},
				{"2024-07-01", "star5"},
				{"2024-12-30", "star5"},
				{"2024-12-31", "star4"},
			},
		},
		{
			name:   "icbc: 六星 has a nine-month buffer",
			scheme: "icbc-stars",
			spans: []span{
				{"2023-01", "2023-12", []string{"points", "20000"}},
				{"2024-01", "2024-12", []string{"points", "3000"}},
			},
			want: []expect{
				{"2024-06-30", "star6"}, // only six months below
				{"2024-12-30", "star6"},
				{"2024-12-31", "star5"},
			},
		},
		{
			name:   "icbc: 七星 has a twelve-month buffer",
			scheme: "icbc-stars",
			spans: []span{
				{"2023-01", "2024-03", []string{"points", "90000"}},
				{"2024-04", "2025-12", []string{"points", "20000"}},
			},
			want: []expect{
				{"2023-01-31", "star7"},
				{"2024-06-30", "star7"},
				{"2024-12-31", "star7"}, // January–March 2024 are within twelve months
				{"2025-06-29", "star7"},
				{"2025-06-30", "star6"},
				{"2025-12-31", "star6"},
			},
		},
		{
			name:   "icbc: a downgrade lands on the best level of the buffer",
			scheme: "icbc-stars",
			spans: []span{
				{"2023-07", "2023-12", []string{"points", "2500"}},
				{"2024-01", "2024-03", []string{"points", "600"}},
				{"2024-04", "2024-06", []string{"points", "0"}},
			},
			want: []expect{
				{"2024-06-30", "star4"},
			},
		},
		{
			name:   "icbc: upgrades at any month end, several levels at once",
			scheme: "icbc-stars",
			spans: []span{
				{"2024-01", "2024-04", []string{"points", "10"}},
				{"2024-05", "2024-05", []string{"points", "85000"}},
			},
			want: []expect{
				{"2024-01-31", "quasi"},
				{"2024-05-30", "quasi"},
				{"2024-05-31", "star7"},
				{"2030-01-01", "star7"}, // no data after May: nothing changes
			},
		},
		{
			name:   "icbc: a month missing from the exports qualifies for nothing",
			scheme: "icbc-stars",
			spans: []span{
				{"2023-07", "2023-12", []string{"points", "2500"}},
				{"2024-07", "2024-07", []string{"points", "2500"}},
			},
			want: []expect{
				{"2024-06-30", "unrated"},
				{"2024-07-31", "star5"},
			},
		},
		{
			name:   "boc: upgrades take effect on the first of the next month",
			scheme: "boc-wealth",
			spans: []span{
				{"2024-01", "2024-02", []string{"assets", "300000"}},
				{"2024-03", "2024-03", []string{"assets", "6000000"}},
			},
			want: []expect{
				{"2024-01-31", "ordinary"},
				{"2024-02-01", "wealth"},
				{"2024-03-31", "wealth"},
				{"2024-04-01", "private-banking"},
			},
		},
		{
			name:   "boc: a tier lapses after six consecutive months below it",
			scheme: "boc-wealth",
			spans: []span{
				{"2024-01", "2024-01", []string{"assets", "1500000"}},
				{"2024-02", "2024-12", []string{"assets", "300000"}},
			},
			want: []expect{
				{"2024-02-01", "wealth-management"},
				{"2024-07-01", "wealth-management"}, // February–June: five months below
				{"2024-07-31", "wealth-management"},
				{"2024-08-01", "wealth"},
			},
		},
		{
			name:   "boc: five months below and back keeps the tier",
			scheme: "boc-wealth",
			spans: []span{
				{"2024-01", "2024-01", []string{"assets", "1500000"}},
				{"2024-02", "2024-06", []string{"assets", "300000"}},
				{"2024-07", "2024-07", []string{"assets", "1000000"}},
				{"2024-08", "2024-12", []string{"assets", "300000"}},
			},
			want: []expect{
				{"2024-08-01", "wealth-management"},
				{"2025-01-01", "wealth-management"}, // August–December: five months
			},
		},
		{
			name:   "boc: below every criterion for six months loses the tier entirely",
			scheme: "boc-wealth",
			spans: []span{
				{"2024-01", "2024-01", []string{"assets", "250000"}},
				{"2024-02", "2024-07", []string{"assets", "100", "loan_balance", "499999.99", "card_spend_12m", "99999.99"}},
			},
			want: []expect{
				{"2024-02-01", "wealth"},
				{"2024-07-31", "wealth"},
				{"2024-08-01", "ordinary"},
			},
		},
		{
			name:   "composite: quarterly downgrade review after three months",
			scheme: "composite-score",
			spans: []span{
				{"2024-01", "2024-01", []string{"assets", "6000000", "txn_count", "20", "profit", "50000", "credit_rating", "1", "overdue_count", "0", "occupation_score", "90", "income_growth", "20"}},
				{"2024-02", "2024-09", []string{"assets", "6000000", "profit", "50000", "credit_rating", "1", "txn_count", "5"}},
			},
			want: []expect{
				{"2024-01-31", "d"},
				{"2024-02-01", "a"},
				{"2024-04-01", "a"}, // review day, but January is within three months
				{"2024-06-30", "a"},
				{"2024-07-01", "b"},
			},
		},
	}
	s := mustSchemes(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewProfile(s, "C1", history(t, "C1", tt.spans...), tt.scheme)
			if err != nil {
				t.Fatal(err)
			}
			checkLevels(t, p, tt.want)
		})
	}
}

func TestProfileStatus(t *testing.T) {
	s := mustSchemes(t)
	snaps := history(t, "C7",
		span{"2024-01", "2024-02", []string{"points", "2500"}},
		span{"2024-03", "2024-03", []string{"points", "85000"}},
	)
	snaps[0].Attributes = Attributes{FormOfAddress: "李先生", Language: "zh-CN",
		RelationshipManager: RelationshipManager{ID: "E1024", Name: "李经理", Phone: "13800000000"}}
	snaps[1].Attributes = snaps[0].Attributes
	snaps[2].Attributes = snaps[0].Attributes
	snaps[2].RiskFlags = []RiskFlag{{Kind: RiskAML, Reason: "A17"}}

	p, err := NewProfile(s, "C7", snaps, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Scheme.Name != DefaultSchemeName {
		t.Fatalf("scheme = %s", p.Scheme.Name)
	}
	feb, ok := p.On(day(t, "2024-02-15"))
	if !ok || feb.Level != "star5" || feb.LevelName != "五星" || !feb.VIP || feb.HasRisk() ||
		feb.Since != day(t, "2024-01-31") || feb.DataMonth.String() != "2024-01" ||
		feb.RelationshipManager.Name != "李经理" || feb.FormOfAddress != "李先生" || feb.Language != "zh-CN" {
		t.Fatalf("February status = %+v", feb)
	}
	// The AML flag reported with March's data counts from March, before
	// March's tier takes effect at month end.
	mar, _ := p.On(day(t, "2024-03-10"))
	if mar.Level != "star5" || !mar.HasRisk() || mar.RiskFlags[0] != (RiskFlag{RiskAML, "A17"}) {
		t.Fatalf("March status = %+v", mar)
	}
	end, _ := p.At(time.Date(2024, 3, 31, 18, 0, 0, 0, time.FixedZone("CST", 8*3600)))
	if end.Level != "star7" || end.Since != day(t, "2024-03-31") || end.ServiceLevel.Priority != PriorityUrgent {
		t.Fatalf("end of March = %+v", end)
	}
	if got := p.ChangesUntil(day(t, "2024-03-30")); len(got) != 1 || got[0].To != "star5" || got[0].Kind != "upgrade" {
		t.Fatalf("changes = %+v", got)
	}
	// Callers may not reach into the profile through the returned slice.
	mar.RiskFlags[0].Reason = "X"
	if again, _ := p.On(day(t, "2024-03-10")); again.RiskFlags[0].Reason != "A17" {
		t.Fatal("status shares risk flags with the profile")
	}
}

func TestProfileSchemeChoice(t *testing.T) {
	s := mustSchemes(t)
	snaps := history(t, "C2", span{"2024-01", "2024-02", []string{"assets", "6000000"}})
	snaps[1].Scheme = "boc-wealth" // the latest snapshot's scheme applies

	p, err := NewProfile(s, "C2", snaps, "")
	if err != nil || p.Scheme.Name != "boc-wealth" {
		t.Fatalf("scheme = %v, %v", p, err)
	}
	p, err = NewProfile(s, "C2", snaps, "icbc-stars") // what-if override
	if err != nil || p.Scheme.Name != "icbc-stars" {
		t.Fatalf("override = %v, %v", p, err)
	}
	snaps[1].Scheme = "retired"
	if _, err := NewProfile(s, "C2", snaps, ""); concierge.ErrorCode(err) != concierge.EINVALID {
		t.Fatalf("unknown scheme err = %v", err)
	}
	if _, err := NewProfile(s, "C3", nil, ""); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("no data err = %v", err)
	}
}

func TestProfileRevisions(t *testing.T) {
	s := mustSchemes(t)
	snaps := history(t, "C4", span{"2024-01", "2024-01", []string{"points", "100"}})
	corrected := snaps[0]
	corrected.Revision, corrected.Facts = 2, facts("points", "3000")
	snaps[0].Revision = 1
	p, err := NewProfile(s, "C4", []Snapshot{corrected, snaps[0]}, "")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := p.On(day(t, "2024-01-31")); st.Level != "star5" {
		t.Fatalf("level = %s, want the corrected revision's star5", st.Level)
	}
}

func TestStatusRiskViews(t *testing.T) {
	st := Status{
		CustomerID: "C9", Scheme: "icbc-stars", Level: "star6", LevelName: "六星", VIP: true,
		ServiceLevel:        ServiceLevel{Priority: PriorityHigh, Greeting: "{address}您好", NotifyRM: true},
		RelationshipManager: RelationshipManager{Name: "李经理"},
		FormOfAddress:       "王女士",
		RiskFlags:           []RiskFlag{{RiskFraud, "F12"}, {RiskCredit, "C03"}},
	}
	if !st.HasRisk() {
		t.Fatal("HasRisk = false")
	}
	if (Status{}).HasRisk() {
		t.Fatal("empty status has risk")
	}
	staff := st.Staff()
	if staff.Level != "star6" || staff.Greeting != "王女士您好" || staff.RelationshipManager.Name != "李经理" {
		t.Fatalf("staff view = %+v", staff)
	}
	b := testenv.MustJSON(t, staff)
	for _, leak := range []string{"F12", "C03", "fraud", "credit", "risk"} {
		if strings.Contains(b, leak) {
			t.Errorf("staff view leaks %q: %s", leak, b)
		}
	}
	if full := testenv.MustJSON(t, st); !strings.Contains(full, `"risk_flags":[{"kind":"fraud","reason":"F12"}`) {
		t.Errorf("manager view lacks flags: %s", full)
	}
	st.FormOfAddress = ""
	st.defaultAddress = "尊敬的客户"
	if g := st.Greeting(); g != "尊敬的客户您好" {
		t.Errorf("greeting = %q", g)
	}
}

func TestStatusLogValueRedacts(t *testing.T) {
	st := Status{CustomerID: "C9", Level: "star6", FormOfAddress: "王女士",
		RelationshipManager: RelationshipManager{Name: "李经理", Phone: "13800000000"},
		RiskFlags:           []RiskFlag{{RiskAML, "A1"}}}
	got := st.LogValue().String()
	for _, leak := range []string{"王女士", "李经理", "13800000000", "A1"} {
		if strings.Contains(got, leak) {
			t.Errorf("log value %q contains %q", got, leak)
		}
	}
	if !strings.Contains(got, "C9") {
		t.Errorf("log value %q lacks the customer id", got)
	}
}

func TestChangeJSON(t *testing.T) {
	s := mustSchemes(t)
	p, err := NewProfile(s, "C1", history(t, "C1", span{"2024-06", "2024-06", []string{"points", "2000"}}), "")
	if err != nil {
		t.Fatal(err)
	}
	got := testenv.MustJSON(t, p.Changes)
	want := `[{"date":"2024-06-30","kind":"upgrade","from":"unrated","to":"star5","to_name":"五星","data_month":"2024-06"}]`
	if got != want {
		t.Fatalf("changes JSON = %s", got)
	}
	st, _ := p.On(day(t, "2024-06-01"))
	if js := testenv.MustJSON(t, st); strings.Contains(js, "since") || strings.Contains(js, "data_month") {
		t.Errorf("zero since/data_month not omitted: %s", js)
	}
}
