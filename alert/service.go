package alert

import (
	"context"
	"log/slog"
	"time"

	"concierge"
)

// What staff did with alerts is otherwise only in the stream, which keeps
// a day at most; the branch manager's report (service quality per tier)
// needs it for weeks. The desk, the escalator and the verify cards tell a
// ServiceLog each thing that happened, and the log keeps aggregate-grade
// rows: the kind, the time, the tier, and how long the customer waited.

// Kinds of ServiceEvent.
const (
	ServiceClaim         = "claim"
	ServiceEscalation    = "escalation"
	ServiceReject        = "reject" // "not this person"
	ServiceCardConfirmed = "card_confirmed"
	ServiceCardDismissed = "card_dismissed"
)

// ServiceEvent is one thing staff did (or failed to do in time) with an
// alert or a verify card.
type ServiceEvent struct {
	Kind string
	// AlertID is the alert the event is about, for the log to find the
	// arrival's time and tier; the log does not keep it.
	AlertID string
	// Tier is the tier when the caller knows it (an escalation's or a
	// card's message); nil: the log takes the arrival's.
	Tier *Tier
	At   time.Time
}

// ServiceLog keeps service events for the report. It must keep no
// customer id and no name.
type ServiceLog interface {
	RecordService(ctx context.Context, e ServiceEvent) error
}

// ServicePurger deletes the service events before a time and says how
// many.
type ServicePurger interface {
	PurgeService(ctx context.Context, before time.Time) (int64, error)
}

// DefaultServiceRetention keeps a bit more than a year of service events:
// enough to compare a month with the same month a year before, and no
// more, since the shortest retention that serves the purpose applies even
// to rows that name nobody.
const DefaultServiceRetention = 400 * 24 * time.Hour

// PurgeServiceLoop deletes service events older than retention at once
// and then every interval, until ctx ends (it then returns nil); it runs
// in the caller's goroutine, so the caller owns it. A failed purge is
// logged and retried at the next interval. now nil is time.Now.
func PurgeServiceLoop(ctx context.Context, p ServicePurger, every, retention time.Duration, now func() time.Time, log *slog.Logger) error {
	switch {
	case p == nil:
		return concierge.Errorf(concierge.EINVALID, "purge service events: no service log")
	case every <= 0 || retention <= 0:
		return concierge.Errorf(concierge.EINVALID, "purge service events: interval %v and retention %v must be > 0", every, retention)
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		before := now().Add(-retention)
		n, err := p.PurgeService(ctx, before)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("purge service events", slog.Any("error", err))
		case n > 0:
			log.Info("purged service events", slog.Int64("count", n), slog.Time("before", before))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// recordService hands e to l if there is one. The event has happened
// whether or not it is recorded, so a failure is only logged: the report
// then misses it.
func recordService(ctx context.Context, l ServiceLog, log *slog.Logger, e ServiceEvent) {
	if l == nil {
		return
	}
	if err := l.RecordService(context.WithoutCancel(ctx), e); err != nil {
		log.Warn("service event not recorded; the manager's report will miss it", slog.String("kind", e.Kind), slog.Any("error", err))
	}
}

// ServiceReport is the branch manager's view of service quality: per day
// and tier, what arrived and what staff did with it. Aggregates only: no
// names, no faces, no customer or alert ids.
type ServiceReport struct {
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	TimeZone string    `json:"timezone"` // of the days
	// Days are by day (oldest first), then scheme and level.
	Days []ServiceRow `json:"days"`
	// Totals are the whole period's, by scheme and level (Day "").
	Totals []ServiceRow `json:"totals"`
}

// LastDays is where a report of the last days calendar days in loc
// starts, today included: midnight of the first of them. The CLI's
// `report --since Nd` and the lobby's manager panel cover the same days.
func LastDays(days int, now time.Time, loc *time.Location) time.Time {
	y, mo, d := now.In(loc).Date()
	return time.Date(y, mo, d-(days-1), 0, 0, 0, 0, loc)
}

// ServiceRow is one day and tier of a ServiceReport. The claim times run
// from the arrival to its claim, over the claimed arrivals (0 when none).
type ServiceRow struct {
	Day            string  `json:"day,omitempty"` // YYYY-MM-DD in the report's time zone
	Scheme         string  `json:"scheme"`
	Level          string  `json:"level"` // "" for customers with no tier
	LevelName      string  `json:"level_name"`
	Arrivals       int     `json:"arrivals"`
	Claims         int     `json:"claims"`
	ClaimMedian    Seconds `json:"claim_median_s"`
	ClaimP90       Seconds `json:"claim_p90_s"`
	Escalations    int     `json:"escalations"`
	NotThisPerson  int     `json:"not_this_person"`
	CardsConfirmed int     `json:"cards_confirmed"`
	CardsDismissed int     `json:"cards_dismissed"`
}
