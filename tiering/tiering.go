// Package tiering tells staff who an arriving customer is to the bank: the
// tier the bank's own rules give them (ICBC-style stars, BOC-style wealth
// tiers, private-banking thresholds, generic classes, composite scores), the
// service level that tier earns, and any credit, fraud or AML flags.
//
// Tier schemes are data: YAML files with ordered levels, qualifying
// conditions, a calendar of upgrades and downgrades with buffers, and a
// service level per level (see docs/tiering.md). Customers' monthly snapshots
// of indicators come from core-banking CSV exports and are kept with their
// history; a customer's effective tier on a date is computed from that
// history by the scheme's calendar, deterministically for the date, and
// served to the alert path from an in-memory Cache.
//
// The package is plain Go: storage lives behind Store, and time is always
// passed in, never read from the clock.
package tiering

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// DefaultSchemeName is the scheme used when neither the configuration nor a
// customer's snapshot names one.
const DefaultSchemeName = "icbc-stars"

// Priority is how urgently staff are alerted to an arrival.
type Priority string

// Priorities, lowest first. PriorityNone records the visit without alerting
// staff, so ordinary customers never flood the lobby tablets.
const (
	PriorityNone   Priority = "none"
	PriorityLow    Priority = "low"
	PriorityNormal Priority = "normal"
	PriorityHigh   Priority = "high"
	PriorityUrgent Priority = "urgent"
)

var priorities = []Priority{PriorityNone, PriorityLow, PriorityNormal, PriorityHigh, PriorityUrgent}

// Rank orders priorities: 0 for none up to 4 for urgent, -1 if unknown.
func (p Priority) Rank() int { return slices.Index(priorities, p) }

// Duration is a time.Duration that marshals to JSON as text ("2h0m0s"),
// which people reading evaluate output can understand, unlike nanoseconds.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as Go duration text, and NeverEscalate
// (the only negative Duration) as "never".
func (d Duration) MarshalJSON() ([]byte, error) {
	if d < 0 {
		return []byte(`"never"`), nil
	}
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// NeverEscalate is ServiceLevel.EscalateAfter for a tier whose unclaimed
// alerts are never raised to the branch manager.
const NeverEscalate Duration = -1

// ServiceLevel is what a tier earns at the branch.
type ServiceLevel struct {
	Priority Priority `json:"priority"`
	// Greeting is said or shown to the customer; "{address}" stands for
	// the customer's preferred form of address.
	Greeting string `json:"greeting,omitempty"`
	// Greetings are Greeting in other languages, by tag; the customer's
	// language picks one (Status.Greeting).
	Greetings map[string]string `json:"greetings,omitempty"`
	Lane      string            `json:"lane,omitempty"` // counter or queue to offer
	Room      string            `json:"room,omitempty"` // room to escort the customer to
	NotifyRM  bool              `json:"notify_rm"`      // tell the relationship manager too
	// Cooldown is the least time between two alerts for the same customer.
	Cooldown Duration `json:"cooldown"`
	// EscalateAfter is how long an alert may stay unclaimed before it is
	// raised to the branch manager: 0 takes the branch's alerts.escalate_after,
	// NeverEscalate turns escalation off for the tier.
	EscalateAfter Duration `json:"escalate_after,omitempty"`
}

// Alerts reports whether an arrival at this level alerts staff at all.
func (s ServiceLevel) Alerts() bool { return s.Priority.Rank() > 0 }

// AlertPriority is the priority as alerts carry it, 1 for the most urgent:
// urgent..none rank 4..0 here and become 1..5 (an unknown one 5).
func (s ServiceLevel) AlertPriority() int { return 5 - max(0, s.Priority.Rank()) }

// Place is where staff take the customer: the room when the level has one
// (a VIP room), else the lane.
func (s ServiceLevel) Place() string {
	if s.Room != "" {
		return s.Room
	}
	return s.Lane
}

// RiskKind is the kind of a core-banking risk flag.
type RiskKind string

// Risk kinds the import accepts.
const (
	RiskCredit RiskKind = "credit"
	RiskFraud  RiskKind = "fraud"
	RiskAML    RiskKind = "aml"
)

// RiskFlag marks a customer the branch manager must know about on arrival.
// Reason is core banking's reason code, never free text, so it can be shown
// to the manager without leaking case notes.
type RiskFlag struct {
	Kind   RiskKind `json:"kind"`
	Reason string   `json:"reason"`
}

func (f RiskFlag) String() string { return string(f.Kind) + ":" + f.Reason }

// RelationshipManager is the customer's RM (客户经理) to call on arrival.
type RelationshipManager struct {
	ID    string `json:"id,omitempty"`
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// IsZero reports whether no RM is recorded.
func (r RelationshipManager) IsZero() bool { return r == RelationshipManager{} }

// Facts are the measurable things a scheme's conditions test for one month.
type Facts struct {
	// Indicators by name: assets, points, loan_balance, card_spend_12m and
	// any indicator a scheme declares. An absent indicator meets no threshold.
	Indicators map[string]Decimal `json:"indicators"`
	// Cards are the card products held, sorted and unique.
	Cards          []string `json:"cards,omitempty"`
	PrivateBanking bool     `json:"private_banking"`
}

// HasCard reports whether the card product is held.
func (f Facts) HasCard(card string) bool {
	_, ok := slices.BinarySearch(f.Cards, card)
	return ok
}

// Attributes describe how to serve a customer rather than how to rate them.
type Attributes struct {
	// Scheme names the customer's tier scheme; empty means the configured default.
	Scheme              string              `json:"scheme,omitempty"`
	RelationshipManager RelationshipManager `json:"relationship_manager,omitzero"`
	FormOfAddress       string              `json:"form_of_address,omitempty"` // e.g. 李先生; never the full name
	Language            string              `json:"language,omitempty"`        // BCP 47 tag
	RiskFlags           []RiskFlag          `json:"risk_flags,omitempty"`      // sorted
}

// Snapshot is one customer's data for one month, as imported from core
// banking. A corrected import adds a new revision; old revisions are kept.
type Snapshot struct {
	CustomerID string `json:"customer_id"`
	Month      Month  `json:"month"`
	Facts
	Attributes
	// Revision, Source and ImportedAt are set by the Store.
	Revision   int       `json:"revision,omitempty"`
	Source     string    `json:"source,omitempty"`
	ImportedAt time.Time `json:"imported_at,omitzero"`
}

// SameData reports whether s and o hold the same imported values, ignoring
// where and when they were imported; the Store uses it to make re-imports
// change nothing.
func (s Snapshot) SameData(o Snapshot) bool {
	if s.CustomerID != o.CustomerID || s.Month != o.Month || s.PrivateBanking != o.PrivateBanking ||
		s.Scheme != o.Scheme || s.RelationshipManager != o.RelationshipManager ||
		s.FormOfAddress != o.FormOfAddress || s.Language != o.Language ||
		len(s.Indicators) != len(o.Indicators) ||
		!slices.Equal(s.Cards, o.Cards) || !slices.Equal(s.RiskFlags, o.RiskFlags) {
		return false
	}
	for k, v := range s.Indicators {
		if w, ok := o.Indicators[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Status is a customer's tier on a date together with everything the alert
// path needs. It carries risk flags and is meant for the branch manager's
// channel; anything shown to ordinary staff must go through Staff.
type Status struct {
	CustomerID string `json:"customer_id"`
	Scheme     string `json:"scheme"`
	Level      string `json:"level"`
	LevelName  string `json:"level_name"`
	// LevelNames are LevelName in other languages, for screens shown in them.
	LevelNames          map[string]string   `json:"level_names,omitempty"`
	Rank                int                 `json:"rank"` // 0 for the scheme's lowest level
	VIP                 bool                `json:"vip"`
	ServiceLevel        ServiceLevel        `json:"service_level"`
	RelationshipManager RelationshipManager `json:"relationship_manager,omitzero"`
	FormOfAddress       string              `json:"form_of_address,omitempty"`
	Language            string              `json:"language,omitempty"`
	RiskFlags           []RiskFlag          `json:"risk_flags,omitempty"`
	// Since is the date the level took effect; zero if the customer has
	// held the lowest level since their data begins.
	Since Date `json:"since,omitzero"`
	// DataMonth is the latest month whose data has taken effect by the
	// date under the scheme's calendar; zero before the first.
	DataMonth Month `json:"data_month,omitzero"`
	// defaultAddress stands in for "{address}" when the customer has no
	// form of address on record.
	defaultAddress   string
	defaultAddresses map[string]string
}

// HasRisk reports whether the customer carries any risk flag, in which case
// the arrival must also reach the branch manager with the flags.
func (s Status) HasRisk() bool { return len(s.RiskFlags) > 0 }

// Greeting returns the level's greeting with the customer's form of address,
// or the scheme's default address when none is recorded.
// A scheme's greeting in the customer's language (Language) is used when
// it has one, with the default address in that language.
func (s Status) Greeting() string {
	greeting, def := s.ServiceLevel.Greeting, s.defaultAddress
	if g, ok := pickLanguage(s.ServiceLevel.Greetings, s.Language); ok {
		greeting = g
		if a, ok := pickLanguage(s.defaultAddresses, s.Language); ok {
			def = a
		}
	}
	addr := s.FormOfAddress
	if addr == "" {
		addr = def
	}
	return strings.ReplaceAll(greeting, "{address}", addr)
}

// LevelNameIn is the level's name in language lang, or LevelName when the
// scheme has none in it.
func (s Status) LevelNameIn(lang string) string {
	if n, ok := pickLanguage(s.LevelNames, lang); ok {
		return n
	}
	return s.LevelName
}

// Staff returns the view of s that ordinary lobby staff may see. It is a
// different type with no risk fields at all, so risk details cannot reach a
// staff screen by forgetting to clear them.
func (s Status) Staff() StaffStatus {
	return StaffStatus{
		CustomerID:          s.CustomerID,
		Scheme:              s.Scheme,
		Level:               s.Level,
		LevelName:           s.LevelName,
		LevelNames:          s.LevelNames,
		Rank:                s.Rank,
		VIP:                 s.VIP,
		ServiceLevel:        s.ServiceLevel,
		Greeting:            s.Greeting(),
		RelationshipManager: s.RelationshipManager,
		FormOfAddress:       s.FormOfAddress,
		Language:            s.Language,
	}
}

// LogValue keeps forms of address, RM contacts and risk reasons out of logs.
func (s Status) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("customer_id", s.CustomerID),
		slog.String("scheme", s.Scheme),
		slog.String("level", s.Level),
		slog.Bool("vip", s.VIP),
		slog.Int("risk_flags", len(s.RiskFlags)),
	)
}

// StaffStatus is what an ordinary staff screen may show about a customer.
type StaffStatus struct {
	CustomerID          string              `json:"customer_id"`
	Scheme              string              `json:"scheme"`
	Level               string              `json:"level"`
	LevelName           string              `json:"level_name"`
	LevelNames          map[string]string   `json:"level_names,omitempty"`
	Rank                int                 `json:"rank"`
	VIP                 bool                `json:"vip"`
	ServiceLevel        ServiceLevel        `json:"service_level"`
	Greeting            string              `json:"greeting,omitempty"`
	RelationshipManager RelationshipManager `json:"relationship_manager,omitzero"`
	FormOfAddress       string              `json:"form_of_address,omitempty"`
	Language            string              `json:"language,omitempty"`
}

// Unit says what an indicator measures and so which values are valid.
type Unit string

// Units of indicators. Amounts, points and counts cannot be negative;
// percentages and plain numbers (ratings, growth) can.
const (
	UnitCNY     Unit = "cny"
	UnitPoints  Unit = "points"
	UnitCount   Unit = "count"
	UnitPercent Unit = "percent"
	UnitNumber  Unit = "number"
)

var units = []Unit{UnitCNY, UnitPoints, UnitCount, UnitPercent, UnitNumber}

// AllowsNegative reports whether a negative value is meaningful.
func (u Unit) AllowsNegative() bool { return u == UnitPercent || u == UnitNumber }

// Indicator is a named monthly measure a scheme can test.
type Indicator struct {
	Name  string `json:"name"`
	Title string `json:"title,omitempty"`
	Unit  Unit   `json:"unit"`
}

// Check is the one rule for a value of the indicator, written raw in the
// input, with the tier CSV's code for what is wrong ("" when nothing is):
// negative only where the unit allows it, whole for a count.
func (in Indicator) Check(d Decimal, raw string) (code, reason string) {
	switch {
	case d < 0 && !in.Unit.AllowsNegative():
		return CodeNegativeAmount, fmt.Sprintf("%s must not be negative, got %s", in.Name, raw)
	case in.Unit == UnitCount && d%decimalScale != 0:
		return CodeBadValue, fmt.Sprintf("%s is a count, got %s", in.Name, raw)
	}
	return "", ""
}

// BaseIndicators are known without any scheme declaring them: the measures
// the bank's published rules are written in.
var BaseIndicators = []Indicator{
	{Name: "assets", Title: "月日均金融资产 average daily financial assets of the month", Unit: UnitCNY},
	{Name: "points", Title: "星点值 star points", Unit: UnitPoints},
	{Name: "loan_balance", Title: "月末个人贷款余额 month-end personal loan balance", Unit: UnitCNY},
	{Name: "card_spend_12m", Title: "近12个月信用卡消费（不含单笔≥10万）12-month card spend without single purchases ≥ 100,000", Unit: UnitCNY},
}
