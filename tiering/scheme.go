package tiering

import "slices"

// Scheme is one bank's tiering rules: ordered levels, what qualifies for
// each, when tiers change, and what each level earns. Schemes are loaded
// from YAML (see ParseScheme) and never change once loaded.
type Scheme struct {
	Name        string `json:"name"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	// Source is "preset" or the file the scheme was read from.
	Source string `json:"source"`
	// DefaultAddress replaces "{address}" in greetings when a customer has
	// no preferred form of address.
	DefaultAddress string `json:"default_address,omitempty"`
	// DefaultAddresses are DefaultAddress in other languages, by tag.
	DefaultAddresses map[string]string `json:"default_addresses,omitempty"`
	// Indicators are the scheme's own indicators beyond BaseIndicators.
	Indicators []Indicator `json:"indicators,omitempty"`
	Score      *ScoreModel `json:"score,omitempty"`
	Calendar   Calendar    `json:"calendar"`
	Levels     []Level     `json:"levels"`
}

// Level is one tier. Levels[0] of a scheme is the floor everyone holds
// without qualifying; each higher level needs one of its Qualify conditions.
type Level struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Names are Name in other languages, by tag ("en": "Five stars").
	Names                 map[string]string `json:"names,omitempty"`
	VIP                   bool              `json:"vip"`
	Qualify               []Condition       `json:"qualify,omitempty"`
	Service               ServiceLevel      `json:"service_level"`
	DowngradeBufferMonths int               `json:"downgrade_buffer_months"`
}

// Condition is one way to qualify for a level. Exactly one of Indicator,
// Card, PrivateBanking and All is set.
type Condition struct {
	Indicator string `json:"indicator,omitempty"`
	// Bounds on Indicator; every bound given must hold. AtLeast is the
	// inclusive lower bound of the bank's rules: [2000, 10000) is five stars.
	AtLeast *Decimal `json:"at_least,omitempty"`
	Above   *Decimal `json:"above,omitempty"`
	Below   *Decimal `json:"below,omitempty"`
	AtMost  *Decimal `json:"at_most,omitempty"`
	// Card qualifies holders of that card product (e.g. credit_platinum).
	Card string `json:"card,omitempty"`
	// PrivateBanking qualifies holders of a private-banking agreement.
	PrivateBanking bool `json:"private_banking,omitempty"`
	// All qualifies when every nested condition holds.
	All []Condition `json:"all,omitempty"`
}

// Effective says on which day a month's data changes tiers.
type Effective string

// Effective days. MonthEnd: the month's last day (ICBC rates stars at month
// end). MonthStart: the first day of the next month (BOC's tiers change at
// the start of a calendar month).
const (
	EffectiveMonthEnd   Effective = "month_end"
	EffectiveMonthStart Effective = "month_start"
)

// Calendar is when a scheme upgrades and downgrades.
type Calendar struct {
	Effective Effective `json:"effective"`
	// UpgradeWindowMonths: on every evaluation day a customer rises to the
	// best level any of the last N months of data qualifies for.
	UpgradeWindowMonths int `json:"upgrade_window_months"`
	// DowngradeMonths are the months whose evaluation day may downgrade
	// (6 and 12 with month_end are 30 June and 31 December); empty means
	// every month.
	DowngradeMonths []int `json:"downgrade_months,omitempty"`
	// DowngradeBufferMonths is the default for levels that set none.
	DowngradeBufferMonths int `json:"downgrade_buffer_months"`
}

// EventDate is the day data of month m takes effect.
func (c Calendar) EventDate(m Month) Date {
	if c.Effective == EffectiveMonthStart {
		return m.Add(1).FirstDay()
	}
	return m.LastDay()
}

// DowngradesOn reports whether an evaluation on day d may downgrade.
func (c Calendar) DowngradesOn(d Date) bool {
	if len(c.DowngradeMonths) == 0 {
		return true
	}
	_, m, _ := d.Civil()
	return slices.Contains(c.DowngradeMonths, int(m))
}

// ScoreModel computes a composite score from weighted, banded indicators
// (a scorecard): each factor maps its indicator to points by bands, and the
// score is the weighted sum. The score is then an indicator named Name that
// level conditions can test.
type ScoreModel struct {
	Name    string   `json:"name"`
	Factors []Factor `json:"factors"`
}

// Factor is one weighted term of a ScoreModel.
type Factor struct {
	Indicator string `json:"indicator"`
	// Group sums factors for reporting: contribution, risk, potential.
	Group  string  `json:"group,omitempty"`
	Weight Decimal `json:"weight"`
	// Bands are ascending; a value scores the Score of the highest band
	// whose AtLeast it reaches, 0 below the first.
	Bands []Band `json:"bands"`
	// Missing is scored when the customer has no value for Indicator.
	Missing Decimal `json:"missing"`
}

// Band is one step of a factor's scoring table.
type Band struct {
	AtLeast Decimal `json:"at_least"`
	Score   Decimal `json:"score"`
}

func (f Factor) points(facts Facts) Decimal {
	v, ok := facts.Indicators[f.Indicator]
	if !ok {
		return f.Missing
	}
	var p Decimal
	for _, b := range f.Bands {
		if v < b.AtLeast {
			break
		}
		p = b.Score
	}
	return p
}

// compute returns the score and, when groups is non-nil, adds each group's
// share to it.
func (m *ScoreModel) compute(f Facts, groups map[string]Decimal) Decimal {
	var total Decimal
	for _, fa := range m.Factors {
		v := mulDecimal(fa.Weight, fa.points(f))
		total += v
		if groups != nil && fa.Group != "" {
			groups[fa.Group] += v
		}
	}
	return total
}

// Rating is what one month's facts earn under a scheme, before the calendar
// decides when that takes effect.
type Rating struct {
	Scheme       string       `json:"scheme"`
	Level        string       `json:"level"`
	LevelName    string       `json:"level_name"`
	Rank         int          `json:"rank"`
	VIP          bool         `json:"vip"`
	ServiceLevel ServiceLevel `json:"service_level"`
	// Score and ScoreGroups are set for schemes with a ScoreModel.
	Score       *Decimal           `json:"score,omitempty"`
	ScoreGroups map[string]Decimal `json:"score_groups,omitempty"`
}

// Rate returns the highest level f qualifies for.
func (s *Scheme) Rate(f Facts) Rating {
	var score Decimal
	var groups map[string]Decimal
	if s.Score != nil {
		groups = map[string]Decimal{}
		score = s.Score.compute(f, groups)
	}
	r := s.rankWith(f, score)
	l := s.Levels[r]
	rt := Rating{Scheme: s.Name, Level: l.ID, LevelName: l.Name, Rank: r, VIP: l.VIP, ServiceLevel: l.Service}
	if s.Score != nil {
		rt.Score, rt.ScoreGroups = &score, groups
	}
	return rt
}

// rank is Rate without the report, for the calendar's month-by-month walk.
func (s *Scheme) rank(f Facts) int {
	var score Decimal
	if s.Score != nil {
		score = s.Score.compute(f, nil)
	}
	return s.rankWith(f, score)
}

func (s *Scheme) rankWith(f Facts, score Decimal) int {
	for i := len(s.Levels) - 1; i > 0; i-- {
		for _, c := range s.Levels[i].Qualify {
			if s.holds(c, f, score) {
				return i
			}
		}
	}
	return 0
}

func (s *Scheme) holds(c Condition, f Facts, score Decimal) bool {
	switch {
	case c.Indicator != "":
		var v Decimal
		if s.Score != nil && c.Indicator == s.Score.Name {
			v = score
		} else {
			var ok bool
			if v, ok = f.Indicators[c.Indicator]; !ok {
				return false
			}
		}
		return (c.AtLeast == nil || v >= *c.AtLeast) && (c.Above == nil || v > *c.Above) &&
			(c.Below == nil || v < *c.Below) && (c.AtMost == nil || v <= *c.AtMost)
	case c.Card != "":
		return f.HasCard(c.Card)
	case c.PrivateBanking:
		return f.PrivateBanking
	case len(c.All) > 0:
		for _, n := range c.All {
			if !s.holds(n, f, score) {
				return false
			}
		}
		return true
	}
	return false
}

// Level returns the level with the given id.
func (s *Scheme) Level(id string) (Level, bool) {
	for _, l := range s.Levels {
		if l.ID == id {
			return l, true
		}
	}
	return Level{}, false
}

// LevelNamed returns the level with the given id or, failing that, display
// name: what an operator types at enrollment (--tier gold or --tier 金卡).
func (s *Scheme) LevelNamed(idOrName string) (Level, bool) {
	if l, ok := s.Level(idOrName); ok {
		return l, true
	}
	for _, l := range s.Levels {
		if l.Name == idOrName {
			return l, true
		}
	}
	return Level{}, false
}

// buffer is the number of months of data a downgrade from level r looks
// back over: never less than the upgrade window, or the next upgrade would
// undo the downgrade at once.
func (s *Scheme) buffer(r int) int {
	return max(s.Levels[r].DowngradeBufferMonths, s.Calendar.UpgradeWindowMonths)
}
