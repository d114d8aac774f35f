package tiering

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"concierge"
)

// Change is one step of a customer's tier history.
type Change struct {
	Date      Date   `json:"date"`
	Kind      string `json:"kind"` // "upgrade" or "downgrade"
	From      string `json:"from"`
	To        string `json:"to"`
	ToName    string `json:"to_name"`
	DataMonth Month  `json:"data_month"` // the month whose data decided it
	rank      int
}

// Profile is a customer's evaluated history under one scheme: every tier
// change the calendar produces from their snapshots, and their service
// attributes over time. A Profile answers "which tier on date D" with two
// binary searches, which is what makes the alert-path lookup cheap.
type Profile struct {
	CustomerID string
	Scheme     *Scheme
	// First and Last are the first and last months with data.
	First, Last Month
	// Changes are in date order.
	Changes []Change
	attrs   []attrSpan
}

// attrSpan holds the attributes in force from month from onwards.
type attrSpan struct {
	from  Month
	attrs Attributes
}

// NewProfile evaluates a customer's snapshots (one per month; if several
// revisions of a month are given the highest wins). The customer's scheme
// is the one named by their latest snapshot, or the default; scheme, when
// not empty, overrides both for what-if evaluations. It returns ENOTFOUND
// if there are no snapshots.
//
// The calendar, for each month M from the first with data to the last:
// on M's evaluation day (Calendar.EventDate) the customer rises to the best
// level of the last UpgradeWindowMonths months if that is higher; otherwise,
// if the day is a downgrade day, they fall to the best level of the last
// max(window, buffer of their level) months if that is lower. Months missing
// between the first and last count as qualifying for nothing: an export
// that leaves a customer out says they held nothing that month. After the
// last month with data nothing changes until more data is imported.
func NewProfile(schemes *Schemes, customerID string, snaps []Snapshot, scheme string) (*Profile, error) {
	if len(snaps) == 0 {
		return nil, concierge.Errorf(concierge.ENOTFOUND, "no tier data for customer %q", customerID)
	}
	snaps = slices.Clone(snaps)
	sort.SliceStable(snaps, func(i, j int) bool {
		if snaps[i].Month != snaps[j].Month {
			return snaps[i].Month < snaps[j].Month
		}
		return snaps[i].Revision < snaps[j].Revision
	})
	latest := snaps[:0]
	for _, s := range snaps {
		if n := len(latest); n > 0 && latest[n-1].Month == s.Month {
			latest[n-1] = s
			continue
		}
		latest = append(latest, s)
	}
	snaps = latest
	if scheme == "" {
		scheme = snaps[len(snaps)-1].Scheme
	}
	sc, err := schemes.Resolve(scheme)
	if err != nil {
		return nil, fmt.Errorf("customer %s: %w", customerID, err)
	}
	p := &Profile{CustomerID: customerID, Scheme: sc, First: snaps[0].Month, Last: snaps[len(snaps)-1].Month}

	ranks := make([]int, int(p.Last-p.First)+1)
	for _, s := range snaps {
		ranks[s.Month-p.First] = sc.rank(s.Facts)
		if n := len(p.attrs); n == 0 || !sameAttributes(p.attrs[n-1].attrs, s.Attributes) {
			p.attrs = append(p.attrs, attrSpan{from: s.Month, attrs: s.Attributes})
		}
	}
	best := func(i, n int) int {
		b := 0
		for j := max(0, i-n+1); j <= i; j++ {
			b = max(b, ranks[j])
		}
		return b
	}
	cal := sc.Calendar
	cur := 0
	for i := range ranks {
		m := p.First.Add(i)
		day := cal.EventDate(m)
		if up := best(i, cal.UpgradeWindowMonths); up > cur {
			p.Changes = append(p.Changes, sc.change(day, "upgrade", cur, up, m))
			cur = up
			continue
		}
		if !cal.DowngradesOn(day) {
			continue
		}
		if down := best(i, sc.buffer(cur)); down < cur {
			p.Changes = append(p.Changes, sc.change(day, "downgrade", cur, down, m))
			cur = down
		}
	}
	return p, nil
}

func (s *Scheme) change(d Date, kind string, from, to int, m Month) Change {
	return Change{Date: d, Kind: kind, From: s.Levels[from].ID, To: s.Levels[to].ID,
		ToName: s.Levels[to].Name, DataMonth: m, rank: to}
}

func sameAttributes(a, b Attributes) bool {
	return a.Scheme == b.Scheme && a.RelationshipManager == b.RelationshipManager &&
		a.FormOfAddress == b.FormOfAddress && a.Language == b.Language && slices.Equal(a.RiskFlags, b.RiskFlags)
}

// At returns the customer's status at the calendar date of t in t's own
// location; false if the customer has no data for that month or earlier.
func (p *Profile) At(t time.Time) (Status, bool) { return p.On(DateOf(t)) }

// On returns the customer's status on day d. The tier follows the calendar;
// the service attributes and risk flags are the latest imported for d's
// month or earlier, so a new fraud flag counts from the month it is reported.
func (p *Profile) On(d Date) (Status, bool) {
	m := d.Month()
	a := sort.Search(len(p.attrs), func(i int) bool { return p.attrs[i].from > m }) - 1
	if a < 0 {
		return Status{}, false
	}
	attrs := &p.attrs[a].attrs
	c := sort.Search(len(p.Changes), func(i int) bool { return p.Changes[i].Date > d }) - 1
	rank, since := 0, Date(0)
	if c >= 0 {
		rank, since = p.Changes[c].rank, p.Changes[c].Date
	}
	l := &p.Scheme.Levels[rank]
	st := Status{
		CustomerID:          p.CustomerID,
		Scheme:              p.Scheme.Name,
		Level:               l.ID,
		LevelName:           l.Name,
		LevelNames:          l.Names,
		Rank:                rank,
		VIP:                 l.VIP,
		ServiceLevel:        l.Service,
		RelationshipManager: attrs.RelationshipManager,
		FormOfAddress:       attrs.FormOfAddress,
		Language:            attrs.Language,
		Since:               since,
		DataMonth:           p.dataMonth(d),
		defaultAddress:      p.Scheme.DefaultAddress,
		defaultAddresses:    p.Scheme.DefaultAddresses,
	}
	if len(attrs.RiskFlags) > 0 {
		st.RiskFlags = slices.Clone(attrs.RiskFlags)
	}
	return st, true
}

// dataMonth is the latest month whose data has taken effect by day d, or
// zero if none has.
func (p *Profile) dataMonth(d Date) Month {
	m := d.Month()
	if p.Scheme.Calendar.EventDate(m) > d {
		m--
	}
	m = min(m, p.Last)
	if m < p.First {
		return 0
	}
	return m
}

// ChangesUntil returns the changes on or before day d.
func (p *Profile) ChangesUntil(d Date) []Change {
	n := sort.Search(len(p.Changes), func(i int) bool { return p.Changes[i].Date > d })
	return p.Changes[:n]
}
