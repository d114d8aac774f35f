package tiering

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// SchemeError is a scheme file that cannot be used, with where and why, so
// an operator can fix it without reading code.
type SchemeError struct {
	File   string
	Line   int // 0 when the problem is not on one line
	Reason string
}

func (e *SchemeError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason)
}

// lineError is a problem found while decoding, before the file name is known.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// withPrefix adds context to a lineError's message, keeping its line.
func withPrefix(prefix string, err error) error {
	var le *lineError
	if errors.As(err, &le) {
		return &lineError{line: le.line, msg: prefix + ": " + le.msg}
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

func lineErrorf(line int, format string, args ...any) error {
	return &lineError{line: line, msg: fmt.Sprintf(format, args...)}
}

var (
	schemeNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	identRE      = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	levelIDRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	cardRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

// Limits that keep score arithmetic inside int64 (see mulDecimal) and
// catch typos such as a 500-month buffer.
const (
	maxWeight      = 1000
	maxBandScore   = 1_000_000
	maxFactors     = 64
	maxWindow      = 24
	maxBufferMonth = 60
)

// ParseScheme reads one scheme from YAML. file names the source in errors,
// which are *SchemeError values carrying the line of the offending entry.
func ParseScheme(file string, data []byte) (*Scheme, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, schemeError(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, &SchemeError{File: file, Reason: "empty file"}
	}
	var raw rawScheme
	if err := doc.Content[0].Decode(&raw); err != nil {
		return nil, schemeError(file, err)
	}
	s, err := raw.build()
	if err != nil {
		return nil, schemeError(file, err)
	}
	s.Source = file
	return s, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// schemeError turns yaml.v3's and our own errors into a *SchemeError.
func schemeError(file string, err error) error {
	var le *lineError
	if errors.As(err, &le) {
		return &SchemeError{File: file, Line: le.line, Reason: le.msg}
	}
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &SchemeError{File: file, Line: line, Reason: readableTypeError(m[2])}
	}
	return &SchemeError{File: file, Reason: strings.TrimPrefix(msg, "yaml: ")}
}

var typeErrRE = regexp.MustCompile("^cannot unmarshal !!\\w+ (`.*`) into (.*)$")

// readableTypeError replaces Go type names in yaml.v3's messages with what
// the operator should have written.
func readableTypeError(msg string) string {
	m := typeErrRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := "a mapping"
	switch t := m[2]; {
	case strings.HasPrefix(t, "[]"):
		want = "a list"
	case t == "int":
		want = "a whole number"
	case t == "bool":
		want = "true or false"
	case t == "string":
		want = "text"
	}
	return fmt.Sprintf("%s should be %s", m[1], want)
}

// strictDecode decodes a mapping into v (a pointer to a struct with yaml
// tags), refusing keys v does not have: a misspelt "at_lest" must not
// silently drop a threshold. It records the node's line in *line.
func strictDecode(n *yaml.Node, line *int, v any) error {
	*line = n.Line
	if n.Kind == yaml.MappingNode {
		allowed := yamlKeys(reflect.TypeOf(v).Elem())
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !slices.Contains(allowed, k.Value) {
				return lineErrorf(k.Line, "unknown field %q (known: %s)", k.Value, strings.Join(allowed, ", "))
			}
		}
	}
	return n.Decode(v)
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

type rawScheme struct {
	Name           string `yaml:"name"`
	Title          string `yaml:"title"`
	Description    string `yaml:"description"`
	DefaultAddress string `yaml:"default_address"`
	// DefaultAddresses by language tag: default_addresses: {en: Valued customer}.
	DefaultAddresses map[string]string `yaml:"default_addresses"`
	Indicators       []rawIndicator    `yaml:"indicators"`
	Score            *rawScore         `yaml:"score"`
	Calendar         *rawCalendar      `yaml:"calendar"`
	Levels           []rawLevel        `yaml:"levels"`
	line             int
}

func (r *rawScheme) UnmarshalYAML(n *yaml.Node) error {
	type plain rawScheme
	return strictDecode(n, &r.line, (*plain)(r))
}

type rawIndicator struct {
	Name  string `yaml:"name"`
	Title string `yaml:"title"`
	Unit  string `yaml:"unit"`
	line  int
}

func (r *rawIndicator) UnmarshalYAML(n *yaml.Node) error {
	type plain rawIndicator
	return strictDecode(n, &r.line, (*plain)(r))
}

type rawScore struct {
	Name    string      `yaml:"name"`
	Factors []rawFactor `yaml:"factors"`
	line    int
}

func (r *rawScore) UnmarshalYAML(n *yaml.Node) error {
	type plain rawScore
	return strictDecode(n, &r.line, (*plain)(r))
}

type rawFactor struct {
	Indicator string    `yaml:"indicator"`
	Group     string    `yaml:"group"`
	Weight    *Decimal  `yaml:"weight"`
	Missing   *Decimal  `yaml:"missing"`
	Bands     []rawBand `yaml:"bands"`
	line      int
}

func (r *rawFactor) UnmarshalYAML(n *yaml.Node) error {
	type plain rawFactor
	return strictDecode(n, &r.line, (*plain)(r))
}

type rawBand struct {
	AtLeast *Decimal `yaml:"at_least"`
	Score   *Decimal `yaml:"score"`
	line    int
}

func (r *rawBand) UnmarshalYAML(n *yaml.Node) error {
	type plain rawBand
	return strictDecode(n, &r.line, (*plain)(r))
}

type rawCalendar struct {
	Effective             string `yaml:"effective"`
	UpgradeWindowMonths   *int   `yaml:"upgrade_window_months"`
	DowngradeMonths       []int  `yaml:"downgrade_months"`
	DowngradeBufferMonths *int   `yaml:"downgrade_buffer_months"`
	line                  int
}

func (r *rawCalendar) UnmarshalYAML(n *yaml.Node) error {
	type plain rawCalendar
	return strictDecode(n, &r.line, (*plain)(r))
}

type rawLevel struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Names by language tag, for screens in other languages: names: {en: Five stars}.
	Names                 map[string]string `yaml:"names"`
	VIP                   bool              `yaml:"vip"`
	Qualify               []rawCondition    `yaml:"qualify"`
	Service               *rawService       `yaml:"service"`
	DowngradeBufferMonths *int              `yaml:"downgrade_buffer_months"`
	line                  int
}

func (r *rawLevel) UnmarshalYAML(n *yaml.Node) error {
	type plain rawLevel
	return strictDecode(n, &r.line, (*plain)(r))
}

type rawCondition struct {
	Indicator      string         `yaml:"indicator"`
	AtLeast        *Decimal       `yaml:"at_least"`
	Above          *Decimal       `yaml:"above"`
	Below          *Decimal       `yaml:"below"`
	AtMost         *Decimal       `yaml:"at_most"`
	Card           string         `yaml:"card"`
	PrivateBanking *bool          `yaml:"private_banking"`
	All            []rawCondition `yaml:"all"`
	line           int
}

func (r *rawCondition) UnmarshalYAML(n *yaml.Node) error {
	type plain rawCondition
	return strictDecode(n, &r.line, (*plain)(r))
}

type rawService struct {
	Priority string `yaml:"priority"`
	Greeting string `yaml:"greeting"`
	// Greetings by the customer's language tag: greetings: {en: "Welcome, {address}"}.
	Greetings map[string]string `yaml:"greetings"`
	Lane      string            `yaml:"lane"`
	Room      string            `yaml:"room"`
	NotifyRM  bool              `yaml:"notify_rm"`
	Cooldown  string            `yaml:"cooldown"`
	// EscalateAfter is a duration, or "never" for a tier whose alerts are
	// never raised to the manager.
	EscalateAfter string `yaml:"escalate_after"`
	line          int
}

func (r *rawService) UnmarshalYAML(n *yaml.Node) error {
	type plain rawService
	return strictDecode(n, &r.line, (*plain)(r))
}

// build validates the raw scheme and converts it.
func (r *rawScheme) build() (*Scheme, error) {
	if !schemeNameRE.MatchString(r.Name) {
		return nil, lineErrorf(r.line, "name %q must be lowercase letters, digits, '.', '_' or '-'", r.Name)
	}
	s := &Scheme{Name: r.Name, Title: r.Title, Description: strings.TrimSpace(r.Description), DefaultAddress: r.DefaultAddress}
	var err error
	if s.DefaultAddresses, err = translations(r.DefaultAddresses); err != nil {
		return nil, lineErrorf(r.line, "default_addresses: %v", err)
	}

	known := map[string]bool{}
	for _, b := range BaseIndicators {
		known[b.Name] = true
	}
	for _, ri := range r.Indicators {
		switch {
		case !identRE.MatchString(ri.Name):
			return nil, lineErrorf(ri.line, "indicator name %q must be lowercase letters, digits or '_'", ri.Name)
		case known[ri.Name]:
			return nil, lineErrorf(ri.line, "indicator %q is already defined", ri.Name)
		case slices.Contains(reservedColumns, ri.Name):
			return nil, lineErrorf(ri.line, "indicator %q clashes with a CSV column of the same name", ri.Name)
		case !slices.Contains(units, Unit(ri.Unit)):
			return nil, lineErrorf(ri.line, "indicator %q: unit %q is not one of %v", ri.Name, ri.Unit, units)
		}
		known[ri.Name] = true
		s.Indicators = append(s.Indicators, Indicator{Name: ri.Name, Title: ri.Title, Unit: Unit(ri.Unit)})
	}

	if r.Score != nil {
		sm, err := r.Score.build(known)
		if err != nil {
			return nil, err
		}
		s.Score = sm
		known[sm.Name] = true
	}

	cal, err := r.Calendar.build(r.line)
	if err != nil {
		return nil, err
	}
	s.Calendar = cal

	if len(r.Levels) < 2 {
		return nil, lineErrorf(r.line, "levels: a scheme needs at least two levels, lowest first")
	}
	ids := map[string]int{}
	for i, rl := range r.Levels {
		l, err := rl.build(i, known, cal.DowngradeBufferMonths)
		if err != nil {
			return nil, err
		}
		if prev, dup := ids[l.ID]; dup {
			return nil, lineErrorf(rl.line, "level id %q already used on line %d", l.ID, prev)
		}
		ids[l.ID] = rl.line
		s.Levels = append(s.Levels, l)
	}
	return s, nil
}

func (r *rawScore) build(known map[string]bool) (*ScoreModel, error) {
	switch {
	case !identRE.MatchString(r.Name):
		return nil, lineErrorf(r.line, "score name %q must be lowercase letters, digits or '_'", r.Name)
	case known[r.Name] || slices.Contains(reservedColumns, r.Name):
		return nil, lineErrorf(r.line, "score name %q clashes with an indicator or CSV column", r.Name)
	case len(r.Factors) == 0 || len(r.Factors) > maxFactors:
		return nil, lineErrorf(r.line, "score needs 1 to %d factors", maxFactors)
	}
	m := &ScoreModel{Name: r.Name}
	for _, rf := range r.Factors {
		if !known[rf.Indicator] {
			return nil, lineErrorf(rf.line, "factor: unknown indicator %q (declare it under indicators)", rf.Indicator)
		}
		if rf.Weight == nil {
			return nil, lineErrorf(rf.line, "factor %q: weight is required", rf.Indicator)
		}
		if *rf.Weight > DecimalFromInt(maxWeight) || *rf.Weight < -DecimalFromInt(maxWeight) {
			return nil, lineErrorf(rf.line, "factor %q: weight must be within ±%d", rf.Indicator, maxWeight)
		}
		f := Factor{Indicator: rf.Indicator, Group: rf.Group, Weight: *rf.Weight}
		if rf.Missing != nil {
			if !inBand(*rf.Missing) {
				return nil, lineErrorf(rf.line, "factor %q: missing must be within ±%d", rf.Indicator, maxBandScore)
			}
			f.Missing = *rf.Missing
		}
		if len(rf.Bands) == 0 {
			return nil, lineErrorf(rf.line, "factor %q: bands are required", rf.Indicator)
		}
		for i, rb := range rf.Bands {
			switch {
			case rb.AtLeast == nil || rb.Score == nil:
				return nil, lineErrorf(rb.line, "band needs at_least and score")
			case i > 0 && *rb.AtLeast <= f.Bands[i-1].AtLeast:
				return nil, lineErrorf(rb.line, "band at_least %s must be above the previous band's %s", *rb.AtLeast, f.Bands[i-1].AtLeast)
			case !inBand(*rb.Score):
				return nil, lineErrorf(rb.line, "band score must be within ±%d", maxBandScore)
			}
			f.Bands = append(f.Bands, Band{AtLeast: *rb.AtLeast, Score: *rb.Score})
		}
		m.Factors = append(m.Factors, f)
	}
	return m, nil
}

func inBand(d Decimal) bool {
	return d <= DecimalFromInt(maxBandScore) && d >= -DecimalFromInt(maxBandScore)
}

func (r *rawCalendar) build(schemeLine int) (Calendar, error) {
	c := Calendar{Effective: EffectiveMonthEnd, UpgradeWindowMonths: 1}
	if r == nil {
		return c, nil
	}
	switch Effective(r.Effective) {
	case "":
	case EffectiveMonthEnd, EffectiveMonthStart:
		c.Effective = Effective(r.Effective)
	default:
		return c, lineErrorf(r.line, "calendar: effective %q is not month_end or month_start", r.Effective)
	}
	if r.UpgradeWindowMonths != nil {
		if *r.UpgradeWindowMonths < 1 || *r.UpgradeWindowMonths > maxWindow {
			return c, lineErrorf(r.line, "calendar: upgrade_window_months must be 1 to %d", maxWindow)
		}
		c.UpgradeWindowMonths = *r.UpgradeWindowMonths
	}
	for _, m := range r.DowngradeMonths {
		if m < 1 || m > 12 || slices.Contains(c.DowngradeMonths, m) {
			return c, lineErrorf(r.line, "calendar: downgrade_months must be distinct months 1 to 12, got %d", m)
		}
		c.DowngradeMonths = append(c.DowngradeMonths, m)
	}
	slices.Sort(c.DowngradeMonths)
	if r.DowngradeBufferMonths != nil {
		if *r.DowngradeBufferMonths < 0 || *r.DowngradeBufferMonths > maxBufferMonth {
			return c, lineErrorf(r.line, "calendar: downgrade_buffer_months must be 0 to %d", maxBufferMonth)
		}
		c.DowngradeBufferMonths = *r.DowngradeBufferMonths
	}
	return c, nil
}

func (r *rawLevel) build(index int, known map[string]bool, defaultBuffer int) (Level, error) {
	if !levelIDRE.MatchString(r.ID) {
		return Level{}, lineErrorf(r.line, "level id %q must be lowercase letters, digits, '_' or '-'", r.ID)
	}
	if strings.TrimSpace(r.Name) == "" {
		return Level{}, lineErrorf(r.line, "level %q: name is required", r.ID)
	}
	l := Level{ID: r.ID, Name: r.Name, VIP: r.VIP, DowngradeBufferMonths: defaultBuffer}
	names, err := translations(r.Names)
	if err != nil {
		return l, lineErrorf(r.line, "level %q: names: %v", r.ID, err)
	}
	l.Names = names
	if index == 0 && len(r.Qualify) > 0 {
		return l, lineErrorf(r.line, "level %q: the first level is the floor everyone holds and takes no qualify", r.ID)
	}
	if index > 0 && len(r.Qualify) == 0 {
		return l, lineErrorf(r.line, "level %q: qualify needs at least one condition", r.ID)
	}
	for _, rc := range r.Qualify {
		c, err := rc.build(known)
		if err != nil {
			return l, withPrefix(fmt.Sprintf("level %q", r.ID), err)
		}
		l.Qualify = append(l.Qualify, c)
	}
	if r.DowngradeBufferMonths != nil {
		if *r.DowngradeBufferMonths < 0 || *r.DowngradeBufferMonths > maxBufferMonth {
			return l, lineErrorf(r.line, "level %q: downgrade_buffer_months must be 0 to %d", r.ID, maxBufferMonth)
		}
		l.DowngradeBufferMonths = *r.DowngradeBufferMonths
	}
	sl, err := r.Service.build()
	if err != nil {
		return l, withPrefix(fmt.Sprintf("level %q", r.ID), err)
	}
	l.Service = sl
	return l, nil
}

func (r *rawCondition) build(known map[string]bool) (Condition, error) {
	kinds := 0
	for _, set := range []bool{r.Indicator != "", r.Card != "", r.PrivateBanking != nil, r.All != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return Condition{}, lineErrorf(r.line, "a condition needs exactly one of indicator, card, private_banking or all")
	}
	bounds := r.AtLeast != nil || r.Above != nil || r.Below != nil || r.AtMost != nil
	switch {
	case r.Indicator != "":
		if !known[r.Indicator] {
			return Condition{}, lineErrorf(r.line, "unknown indicator %q (declare it under indicators)", r.Indicator)
		}
		c := Condition{Indicator: r.Indicator, AtLeast: r.AtLeast, Above: r.Above, Below: r.Below, AtMost: r.AtMost}
		if !bounds {
			return c, lineErrorf(r.line, "indicator %q needs at_least, above, below or at_most", r.Indicator)
		}
		if r.AtLeast != nil && r.Above != nil || r.Below != nil && r.AtMost != nil {
			return c, lineErrorf(r.line, "indicator %q: give at most one lower bound (at_least or above) and one upper bound (below or at_most)", r.Indicator)
		}
		lo, hi := c.AtLeast, c.AtMost
		if c.Above != nil {
			lo = c.Above
		}
		if c.Below != nil {
			hi = c.Below
		}
		if lo != nil && hi != nil && (*lo > *hi || *lo == *hi && (c.Above != nil || c.Below != nil)) {
			return c, lineErrorf(r.line, "indicator %q: the bounds leave no value that qualifies", r.Indicator)
		}
		return c, nil
	case bounds:
		return Condition{}, lineErrorf(r.line, "at_least, above, below and at_most apply to an indicator")
	case r.Card != "":
		if !cardRE.MatchString(r.Card) {
			return Condition{}, lineErrorf(r.line, "card %q must be lowercase letters, digits, '_' or '-'", r.Card)
		}
		return Condition{Card: r.Card}, nil
	case r.PrivateBanking != nil:
		if !*r.PrivateBanking {
			return Condition{}, lineErrorf(r.line, "private_banking: false qualifies no one; use true")
		}
		return Condition{PrivateBanking: true}, nil
	default:
		if len(r.All) == 0 {
			return Condition{}, lineErrorf(r.line, "all needs at least one condition")
		}
		c := Condition{}
		for _, rn := range r.All {
			n, err := rn.build(known)
			if err != nil {
				return c, err
			}
			c.All = append(c.All, n)
		}
		return c, nil
	}
}

func (r *rawService) build() (ServiceLevel, error) {
	s := ServiceLevel{Priority: PriorityNone}
	if r == nil {
		return s, nil
	}
	if r.Priority != "" {
		if Priority(r.Priority).Rank() < 0 {
			return s, lineErrorf(r.line, "service: priority %q is not one of %v", r.Priority, priorities)
		}
		s.Priority = Priority(r.Priority)
	}
	if r.Cooldown != "" {
		d, err := time.ParseDuration(r.Cooldown)
		if err != nil || d < 0 {
			return s, lineErrorf(r.line, "service: cooldown %q is not a duration such as 30m or 4h", r.Cooldown)
		}
		s.Cooldown = Duration(d)
	}
	switch r.EscalateAfter {
	case "":
	case "never":
		s.EscalateAfter = NeverEscalate
	default:
		d, err := time.ParseDuration(r.EscalateAfter)
		if err != nil || d <= 0 {
			return s, lineErrorf(r.line, `service: escalate_after %q is neither a positive duration such as 90s or 5m nor "never"`, r.EscalateAfter)
		}
		s.EscalateAfter = Duration(d)
	}
	s.Greeting, s.Lane, s.Room, s.NotifyRM = r.Greeting, r.Lane, r.Room, r.NotifyRM
	g, err := translations(r.Greetings)
	if err != nil {
		return s, lineErrorf(r.line, "service: greetings: %v", err)
	}
	s.Greetings = g
	return s, nil
}
