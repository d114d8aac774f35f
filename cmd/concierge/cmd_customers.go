package main

import (
	"concierge/checkin"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"concierge"
	"concierge/sqlite"
	"concierge/tiering"
)

const customersUsage = `usage: concierge customers list --by NAME [--json] [--full-names]
       concierge customers show ID --by NAME [--json]
       concierge customers export --by NAME [--customer ID]
What the box holds about its customers, for an auditor answering a customer's "what do you hold about
me": consents (scope, channel, granted, withdrawn), face templates by source (enrollment or door) as
counts and dates, never the templates themselves, last seen, visits, "not this person" marks, tier.
list masks names as the lobby does (checkin.name_mask) unless --full-names; show and export give the
name in full, since that is the customer's request. Every read is recorded in the audit log under
--by. A withdrawn customer shows only what is kept: the consent record.`

// customersNow is the clock of the commands, replaced by tests.
var customersNow = time.Now

func runCustomers(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "show" && args[0] != "export") {
		fmt.Fprintln(m.Stderr, customersUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return usagef("customers: want list, show ID or export")
	}
	verb := args[0]
	fs := m.flags("customers " + verb)
	by := fs.String("by", "", "who reads the records (recorded in the audit log); required")
	asJSON := fs.Bool("json", false, "JSON instead of a table (list: one object per line)")
	fullNames := fs.Bool("full-names", false, "list: names in full instead of masked")
	customer := fs.String("customer", "", "export: only this customer")
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, customersUsage)
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	switch {
	case verb == "show" && len(pos) != 1:
		return usagef("customers show: want one customer id")
	case verb != "show" && len(pos) > 0:
		return usagef("customers %s: unexpected argument %q", verb, pos[0])
	case strings.TrimSpace(*by) == "":
		return usagef("customers %s: --by NAME is required: every read of customer records is recorded in the audit log with who read them", verb)
	case *customer != "" && verb != "export":
		return usagef("customers %s: --customer is for export (show takes the id as its argument)", verb)
	case *fullNames && verb != "list":
		return usagef("customers %s: --full-names is for list (show and export always give the full name)", verb)
	}
	cfg, schemes, err := m.tiersSetup()
	if err != nil {
		return err
	}
	fc, err := cfg.feedbackConfig()
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	db, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "%w", err)
	}
	defer db.Close()
	r := customerReader{db: db, schemes: schemes, by: strings.TrimSpace(*by), now: customersNow(), loc: fc.Location}
	switch verb {
	case "list":
		mask := checkin.MaskName(cfg.Checkin.NameMask)
		if *fullNames {
			mask = checkin.MaskName("full")
		}
		return r.list(ctx, m, mask, *fullNames, *asJSON)
	case "show":
		return r.show(ctx, m, pos[0], *asJSON)
	}
	return r.export(ctx, m, *customer)
}

// customerReader reads customer records and records each read in the
// audit log under by.
type customerReader struct {
	db      *sqlite.DB
	schemes *tiering.Schemes
	by      string
	now     time.Time
	loc     *time.Location
}

// customerView is a record as the commands print it: the database's
// record, the tier as the lobby would show it today, and, for show and
// export, the audit entries about the customer.
type customerView struct {
	sqlite.CustomerRecord
	Consent string        `json:"consent"` // active or withdrawn
	Tier    *customerTier `json:"tier,omitempty"`
	Audit   []auditLine   `json:"audit,omitempty"`
}

type customerTier struct {
	Scheme    string `json:"scheme"`
	Level     string `json:"level"`
	LevelName string `json:"level_name"`
	// From says where it comes from: imported (core banking's data, the
	// bank's record, kept after a withdrawal) or assigned (set by hand at
	// enrollment, erased with the rest).
	From string `json:"from"`
}

type auditLine struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
}

func (r customerReader) view(ctx context.Context, id string, withAudit bool) (customerView, error) {
	rec, err := r.db.CustomerRecord(ctx, id)
	if err != nil {
		return customerView{}, err
	}
	v := customerView{CustomerRecord: rec, Consent: "withdrawn"}
	if rec.Active() {
		v.Consent = "active"
	}
	if v.Tier, err = r.tier(ctx, id); err != nil {
		return v, err
	}
	if withAudit {
		entries, err := r.db.Audit(ctx, sqlite.AuditFilter{CustomerID: id, Limit: 10000})
		if err != nil {
			return v, err
		}
		v.Audit = []auditLine{}
		for _, e := range entries {
			v.Audit = append(v.Audit, auditLine{At: e.At, Actor: e.Actor, Action: e.Action, Outcome: e.Outcome, Detail: e.Detail})
		}
	}
	return v, nil
}

// tier is the customer's tier today as the lobby finds it: imported data
// first, else the tier set at enrollment; nil when there is neither.
func (r customerReader) tier(ctx context.Context, id string) (*customerTier, error) {
	snaps, err := r.db.TierSnapshots(ctx, id)
	if err != nil {
		return nil, err
	}
	var p *tiering.Profile
	if len(snaps) > 0 {
		if p, err = tiering.NewProfile(r.schemes, id, snaps, ""); err != nil {
			return nil, err
		}
	}
	a, _, err := readAssignment(ctx, r.db, id)
	if err != nil {
		return nil, err
	}
	st, assigned, err := r.schemes.Current(id, p, a, tiering.DateOf(r.now.In(r.loc)))
	if concierge.ErrorCode(err) == concierge.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	from := "imported"
	if assigned {
		from = "assigned"
	}
	return &customerTier{Scheme: st.Scheme, Level: st.Level, LevelName: st.LevelName, From: from}, nil
}

// audit records a read; a read that cannot be recorded is not made.
func (r customerReader) audit(ctx context.Context, action, customerID, outcome, detail string) error {
	err := r.db.AppendAudit(ctx, sqlite.AuditEntry{At: r.now, Actor: r.by, Action: action, CustomerID: customerID,
		Outcome: outcome, Detail: detail})
	if err != nil {
		return fmt.Errorf("record the read in the audit log: %w", err)
	}
	return nil
}

func (r customerReader) list(ctx context.Context, m *Main, mask func(string) string, fullNames, asJSON bool) error {
	ids, err := r.db.CustomerIDs(ctx)
	if err != nil {
		return err
	}
	detail := fmt.Sprintf("%d customers, names masked", len(ids))
	if fullNames {
		detail = fmt.Sprintf("%d customers, names in full", len(ids))
	}
	if err := r.audit(ctx, "customers.list", "", "ok", detail); err != nil {
		return err
	}
	views := make([]customerView, 0, len(ids))
	for _, id := range ids {
		v, err := r.view(ctx, id, false)
		if err != nil {
			return err
		}
		v.Name = mask(v.Name)
		views = append(views, v)
	}
	if asJSON {
		for _, v := range views {
			if err := writeJSON(m, listLine(v)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(views) == 0 {
		_, err := fmt.Fprintln(m.Stdout, "no customers")
		return err
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tCONSENT\tSCOPE\tCHANNEL\tGRANTED\tWITHDRAWN\tTEMPLATES\tLAST SEEN\tTIER")
	for _, v := range views {
		l := listLine(v)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, dash(v.Name), v.Consent, dash(l.Scope), dash(l.Channel),
			r.date(l.Granted), r.date(l.Withdrawn), templatesText(l.Templates), r.date(v.LastSeen), tierText(v.Tier))
	}
	return w.Flush()
}

// customerLine is one customer of list --json: the latest consent and
// template counts by source.
type customerLine struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Consent   string         `json:"consent"`
	Scope     string         `json:"scope,omitempty"`
	Channel   string         `json:"channel,omitempty"`
	Granted   *time.Time     `json:"granted_at,omitempty"`
	Withdrawn *time.Time     `json:"withdrawn_at,omitempty"`
	Templates map[string]int `json:"templates"`
	LastSeen  *time.Time     `json:"last_seen,omitempty"`
	Tier      *customerTier  `json:"tier,omitempty"`
}

func listLine(v customerView) customerLine {
	l := customerLine{ID: v.ID, Name: v.Name, Consent: v.Consent, Templates: map[string]int{}, LastSeen: v.LastSeen, Tier: v.Tier}
	if len(v.Consents) > 0 {
		c := v.Consents[0]
		l.Scope, l.Channel, l.Granted, l.Withdrawn = c.Scope, c.Channel, &c.GrantedAt, c.WithdrawnAt
	}
	for _, g := range v.Templates {
		l.Templates[g.Source] += g.Count
	}
	return l
}

func (r customerReader) show(ctx context.Context, m *Main, id string, asJSON bool) error {
	v, err := r.view(ctx, id, true)
	if concierge.ErrorCode(err) == concierge.ENOTFOUND {
		if aerr := r.audit(ctx, "customers.show", id, "not_found", ""); aerr != nil {
			return aerr
		}
		return err
	}
	if err != nil {
		return err
	}
	if err := r.audit(ctx, "customers.show", id, "ok", "record shown, name in full"); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(m, v)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "customer\t%s\n", v.ID)
	fmt.Fprintf(w, "name\t%s\n", dash(v.Name))
	fmt.Fprintf(w, "created\t%s\n", r.date(&v.Created))
	fmt.Fprintf(w, "consent\t%s\n", v.Consent)
	fmt.Fprintf(w, "last seen\t%s\n", r.date(v.LastSeen))
	fmt.Fprintf(w, "visits\t%d (first %s, last %s)\n", v.Visits.Count, r.date(v.Visits.First), r.date(v.Visits.Last))
	fmt.Fprintf(w, "tier\t%s\n", tierText(v.Tier))
	fmt.Fprintf(w, "not this person\t%d marks\n", len(v.FalseMatches))
	w.Flush()
	fmt.Fprintln(m.Stdout, "\nconsents:")
	w = tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  REFERENCE\tTEXT\tCHANNEL\tLANGUAGE\tSCOPE\tGRANTED\tWITHDRAWN\tREASON")
	for _, c := range v.Consents {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Reference, dash(c.TextVersion), dash(c.Channel), dash(c.Language),
			c.Scope, r.date(&c.GrantedAt), r.date(c.WithdrawnAt), dash(c.WithdrawnReason))
	}
	w.Flush()
	fmt.Fprintln(m.Stdout, "\nface templates (counts only):")
	if len(v.Templates) == 0 {
		fmt.Fprintln(m.Stdout, "  none")
	}
	w = tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	for _, g := range v.Templates {
		fmt.Fprintf(w, "  %s\t%s\t%d\t%s … %s\n", g.Source, g.Model, g.Count, r.date(&g.First), r.date(&g.Last))
	}
	w.Flush()
	if len(v.FalseMatches) > 0 {
		fmt.Fprintln(m.Stdout, "\n\"not this person\" marks:")
		w = tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
		for _, f := range v.FalseMatches {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", r.date(&f.At), f.Camera, f.By, dash(f.Reason))
		}
		w.Flush()
	}
	fmt.Fprintln(m.Stdout, "\naudit log:")
	if len(v.Audit) == 0 {
		fmt.Fprintln(m.Stdout, "  none")
	}
	w = tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	for _, a := range v.Audit {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", r.date(&a.At), a.Actor, a.Action, a.Outcome, dash(a.Detail))
	}
	return w.Flush()
}

// customerExport is the data-subject export: everything held, names in
// full, no embeddings.
type customerExport struct {
	ExportedAt time.Time      `json:"exported_at"`
	ExportedBy string         `json:"exported_by"`
	Customers  []customerView `json:"customers"`
}

func (r customerReader) export(ctx context.Context, m *Main, only string) error {
	ids := []string{only}
	if only == "" {
		var err error
		if ids, err = r.db.CustomerIDs(ctx); err != nil {
			return err
		}
	}
	out := customerExport{ExportedAt: r.now.UTC(), ExportedBy: r.by, Customers: []customerView{}}
	for _, id := range ids {
		v, err := r.view(ctx, id, true)
		if concierge.ErrorCode(err) == concierge.ENOTFOUND && only != "" {
			if aerr := r.audit(ctx, "customers.export", id, "not_found", ""); aerr != nil {
				return aerr
			}
		}
		if err != nil {
			return err
		}
		out.Customers = append(out.Customers, v)
	}
	// One row per customer, so each customer's own audit trail shows the
	// export; written before the data leaves, as for show.
	for _, v := range out.Customers {
		if err := r.audit(ctx, "customers.export", v.ID, "ok", "record exported, name in full"); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func (r customerReader) date(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.In(r.loc).Format("2006-01-02 15:04")
}

func templatesText(by map[string]int) string {
	if len(by) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, by[k])
	}
	return strings.Join(parts, ", ")
}

func tierText(t *customerTier) string {
	if t == nil {
		return "-"
	}
	return fmt.Sprintf("%s (%s/%s, %s)", t.LevelName, t.Scheme, t.Level, t.From)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
