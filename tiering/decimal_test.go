package tiering

import (
	"errors"
	"testing"
	"time"
)

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		in   string
		want Decimal
		err  error
		str  string
	}{
		{"0", 0, nil, "0"},
		{"2000", 20_000_000, nil, "2000"},
		{"1999.99", 19_999_900, nil, "1999.99"},
		{"0.0001", 1, nil, "0.0001"},
		{"-12.5", -125_000, nil, "-12.5"},
		{"007.10", 71_000, nil, "7.1"},
		{"900000000000000", 900_000_000_000_000 * decimalScale, nil, "900000000000000"},
		{"900000000000001", 0, ErrOutOfRange, ""},
		{"1.00001", 0, ErrTooPrecise, ""},
		{"", 0, ErrNotNumber, ""},
		{"abc", 0, ErrNotNumber, ""},
		{"1,000", 0, ErrNotNumber, ""},
		{"1e6", 0, ErrNotNumber, ""},
		{".5", 0, ErrNotNumber, ""},
		{"5.", 0, ErrNotNumber, ""},
		{"+5", 0, ErrNotNumber, ""},
		{"--5", 0, ErrNotNumber, ""},
		{"¥100", 0, ErrNotNumber, ""},
	}
	for _, tt := range tests {
		got, err := ParseDecimal(tt.in)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("ParseDecimal(%q) = %v, %v; want %v, %v", tt.in, int64(got), err, int64(tt.want), tt.err)
			continue
		}
		if err == nil && got.String() != tt.str {
			t.Errorf("ParseDecimal(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
	}
}

func TestDecimalBelowThreshold(t *testing.T) {
	// The reason Decimal exists: 1999.99 must be strictly below 2000.
	a, _ := ParseDecimal("1999.99")
	b, _ := ParseDecimal("2000")
	if !(a < b) {
		t.Fatalf("1999.99 not below 2000")
	}
}

func TestMulDecimal(t *testing.T) {
	d := func(s string) Decimal {
		v, err := ParseDecimal(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct{ a, b, want string }{
		{"0.25", "90", "22.5"},
		{"0.1", "0.1", "0.01"},
		{"0.3333", "0.3333", "0.1111"}, // 0.11108889 rounds up
		{"0.0001", "0.5", "0.0001"},    // half rounds away from zero
		{"-0.0001", "0.5", "-0.0001"},
		{"1000", "1000000", "1000000000"},
		{"-0.15", "100", "-15"},
	}
	for _, tt := range tests {
		if got := mulDecimal(d(tt.a), d(tt.b)); got != d(tt.want) {
			t.Errorf("%s × %s = %s, want %s", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestDecimalJSON(t *testing.T) {
	var d Decimal
	for _, in := range []string{`1999.99`, `"1999.99"`} {
		if err := d.UnmarshalJSON([]byte(in)); err != nil || d.String() != "1999.99" {
			t.Errorf("UnmarshalJSON(%s) = %v, %v", in, d, err)
		}
	}
	if b, _ := d.MarshalJSON(); string(b) != "1999.99" {
		t.Errorf("MarshalJSON = %s", b)
	}
}

func TestDateMatchesTimePackage(t *testing.T) {
	start := time.Date(1899, 12, 25, 0, 0, 0, 0, time.UTC)
	for day := 0; day < 200*366; day += 7 {
		tm := start.AddDate(0, 0, day)
		d := DateOf(tm)
		y, m, dd := d.Civil()
		if y != tm.Year() || m != tm.Month() || dd != tm.Day() {
			t.Fatalf("%s: Civil() = %d-%d-%d", tm.Format(time.DateOnly), y, m, dd)
		}
		if d.String() != tm.Format(time.DateOnly) {
			t.Fatalf("%s: String() = %s", tm.Format(time.DateOnly), d)
		}
		if want := Date(tm.Unix()/86400 + daysTo1970); d != want {
			t.Fatalf("%s: Date = %d, want %d", tm.Format(time.DateOnly), d, want)
		}
	}
	if !Date(0).IsZero() || NewDate(1, 1, 1) != 0 {
		t.Fatal("zero Date is not 0001-01-01")
	}
}

func TestDateOfUsesLocation(t *testing.T) {
	// 23:30 UTC on 30 June is already 1 July in Beijing: the branch's date counts.
	bj := time.FixedZone("CST", 8*3600)
	at := time.Date(2024, 6, 30, 23, 30, 0, 0, time.UTC).In(bj)
	if got := DateOf(at); got != NewDate(2024, 7, 1) {
		t.Fatalf("DateOf = %s", got)
	}
}

func TestMonth(t *testing.T) {
	tests := []struct {
		in          string
		first, last string
	}{
		{"2024-02", "2024-02-01", "2024-02-29"},
		{"2023-02", "2023-02-01", "2023-02-28"},
		{"202406", "2024-06-01", "2024-06-30"},
		{"2024-12", "2024-12-01", "2024-12-31"},
	}
	for _, tt := range tests {
		m, err := ParseMonth(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if m.FirstDay().String() != tt.first || m.LastDay().String() != tt.last {
			t.Errorf("%s: first %s last %s", tt.in, m.FirstDay(), m.LastDay())
		}
	}
	m := NewMonth(2024, time.December)
	if m.Add(1).String() != "2025-01" || m.Add(-12).String() != "2023-12" {
		t.Errorf("Add: %s %s", m.Add(1), m.Add(-12))
	}
	for _, bad := range []string{"2024-13", "24-06", "2024/06", "June", "", "0000-01"} {
		if _, err := ParseMonth(bad); err == nil {
			t.Errorf("ParseMonth(%q) accepted", bad)
		}
	}
}
