package checkin

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"concierge"
)

// FalseMatch is a "not this person" mark: staff saw an arrival alert name
// the wrong customer. It says nothing about the stranger who was there,
// only which customer's rule let them through.
type FalseMatch struct {
	AlertID    string    `json:"alert_id"` // the arrival's id, the visit's id
	CustomerID string    `json:"customer_id"`
	Camera     string    `json:"camera"`
	Distance   float64   `json:"distance"` // how sure the wrong match was
	Margin     float64   `json:"margin"`
	By         string    `json:"by"` // the staff member who marked it
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"time"` // when it was marked
	// Reenrolled says the customer enrolled again after the mark, so it no
	// longer counts towards the repeat rule.
	Reenrolled bool `json:"reenrolled,omitempty"`
}

// FeedbackConfig says how false matches tighten a customer's rule. One
// step adds ExtraVotes to the votes the customer's track needs and takes
// Tighten off their distance threshold. A false match gives one step for
// the rest of that local day; RepeatCount false matches within
// RepeatWindow give one more step that lasts until the customer enrolls
// again, and flag them for re-enrollment.
type FeedbackConfig struct {
	ExtraVotes int     // votes per step; default 1 via DefaultFeedbackConfig
	Tighten    float64 // threshold taken off per step
	// RepeatCount false matches within RepeatWindow make the rule lasting;
	// 0 never does.
	RepeatCount  int
	RepeatWindow time.Duration
	// Location's midnight ends "the rest of the day"; nil is time.Local.
	Location *time.Location
}

// DefaultFeedbackConfig is one more vote and a tenth of the threshold
// (dlib 0.30 → 0.03, MobileFaceNet 0.80 → 0.08) per step, a lasting step
// after 3 false matches in 30 days, days in local time. A tenth of the
// threshold is about where a doubtful match sits: the genuine matches
// that alert staff mostly lie well inside it (docs/accuracy.md), the
// look-alikes near its edge.
func DefaultFeedbackConfig(threshold float64) FeedbackConfig {
	return FeedbackConfig{ExtraVotes: 1, Tighten: threshold / 10, RepeatCount: 3, RepeatWindow: 30 * 24 * time.Hour}
}

// Validate names the first bad field.
func (c FeedbackConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return concierge.Errorf(concierge.EINVALID, "false match rule: "+format, args...)
	}
	switch {
	case c.ExtraVotes < 0:
		return bad("extra votes %d must be >= 0", c.ExtraVotes)
	case c.Tighten < 0 || c.Tighten >= 2:
		return bad("tighten %v must be in [0, 2)", c.Tighten)
	case c.ExtraVotes == 0 && c.Tighten == 0:
		return bad("extra votes and tighten are both 0: a false match would change nothing")
	case c.RepeatCount < 0:
		return bad("repeat count %d must be >= 0", c.RepeatCount)
	case c.RepeatCount > 0 && c.RepeatWindow <= 0:
		return bad("repeat window %v must be > 0", c.RepeatWindow)
	}
	return nil
}

// Feedback is the per-customer tightening that false matches earn. Its
// Strictness method is the Service's Strictness hook: a map look-up under
// a read lock, safe for concurrent use on the camera path. The marks live
// in the database; Reset loads them at start and after each new one, so a
// restart in the middle of the day keeps every rule.
type Feedback struct {
	cfg FeedbackConfig

	mu    sync.RWMutex
	marks map[string][]FalseMatch // by customer, oldest first
	rules map[string]strictRule
}

// strictRule is a customer's tightening, worked out when marks change so
// that Strictness does no more than compare a time.
type strictRule struct {
	dayEnd  time.Time // the day rule holds before this
	lasting bool      // repeated false matches: until re-enrolled
}

// NewFeedback returns a Feedback with no marks.
func NewFeedback(cfg FeedbackConfig) (*Feedback, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	return &Feedback{cfg: cfg, marks: map[string][]FalseMatch{}, rules: map[string]strictRule{}}, nil
}

// Config returns the rule the feedback tightens by.
func (f *Feedback) Config() FeedbackConfig { return f.cfg }

// Reset replaces every mark with marks (the database's).
func (f *Feedback) Reset(marks []FalseMatch) {
	byCustomer := map[string][]FalseMatch{}
	for _, m := range marks {
		byCustomer[m.CustomerID] = append(byCustomer[m.CustomerID], m)
	}
	rules := make(map[string]strictRule, len(byCustomer))
	for c, ms := range byCustomer {
		slices.SortFunc(ms, func(a, b FalseMatch) int { return a.At.Compare(b.At) })
		rules[c] = f.rule(ms)
	}
	f.mu.Lock()
	f.marks, f.rules = byCustomer, rules
	f.mu.Unlock()
}

// Add records one more mark; a mark of an alert already held changes
// nothing, so replaying the feed is harmless.
func (f *Feedback) Add(m FalseMatch) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ms := f.marks[m.CustomerID]
	if slices.ContainsFunc(ms, func(x FalseMatch) bool { return x.AlertID == m.AlertID }) {
		return
	}
	ms = append(ms, m)
	slices.SortFunc(ms, func(a, b FalseMatch) int { return a.At.Compare(b.At) })
	f.marks[m.CustomerID] = ms
	f.rules[m.CustomerID] = f.rule(ms)
}

// rule works out a customer's tightening from their marks, oldest first.
func (f *Feedback) rule(ms []FalseMatch) strictRule {
	last := ms[len(ms)-1].At.In(f.cfg.Location)
	r := strictRule{dayEnd: time.Date(last.Year(), last.Month(), last.Day()+1, 0, 0, 0, 0, f.cfg.Location)}
	if n := f.cfg.RepeatCount; n > 0 {
		var counting []time.Time
		for _, m := range ms {
			if !m.Reenrolled {
				counting = append(counting, m.At)
			}
		}
		for i := 0; i+n <= len(counting); i++ {
			if counting[i+n-1].Sub(counting[i]) <= f.cfg.RepeatWindow {
				r.lasting = true
				break
			}
		}
	}
	return r
}

// Strictness is the Service's hook: how much stricter the customer's rule
// is at time at.
func (f *Feedback) Strictness(customerID string, at time.Time) (extraVotes int, thresholdDelta float64) {
	f.mu.RLock()
	r, ok := f.rules[customerID]
	f.mu.RUnlock()
	if !ok {
		return 0, 0
	}
	steps := r.steps(at)
	return steps * f.cfg.ExtraVotes, -float64(steps) * f.cfg.Tighten
}

func (r strictRule) steps(at time.Time) int {
	n := 0
	if at.Before(r.dayEnd) {
		n++
	}
	if r.lasting {
		n++
	}
	return n
}

// CustomerFeedback is what operators see of one customer's false matches.
type CustomerFeedback struct {
	CustomerID string `json:"customer_id"`
	// Recent counts the false matches within the repeat window before the
	// report's time; Total all that are kept.
	Recent int       `json:"recent"`
	Total  int       `json:"total"`
	Last   time.Time `json:"last"`
	// StrictUntil is the end of today's tightening, nil when none holds.
	StrictUntil *time.Time `json:"strict_until,omitempty"`
	// ReenrollSuggested: repeated false matches keep the rule tight until
	// the customer enrolls again with better photos.
	ReenrollSuggested bool    `json:"reenroll_suggested"`
	ExtraVotes        int     `json:"extra_votes"`
	ThresholdDelta    float64 `json:"threshold_delta"`
}

// Report lists every customer with a false match, at time now: the most
// recently marked first.
func (f *Feedback) Report(now time.Time) []CustomerFeedback {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]CustomerFeedback, 0, len(f.marks))
	for c, ms := range f.marks {
		r := f.rules[c]
		cf := CustomerFeedback{CustomerID: c, Total: len(ms), Last: ms[len(ms)-1].At, ReenrollSuggested: r.lasting}
		for _, m := range ms {
			if f.cfg.RepeatWindow <= 0 || now.Sub(m.At) <= f.cfg.RepeatWindow {
				cf.Recent++
			}
		}
		if now.Before(r.dayEnd) {
			end := r.dayEnd
			cf.StrictUntil = &end
		}
		steps := r.steps(now)
		cf.ExtraVotes, cf.ThresholdDelta = steps*f.cfg.ExtraVotes, -float64(steps)*f.cfg.Tighten
		out = append(out, cf)
	}
	slices.SortFunc(out, func(a, b CustomerFeedback) int {
		return cmp.Or(b.Last.Compare(a.Last), cmp.Compare(a.CustomerID, b.CustomerID))
	})
	return out
}

// Counts returns how many customers have a tightened rule at now, and how
// many of them are flagged for re-enrollment (for metrics).
func (f *Feedback) Counts(now time.Time) (strict, reenroll int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, r := range f.rules {
		if r.steps(now) > 0 {
			strict++
		}
		if r.lasting {
			reenroll++
		}
	}
	return strict, reenroll
}
