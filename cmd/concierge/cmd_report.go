package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"concierge"
	"concierge/alert"
	"concierge/sqlite"
	"concierge/tiering"
	"concierge/web"
)

const reportUsage = `usage: concierge report [--since 7d|24h|2026-12-01] [--json] [--config FILE] [--db PATH]
Service quality for the branch manager, per day and tier: arrivals, time from arrival to claim
(median and 90th percentile), escalations, "not this person" marks, verify cards confirmed and
dismissed. Aggregates only: no names, faces or customer ids. --since Nd is the last N calendar days
including today, a duration such as 24h counts back from now, a date starts at its midnight; days are
in alerts.false_match.timezone (default the box's zone).`

// reportNow is the report's clock, replaced by tests.
var reportNow = time.Now

func runReport(ctx context.Context, m *Main, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(m.Stderr, reportUsage)
		return nil
	}
	fs := m.flags("report")
	sinceFlag := fs.String("since", "7d", "start: Nd (calendar days including today), a duration (24h) or a date (YYYY-MM-DD)")
	asJSON := fs.Bool("json", false, "the report as one JSON object")
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, reportUsage)
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("report: unexpected argument %q", pos[0])
	}
	cfg, schemes, err := m.tiersSetup()
	if err != nil {
		return err
	}
	fc, err := cfg.feedbackConfig()
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	now := reportNow()
	since, err := parseReportSince(*sinceFlag, now, fc.Location)
	if err != nil {
		return usagef("report: --since: %v", err)
	}
	db, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "%w", err)
	}
	defer db.Close()
	db.Now = func() time.Time { return now }
	rep, err := serviceReports{db: db, schemes: schemes, loc: fc.Location}.ServiceReport(ctx, since)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(m, rep)
	}
	fmt.Fprintf(m.Stdout, "service from %s to %s (%s)\n\n", rep.Since.In(fc.Location).Format("2006-01-02 15:04"),
		rep.Until.In(fc.Location).Format("2006-01-02 15:04"), rep.TimeZone)
	if len(rep.Totals) == 0 {
		_, err := fmt.Fprintln(m.Stdout, "no arrivals or staff answers recorded in this period")
		return err
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "DAY\tTIER\tARRIVALS\tCLAIMED\tTO CLAIM MEDIAN\tP90\tESCALATED\tNOT THIS PERSON\tVERIFY YES\tVERIFY NO")
	for _, r := range append(rep.Days, rep.Totals...) {
		day := r.Day
		if day == "" {
			day = "total"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\n", day, reportTier(r), r.Arrivals, r.Claims,
			reportWait(r, r.ClaimMedian), reportWait(r, r.ClaimP90), r.Escalations, r.NotThisPerson, r.CardsConfirmed, r.CardsDismissed)
	}
	return w.Flush()
}

func reportTier(r alert.ServiceRow) string {
	switch {
	case r.Level == "":
		return "(no tier)"
	case r.LevelName != "" && r.LevelName != r.Level:
		return r.LevelName + " (" + r.Scheme + "/" + r.Level + ")"
	}
	return r.Scheme + "/" + r.Level
}

func reportWait(r alert.ServiceRow, s alert.Seconds) string {
	if r.Claims == 0 {
		return "-"
	}
	return time.Duration(s).Round(time.Second).String()
}

var sinceDays = regexp.MustCompile(`^([0-9]+)d$`)

// parseReportSince reads --since: Nd is the last N calendar days in loc,
// today included; a Go duration counts back from now; a date is its
// midnight in loc. It must lie in the past.
func parseReportSince(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if m := sinceDays.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 || n > 3660 {
			return time.Time{}, fmt.Errorf("%q: want 1d to 3660d", s)
		}
		return alert.LastDays(n, now, loc), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: want a positive duration", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.ParseInLocation(time.DateOnly, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not Nd (7d), a duration (24h) or a date (2026-12-01)", s)
	}
	if t.After(now) {
		return time.Time{}, fmt.Errorf("%s is in the future", s)
	}
	return t, nil
}

// serviceReports gives the report with each level's name from the
// schemes: the CLI's and the lobby's manager panel's (web.ServiceReports).
type serviceReports struct {
	db      *sqlite.DB
	schemes *tiering.Schemes
	loc     *time.Location
}

func (r serviceReports) ServiceReport(ctx context.Context, since time.Time) (alert.ServiceReport, error) {
	rep, err := r.db.ServiceReport(ctx, since, r.loc)
	if err != nil {
		return rep, err
	}
	for _, rows := range [][]alert.ServiceRow{rep.Days, rep.Totals} {
		for i := range rows {
			if s, ok := r.schemes.Get(rows[i].Scheme); ok {
				if l, ok := s.LevelNamed(rows[i].Level); ok {
					rows[i].LevelName = l.Name
				}
			}
		}
	}
	return rep, nil
}

var _ web.ServiceReports = serviceReports{}

// RecentServiceReport implements web.ServiceReports: the manager's panel
// shows what `concierge report --since <days>d` prints.
func (r serviceReports) RecentServiceReport(ctx context.Context, days int) (alert.ServiceReport, error) {
	return r.ServiceReport(ctx, alert.LastDays(days, time.Now(), r.loc))
}

// serviceReports is the daemon's report for the lobby's manager panel.
func (d *Daemon) serviceReports() serviceReports {
	loc := time.Local
	if fc, err := d.cfg.feedbackConfig(); err == nil { // checked when the daemon opened
		loc = fc.Location
	}
	return serviceReports{db: d.app.db, schemes: d.tiers.schemes, loc: loc}
}
