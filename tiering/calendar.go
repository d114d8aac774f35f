package tiering

import (
	"fmt"
	"strconv"
	"time"
)

// Date is a civil calendar date, counted in days from 0001-01-01 so that the
// zero Date means "no date" just as the zero time.Time does. Tier changes
// happen on dates, not instants: a tier that changes on 30 June holds all day
// in the branch's own time zone.
type Date int32

// daysTo1970 is the number of days from 0001-01-01 to 1970-01-01.
const daysTo1970 = 719162

// NewDate returns the date y-m-d; out-of-range days normalise as time.Date does.
func NewDate(y int, m time.Month, d int) Date {
	return Date(daysFromCivil(y, int(m), 1) + d - 1 + daysTo1970)
}

// DateOf returns the calendar date of t in t's own location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return NewDate(y, m, d)
}

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return DateOf(t), nil
}

// Civil returns the year, month and day of d.
func (d Date) Civil() (int, time.Month, int) {
	y, m, day := civilFromDays(int(d) - daysTo1970)
	return y, time.Month(m), day
}

// Month returns the calendar month d falls in.
func (d Date) Month() Month {
	y, m, _ := d.Civil()
	return NewMonth(y, m)
}

// IsZero reports whether d is unset.
func (d Date) IsZero() bool { return d == 0 }

func (d Date) String() string {
	y, m, day := d.Civil()
	return fmt.Sprintf("%04d-%02d-%02d", y, int(m), day)
}

// MarshalJSON writes "YYYY-MM-DD".
func (d Date) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads "YYYY-MM-DD".
func (d *Date) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("date: %w", err)
	}
	v, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Month is a calendar month, counted from January of year 0. Monthly
// snapshots and tier calendars step by months, and plain integers make the
// six-month windows simple arithmetic.
type Month int32

// NewMonth returns month m of year y.
func NewMonth(y int, m time.Month) Month { return Month(y*12 + int(m) - 1) }

// ParseMonth parses YYYY-MM, or YYYYMM as core-banking exports often write it.
func ParseMonth(s string) (Month, error) {
	layout := "2006-01"
	if len(s) == 6 {
		layout = "200601"
	}
	t, err := time.Parse(layout, s)
	if err != nil || t.Year() < 1900 {
		return 0, fmt.Errorf("month %q: want YYYY-MM", s)
	}
	return NewMonth(t.Year(), t.Month()), nil
}

// Year returns the year of m.
func (m Month) Year() int { return int(m) / 12 }

// Mon returns the month of the year of m.
func (m Month) Mon() time.Month { return time.Month(int(m)%12 + 1) }

// Add returns the month n months after m (before, for negative n).
func (m Month) Add(n int) Month { return m + Month(n) }

// FirstDay returns the first day of m.
func (m Month) FirstDay() Date { return NewDate(m.Year(), m.Mon(), 1) }

// LastDay returns the last day of m.
func (m Month) LastDay() Date { return m.Add(1).FirstDay() - 1 }

func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year(), int(m.Mon())) }

// MarshalJSON writes "YYYY-MM".
func (m Month) MarshalJSON() ([]byte, error) { return []byte(`"` + m.String() + `"`), nil }

// UnmarshalJSON reads "YYYY-MM".
func (m *Month) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("month: %w", err)
	}
	v, err := ParseMonth(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// daysFromCivil and civilFromDays are Howard Hinnant's algorithms: exact for
// the proleptic Gregorian calendar and free of allocations, which keeps the
// alert-path lookup cheap.
func daysFromCivil(y, m, d int) int {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	doy := (153*((m+9)%12)+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func civilFromDays(z int) (int, int, int) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
