package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"concierge"
	"concierge/hub"
	"concierge/sqlite"
	"concierge/tiering"
)

const tiersUsage = `usage: concierge tiers import [--dry-run] [--skip-bad-rows] [--encoding auto|utf-8|gb18030] FILE.csv
       concierge tiers show --customer ID [--at YYYY-MM-DD] [--history]
       concierge tiers evaluate --customer ID [--at YYYY-MM-DD] [--scheme NAME]
       concierge tiers evaluate [--scheme NAME] [--points N] [--assets CNY] [--loan-balance CNY]
                                [--card-spend CNY] [--card NAME]... [--private-banking] [--indicator NAME=VALUE]...
       concierge tiers schemes [NAME]
Every action also takes --config FILE and --db PATH. docs/tiering.md describes schemes and the CSV.`

// tiersNow is the clock behind --at's default, replaced by tests.
var tiersNow = time.Now

func runTiers(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(m.Stderr, tiersUsage)
		return usagef("tiers: missing action (import, show, evaluate or schemes)")
	}
	switch args[0] {
	case "import":
		return m.tiersImport(ctx, args[1:])
	case "show":
		return m.tiersShow(ctx, args[1:])
	case "evaluate":
		return m.tiersEvaluate(ctx, args[1:])
	case "schemes":
		return m.tiersSchemes(args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(m.Stderr, tiersUsage)
		return nil
	}
	fmt.Fprintln(m.Stderr, tiersUsage)
	return usagef("tiers: unknown action %q (want import, show, evaluate or schemes)", args[0])
}

// tiersSetup loads the configuration and the schemes it names.
func (m *Main) tiersSetup() (Config, *tiering.Schemes, error) {
	cfg, err := m.config()
	if err != nil {
		return cfg, nil, err
	}
	schemes, err := tiering.LoadSchemes(cfg.Tiering.SchemesDir, cfg.Tiering.Scheme)
	if err != nil {
		return cfg, nil, concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	return cfg, schemes, nil
}

func (m *Main) tiersImport(ctx context.Context, args []string) error {
	fs := m.flags("tiers import")
	dryRun := fs.Bool("dry-run", false, "validate and report what would change, change nothing")
	skipBad := fs.Bool("skip-bad-rows", false, "import the valid rows of a file that has bad ones")
	encoding := fs.String("encoding", tiering.EncodingAuto, "file encoding: auto, utf-8 or gb18030")
	hubConfig := fs.String("hub", "", "import at HQ: send the file through the hub at this hub.yaml to every branch")
	networkKey := fs.String("network-key", "", "with --hub: the network key file (default: network.key beside hub.yaml)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("tiers import: want exactly one FILE.csv (or - for standard input)")
	}
	cfg, schemes, err := m.tiersSetup()
	if err != nil {
		return err
	}
	path := pos[0]
	var data []byte
	if path == "-" {
		data, err = io.ReadAll(m.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "tiers import: %w", err)
	}
	dbPath := cfg.DB
	if *hubConfig != "" {
		// HQ holds no customer database: the file is checked against an
		// empty one that is thrown away, and each box imports it.
		tmp, err := os.MkdirTemp("", "concierge-tiers-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dbPath = filepath.Join(tmp, "check.db")
	}
	db, err := sqlite.Open(ctx, dbPath, cfg.dbOptions()...)
	if err != nil {
		return err
	}
	defer db.Close()

	im := &tiering.Importer{Store: db, Schemes: schemes}
	rep, err := im.Import(ctx, data, tiering.ImportOptions{
		Source: path, Encoding: *encoding, DryRun: *dryRun, SkipBadRows: *skipBad,
	})
	for _, p := range rep.BadRows {
		fmt.Fprintf(m.Stderr, "concierge: %s:%v\n", path, strings.TrimPrefix(p.Error(), "line "))
	}
	if err != nil {
		if concierge.ErrorCode(err) == concierge.EINVALID && len(rep.BadRows) > 0 && rep.Valid > 0 {
			return concierge.Errorf(concierge.EINVALID, "%s (--skip-bad-rows imports the %d valid rows)",
				concierge.ErrorMessage(err), rep.Valid)
		}
		return err
	}
	if *hubConfig != "" {
		return m.tiersToHub(ctx, *hubConfig, *networkKey, path, data, rep)
	}
	m.Logger.Info("tiers imported", "source", path, "rows", rep.Rows, "bad_rows", len(rep.BadRows),
		"inserted", rep.Inserted, "revised", rep.Revised, "unchanged", rep.Unchanged, "dry_run", rep.DryRun)
	return writeJSON(m, rep)
}

// tiersDate parses --at, defaulting to today in the box's time zone.
func tiersDate(at string) (tiering.Date, error) {
	if at == "" {
		return tiering.DateOf(tiersNow()), nil
	}
	d, err := tiering.ParseDate(at)
	if err != nil {
		return 0, usagef("--at: %v", err)
	}
	return d, nil
}

func (m *Main) tiersShow(ctx context.Context, args []string) error {
	fs := m.flags("tiers show")
	customer := fs.String("customer", "", "customer id")
	at := fs.String("at", "", "date to evaluate the tier on, YYYY-MM-DD (default today)")
	history := fs.Bool("history", false, "list every revision of every month, not only the latest")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *customer == "" || len(pos) > 0 {
		return usagef("tiers show: want --customer ID and no other arguments")
	}
	day, err := tiersDate(*at)
	if err != nil {
		return err
	}
	cfg, schemes, err := m.tiersSetup()
	if err != nil {
		return err
	}
	db, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		return err
	}
	defer db.Close()
	snaps, err := db.TierSnapshots(ctx, *customer)
	if err != nil {
		return err
	}
	a, shown, err := readAssignment(ctx, db, *customer)
	if err != nil {
		return err
	}
	out := struct {
		CustomerID string             `json:"customer_id"`
		At         tiering.Date       `json:"at"`
		Status     *tiering.Status    `json:"status"` // null before the customer's first month
		Changes    []tiering.Change   `json:"changes"`
		Snapshots  []tiering.Snapshot `json:"snapshots"`
		// Assigned is the tier set by hand at enrollment, shown (and used
		// by the lobby) while no imported data gives a status.
		Assigned *tiersAssigned `json:"assigned,omitempty"`
	}{CustomerID: *customer, At: day, Changes: []tiering.Change{}, Snapshots: []tiering.Snapshot{}}
	var p *tiering.Profile
	if len(snaps) > 0 {
		if p, err = tiering.NewProfile(schemes, *customer, snaps, ""); err != nil {
			return err
		}
		if *history {
			if snaps, err = db.TierSnapshotHistory(ctx, *customer); err != nil {
				return err
			}
		}
		out.Changes, out.Snapshots = nonNilChanges(p.ChangesUntil(day)), snaps
	}
	// What the lobby shows (tiering.Schemes.Current) is what show shows;
	// with imported data that starts later, no status.
	st, assigned, err := schemes.Current(*customer, p, a, day)
	switch {
	case err == nil:
		out.Status = &st
		if assigned {
			out.Assigned = shown
		}
	case p == nil || concierge.ErrorCode(err) != concierge.ENOTFOUND:
		return err
	}
	return writeJSON(m, out)
}

// readAssignment is the customer's tier set by hand at enrollment, as
// tiering's rule takes it and as show prints it; nil when there is none.
func readAssignment(ctx context.Context, db *sqlite.DB, id string) (*tiering.Assignment, *tiersAssigned, error) {
	manual, err := db.TierAssignments(ctx)
	if err != nil {
		return nil, nil, err
	}
	a, ok := manual[id]
	if !ok {
		return nil, nil, nil
	}
	return &tiering.Assignment{Scheme: a.Scheme, Level: a.Level, Language: a.Language},
		&tiersAssigned{Scheme: a.Scheme, Level: a.Level, AssignedAt: a.AssignedAt}, nil
}

type tiersAssigned struct {
	Scheme     string    `json:"scheme"`
	Level      string    `json:"level"`
	AssignedAt time.Time `json:"assigned_at"`
}

func nonNilChanges(c []tiering.Change) []tiering.Change {
	if c == nil {
		return []tiering.Change{}
	}
	return c
}

// tiersList collects repeated flags such as --card A --card B.
type tiersList []string

func (l *tiersList) String() string     { return strings.Join(*l, ",") }
func (l *tiersList) Set(v string) error { *l = append(*l, v); return nil }

func (m *Main) tiersEvaluate(ctx context.Context, args []string) error {
	fs := m.flags("tiers evaluate")
	customer := fs.String("customer", "", "evaluate a stored customer's history")
	at := fs.String("at", "", "with --customer: the date, YYYY-MM-DD (default today)")
	scheme := fs.String("scheme", "", "tier scheme (default: the config's tiering.scheme, else icbc-stars)")
	raw := map[string]*string{
		"points":         fs.String("points", "", "star points (星点值)"),
		"assets":         fs.String("assets", "", "average daily financial assets of the month, CNY"),
		"loan_balance":   fs.String("loan-balance", "", "month-end personal loan balance, CNY"),
		"card_spend_12m": fs.String("card-spend", "", "credit-card spend over 12 months without single purchases ≥ 100,000, CNY"),
	}
	var cards, indicators tiersList
	fs.Var(&cards, "card", "card product held, e.g. credit_platinum (repeatable)")
	fs.Var(&indicators, "indicator", "any indicator a scheme declares, NAME=VALUE (repeatable)")
	privateBanking := fs.Bool("private-banking", false, "holds a private-banking agreement")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("tiers evaluate: unexpected argument %q", pos[0])
	}
	hasFacts := len(cards) > 0 || len(indicators) > 0 || *privateBanking
	for _, v := range raw {
		hasFacts = hasFacts || *v != ""
	}
	switch {
	case *customer != "" && hasFacts:
		return usagef("tiers evaluate: --customer uses stored data; give indicators only without it")
	case *customer == "" && *at != "":
		return usagef("tiers evaluate: --at needs --customer")
	case *customer == "" && !hasFacts && *scheme == "":
		return usagef("tiers evaluate: want --customer ID, or --scheme and indicators such as --points N")
	}
	cfg, schemes, err := m.tiersSetup()
	if err != nil {
		return err
	}
	if *customer != "" {
		return m.tiersEvaluateCustomer(ctx, cfg, schemes, *customer, *scheme, *at)
	}

	sc, err := schemes.Resolve(*scheme)
	if err != nil {
		return err
	}
	f := tiering.Facts{Indicators: map[string]tiering.Decimal{}, PrivateBanking: *privateBanking}
	set := func(name, value string) error {
		d, err := schemes.IndicatorValue(name, value)
		if err != nil {
			return err
		}
		f.Indicators[name] = d
		return nil
	}
	for name, v := range raw {
		if *v != "" {
			if err := set(name, *v); err != nil {
				return err
			}
		}
	}
	for _, kv := range indicators {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			return usagef("--indicator %q: want NAME=VALUE", kv)
		}
		if err := set(strings.TrimSpace(name), value); err != nil {
			return err
		}
	}
	for _, c := range cards {
		f.Cards = append(f.Cards, strings.ToLower(strings.TrimSpace(c)))
	}
	slices.Sort(f.Cards)
	f.Cards = slices.Compact(f.Cards)
	return writeJSON(m, struct {
		tiering.Rating
		Facts tiering.Facts `json:"facts"`
	}{sc.Rate(f), f})
}

func (m *Main) tiersEvaluateCustomer(ctx context.Context, cfg Config, schemes *tiering.Schemes, id, scheme, at string) error {
	day, err := tiersDate(at)
	if err != nil {
		return err
	}
	db, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		return err
	}
	defer db.Close()
	snaps, err := db.TierSnapshots(ctx, id)
	if err != nil {
		return err
	}
	if len(snaps) == 0 && scheme == "" {
		a, _, err := readAssignment(ctx, db, id)
		if err != nil {
			return err
		}
		st, _, err := schemes.Current(id, nil, a, day)
		if err != nil {
			return err
		}
		return writeJSON(m, struct {
			tiering.Status
			At       tiering.Date     `json:"at"`
			Greeting string           `json:"greeting,omitempty"`
			Changes  []tiering.Change `json:"changes"`
		}{st, day, st.Greeting(), []tiering.Change{}})
	}
	p, err := tiering.NewProfile(schemes, id, snaps, scheme)
	if err != nil {
		return err
	}
	st, ok := p.On(day)
	if !ok {
		return concierge.Errorf(concierge.ENOTFOUND, "customer %q has no tier data on or before %s (first month %s)", id, day, p.First)
	}
	return writeJSON(m, struct {
		tiering.Status
		At       tiering.Date     `json:"at"`
		Greeting string           `json:"greeting,omitempty"`
		Changes  []tiering.Change `json:"changes"`
	}{st, day, st.Greeting(), nonNilChanges(p.ChangesUntil(day))})
}

func (m *Main) tiersSchemes(args []string) error {
	fs := m.flags("tiers schemes")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("tiers schemes: want at most one scheme NAME")
	}
	_, schemes, err := m.tiersSetup()
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		sc, ok := schemes.Get(pos[0])
		if !ok {
			return concierge.Errorf(concierge.ENOTFOUND, "unknown tier scheme %q (known: %s)", pos[0], strings.Join(schemes.Names(), ", "))
		}
		return writeJSON(m, sc)
	}
	type levelSummary struct {
		ID       string           `json:"id"`
		Name     string           `json:"name"`
		VIP      bool             `json:"vip"`
		Priority tiering.Priority `json:"priority"`
	}
	type schemeSummary struct {
		Name      string            `json:"name"`
		Title     string            `json:"title,omitempty"`
		Source    string            `json:"source"`
		Default   bool              `json:"default"`
		Effective tiering.Effective `json:"effective"`
		Levels    []levelSummary    `json:"levels"`
	}
	var out []schemeSummary
	for _, sc := range schemes.List() {
		s := schemeSummary{Name: sc.Name, Title: sc.Title, Source: sc.Source, Default: sc.Name == schemes.Default,
			Effective: sc.Calendar.Effective}
		for _, l := range sc.Levels {
			s.Levels = append(s.Levels, levelSummary{l.ID, l.Name, l.VIP, l.Service.Priority})
		}
		out = append(out, s)
	}
	return writeJSON(m, out)
}

// tiersToHub sends a checked tier file to every branch through the hub.
func (m *Main) tiersToHub(ctx context.Context, hubConfig, keyFile, path string, data []byte, rep *tiering.ImportReport) error {
	if rep.DryRun {
		return writeJSON(m, rep)
	}
	hc, err := hub.ReadConfig(hubConfig)
	if err != nil {
		return err
	}
	if keyFile == "" {
		keyFile = filepath.Join(filepath.Dir(hubConfig), hub.NetworkKeyFile)
	}
	key, err := hub.ReadKey(keyFile)
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "tiers import --network-key: %w", err)
	}
	subj, err := hub.PublishTiers(ctx, hc, key, filepath.Base(path), data)
	if err != nil {
		return err
	}
	m.Logger.Info("tiers sent to every branch", "source", path, "rows", rep.Rows)
	return writeJSON(m, struct {
		*tiering.ImportReport
		Hub     string `json:"hub"`
		Subject string `json:"subject"`
	}{rep, hubConfig, subj})
}
