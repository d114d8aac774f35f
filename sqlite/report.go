package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"concierge/alert"
	"concierge/checkin"
)

var (
	_ alert.ServiceLog    = (*DB)(nil)
	_ alert.ServicePurger = (*DB)(nil)
)

// Service events are what the branch manager's report counts: arrivals,
// claims (with how long the customer waited), escalations, "not this
// person" marks and answers to verify cards, each with its time and the
// customer's tier at the time. A row holds no customer id, no alert id and
// no name, so it names nobody: Erase leaves these rows, which only ever
// count, and the visit purge does not shorten the report. They have their
// own retention (report.retention), PurgeService.
var _ = register("service_events",
	`CREATE TABLE service_events (
		id          INTEGER PRIMARY KEY,
		at          TEXT NOT NULL,
		kind        TEXT NOT NULL CHECK (kind IN ('arrival', 'claim', 'escalation', 'reject', 'card_confirmed', 'card_dismissed')),
		tier_scheme TEXT NOT NULL DEFAULT '',
		tier_level  TEXT NOT NULL DEFAULT '',
		wait_ms     INTEGER
	);
	CREATE INDEX service_events_at ON service_events(at);`,
)

// serviceArrival is the kind of the row RecordVisit adds for a new visit.
const serviceArrival = "arrival"

// recordArrival adds an arrival's service row in the visit's transaction.
func recordArrival(ctx context.Context, tx *sql.Tx, a checkin.Arrival) error {
	var scheme, level string
	if a.Tier != nil {
		scheme, level = a.Tier.Scheme, a.Tier.Level
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO service_events (at, kind, tier_scheme, tier_level) VALUES (?, ?, ?, ?)`,
		a.At.UTC().Format(timeFormat), serviceArrival, scheme, level)
	return err
}

// RecordService implements alert.ServiceLog. The tier is the event's, or
// else the one the alert's visit recorded; a claim's wait runs from the
// visit's time. The alert id is only looked up, never stored. An alert
// whose visit is gone (purged, erased) is counted without a tier.
func (d *DB) RecordService(ctx context.Context, e alert.ServiceEvent) error {
	var scheme, level string
	if e.Tier != nil {
		scheme, level = e.Tier.Scheme, e.Tier.Level
	}
	var wait sql.NullInt64
	if e.AlertID != "" && (e.Tier == nil || e.Kind == alert.ServiceClaim) {
		var vScheme, vLevel, at string
		err := d.db.QueryRowContext(ctx, `SELECT tier_scheme, tier_level, at FROM visits WHERE id = ?`, e.AlertID).
			Scan(&vScheme, &vLevel, &at)
		switch {
		case err == nil:
			if e.Tier == nil {
				scheme, level = vScheme, vLevel
			}
			if e.Kind == alert.ServiceClaim {
				if arrived, err := time.Parse(timeFormat, at); err == nil {
					wait = sql.NullInt64{Int64: max(0, e.At.Sub(arrived).Milliseconds()), Valid: true}
				}
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("record %s: %w", e.Kind, err)
		}
	}
	if e.At.IsZero() {
		e.At = d.now()
	}
	if _, err := d.db.ExecContext(ctx, `INSERT INTO service_events (at, kind, tier_scheme, tier_level, wait_ms) VALUES (?, ?, ?, ?, ?)`,
		e.At.UTC().Format(timeFormat), e.Kind, scheme, level, wait); err != nil {
		return fmt.Errorf("record %s: %w", e.Kind, err)
	}
	return nil
}

// PurgeService implements alert.ServicePurger: it deletes the service
// events before the given time.
func (d *DB) PurgeService(ctx context.Context, before time.Time) (int64, error) {
	res, err := d.db.ExecContext(ctx, `DELETE FROM service_events WHERE at < ?`, before.UTC().Format(timeFormat))
	if err != nil {
		return 0, fmt.Errorf("purge service events: %w", err)
	}
	return res.RowsAffected()
}

// ServiceReport counts the service events from since until now, by day
// (in loc) and tier. Level names are left to the caller, who knows the
// schemes.
func (d *DB) ServiceReport(ctx context.Context, since time.Time, loc *time.Location) (alert.ServiceReport, error) {
	rep := alert.ServiceReport{Since: since, Until: d.now(), TimeZone: loc.String(), Days: []alert.ServiceRow{}, Totals: []alert.ServiceRow{}}
	q, err := d.db.QueryContext(ctx, `SELECT at, kind, tier_scheme, tier_level, wait_ms FROM service_events WHERE at >= ? ORDER BY at, id`,
		since.UTC().Format(timeFormat))
	if err != nil {
		return rep, fmt.Errorf("service report: %w", err)
	}
	defer q.Close()
	type key struct{ day, scheme, level string }
	type acc struct {
		row   alert.ServiceRow
		waits []time.Duration
	}
	byKey := map[key]*acc{}
	add := func(k key, kind string, wait sql.NullInt64) {
		a := byKey[k]
		if a == nil {
			a = &acc{row: alert.ServiceRow{Day: k.day, Scheme: k.scheme, Level: k.level}}
			byKey[k] = a
		}
		switch kind {
		case serviceArrival:
			a.row.Arrivals++
		case alert.ServiceClaim:
			a.row.Claims++
			if wait.Valid {
				a.waits = append(a.waits, time.Duration(wait.Int64)*time.Millisecond)
			}
		case alert.ServiceEscalation:
			a.row.Escalations++
		case alert.ServiceReject:
			a.row.NotThisPerson++
		case alert.ServiceCardConfirmed:
			a.row.CardsConfirmed++
		case alert.ServiceCardDismissed:
			a.row.CardsDismissed++
		}
	}
	for q.Next() {
		var at, kind, scheme, level string
		var wait sql.NullInt64
		if err := q.Scan(&at, &kind, &scheme, &level, &wait); err != nil {
			return rep, fmt.Errorf("service report: %w", err)
		}
		t, err := time.Parse(timeFormat, at)
		if err != nil {
			return rep, fmt.Errorf("service report: %w", err)
		}
		add(key{t.In(loc).Format(time.DateOnly), scheme, level}, kind, wait)
		add(key{"", scheme, level}, kind, wait)
	}
	if err := q.Err(); err != nil {
		return rep, fmt.Errorf("service report: %w", err)
	}
	for _, a := range byKey {
		a.row.ClaimMedian, a.row.ClaimP90 = alert.Seconds(percentile(a.waits, 0.5)), alert.Seconds(percentile(a.waits, 0.9))
		if a.row.Day == "" {
			rep.Totals = append(rep.Totals, a.row)
		} else {
			rep.Days = append(rep.Days, a.row)
		}
	}
	less := func(s []alert.ServiceRow) func(i, j int) bool {
		return func(i, j int) bool {
			a, b := s[i], s[j]
			if a.Day != b.Day {
				return a.Day < b.Day
			}
			if a.Scheme != b.Scheme {
				return a.Scheme < b.Scheme
			}
			return a.Level < b.Level
		}
	}
	sort.Slice(rep.Days, less(rep.Days))
	sort.Slice(rep.Totals, less(rep.Totals))
	return rep, nil
}

// percentile is the nearest-rank p-th percentile (0 < p <= 1) of ds, 0
// for none. It sorts ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(math.Ceil(p*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
