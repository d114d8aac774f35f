package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"concierge"
	"concierge/checkin"
	"concierge/sqlite"
)

const feedbackUsage = `usage: concierge feedback list [--json] [--config FILE] [--db PATH]
Lists the customers whom staff marked "not this person" on an alert: false matches within
alerts.false_match.repeat_window and in all, the last one, until when today's stricter rule holds, the
rule now (extra votes, threshold change), and whether repeated false matches suggest enrolling the
customer again. The database is the daemon's; the list is what the running daemon applies.`

// feedbackNow is the clock of the report, replaced by tests.
var feedbackNow = time.Now

func runFeedback(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 || args[0] != "list" {
		fmt.Fprintln(m.Stderr, feedbackUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return usagef("feedback: want the action list")
	}
	fs := m.flags("feedback list")
	asJSON := fs.Bool("json", false, "one JSON object per customer and line")
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, feedbackUsage)
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("feedback list: unexpected argument %q", pos[0])
	}
	cfg, err := m.config()
	if err != nil {
		return err
	}
	fc, err := cfg.feedbackConfig()
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	policy, err := checkin.NewFeedback(fc)
	if err != nil {
		return err
	}
	db, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "%w", err)
	}
	defer db.Close()
	marks, err := db.FalseMatches(ctx)
	if err != nil {
		return err
	}
	policy.Reset(marks)
	report := policy.Report(feedbackNow())
	if *asJSON {
		for _, r := range report {
			if err := writeJSON(m, r); err != nil {
				return err
			}
		}
		return nil
	}
	if len(report) == 0 {
		_, err := fmt.Fprintln(m.Stdout, "no false matches recorded")
		return err
	}
	loc := fc.Location
	w := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "CUSTOMER\tRECENT (%s)\tTOTAL\tLAST\tSTRICT UNTIL\tRULE NOW\tRE-ENROLL\n", days(fc.RepeatWindow))
	for _, r := range report {
		until := "-"
		if r.StrictUntil != nil {
			until = r.StrictUntil.In(loc).Format("2006-01-02 15:04")
		}
		if r.ReenrollSuggested {
			until = "re-enrollment"
		}
		rule := "usual"
		if r.ExtraVotes > 0 || r.ThresholdDelta < 0 {
			rule = fmt.Sprintf("+%d votes, threshold %+.3f", r.ExtraVotes, r.ThresholdDelta)
		}
		reenroll := "-"
		if r.ReenrollSuggested {
			reenroll = "suggested"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", r.CustomerID, r.Recent, r.Total,
			r.Last.In(loc).Format("2006-01-02 15:04:05"), until, rule, reenroll)
	}
	return w.Flush()
}

// days writes a window such as 720h as "30d".
func days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return strings.TrimSuffix(d.String(), "0s")
}
