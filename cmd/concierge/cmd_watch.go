package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/term"

	"concierge"
	"concierge/alert"
)

const watchUsage = `usage: concierge watch [--json] [--since DURATION|all] [--feed arrival|manager|visit] [--config FILE]
       concierge watch --claim ALERT_ID --by NAME
       concierge watch --reject ALERT_ID --by NAME [--reason TEXT]
       concierge watch --confirm CARD_ID --by NAME | --dismiss CARD_ID --by NAME
Prints the branch's alerts as they arrive until interrupted, with who claimed them, which were
escalated to the manager and which were withdrawn as "not this person". --claim takes an alert
("I'm on it") for every screen to see; --reject marks it as naming the wrong customer, which
withdraws it on every screen and makes matching that customer stricter. "Please verify" cards (a
near match, shown with VERIFY) are answered with --confirm (it becomes a normal arrival, verified by
NAME) or --dismiss (the card and its face are deleted). All are checked by the daemon, which asks for the staff member's password or PIN (read from standard input, or from
CONCIERGE_STAFF_PASSWORD). Connects to nats.url with its credentials, or, when nats.url is empty, to
the embedded server of the daemon running on this box (nats.listen) with the box's lobby identity,
which only root and the service's user can read.`

func runWatch(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("watch")
	asJSON := fs.Bool("json", false, "print each alert exactly as published, one JSON object per line")
	since := fs.String("since", "", `also print earlier alerts: from this long ago (e.g. 30m), or "all" the stream keeps`)
	feedName := fs.String("feed", "arrival", "arrival (staff alerts), manager (with risk flags) or visit (every check-in)")
	claimID := fs.String("claim", "", "claim this alert id and exit")
	rejectID := fs.String("reject", "", `mark this alert "not this person" and exit`)
	claimBy := fs.String("by", "", "who claims or marks (with --claim or --reject)")
	reason := fs.String("reason", "", "why it is not this person (with --reject; optional)")
	confirmID := fs.String("confirm", "", `confirm this "please verify" card: it becomes an arrival`)
	dismissID := fs.String("dismiss", "", `dismiss this "please verify" card: not this customer`)
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, watchUsage)
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("watch: unexpected argument %q", pos[0])
	}
	feed, err := alert.ParseFeed(*feedName)
	if err != nil {
		return usagef("watch: --%v", err)
	}
	start, err := parseSince(*since, time.Now())
	if err != nil {
		return usagef("watch: --since: %v", err)
	}
	cfg, err := m.config()
	if err != nil {
		return err
	}
	url, err := watchURL(cfg.NATS)
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	actions := 0
	for _, a := range []string{*claimID, *rejectID, *confirmID, *dismissID} {
		if a != "" {
			actions++
		}
	}
	switch {
	case actions > 1:
		return usagef("watch: --claim, --reject, --confirm and --dismiss exclude each other")
	case *confirmID != "":
		return m.answerCard(ctx, cfg, url, "confirm", *confirmID, *claimBy)
	case *dismissID != "":
		return m.answerCard(ctx, cfg, url, "dismiss", *dismissID, *claimBy)
	case *reason != "" && *rejectID == "":
		return usagef("watch: --reason goes with --reject")
	case *rejectID != "":
		return m.reject(ctx, cfg, url, *rejectID, *claimBy, *reason)
	case *claimID != "" || *claimBy != "":
		return m.claim(ctx, cfg, url, *claimID, *claimBy)
	}
	id := alert.IdentityLobby
	if feed == alert.FeedManager {
		id = alert.IdentityManager
	}
	conn, err := watchConn(cfg, url, "concierge-watch", id)
	if err != nil {
		return err
	}
	sub, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: cfg.Branch, Conn: conn, Logger: m.Logger})
	if err != nil {
		return err
	}
	if err := sub.Open(); err != nil {
		return err
	}
	defer sub.Close()
	var mu sync.Mutex
	emit := func(line string) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := fmt.Fprintln(m.Stdout, line)
		return err
	}
	// Claims, escalations and "not this person" marks come on feeds of
	// their own; show them beside the alerts so every terminal sees who is
	// on it, what went to the manager and what was withdrawn. Each feed is
	// read by its own consumer, filtered on its one subject, so a lobby
	// account needs a permission per subject and never an unfiltered one
	// (docs/alerts.md); the price is that lines of different feeds may
	// interleave out of order when catching up.
	var wg sync.WaitGroup
	if feed == alert.FeedArrival {
		sides := []alert.Feed{alert.FeedClaim, alert.FeedEscalation, alert.FeedRejection, alert.FeedErasure}
		if cfg.verifyBand() {
			sides = append(sides, alert.FeedVerify)
		}
		for _, side := range sides {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for e, err := range sub.Events(ctx, start, side) {
					if err != nil {
						m.Logger.Warn("unreadable message skipped", slog.String("feed", string(side)), slog.Any("error", err))
						continue
					}
					line := e.Line(time.Local)
					if *asJSON {
						line = string(e.Data)
					}
					if emit(line) != nil {
						return
					}
				}
			}()
		}
	}
	// Closing the connection ends the side readers however they are
	// blocked; only then wait for them.
	defer func() {
		sub.Close()
		wg.Wait()
	}()
	for a, err := range sub.Alerts(ctx, feed, start) {
		if err != nil {
			// One bad message must not blind the terminal to the next.
			m.Logger.Warn("unreadable alert skipped", slog.Any("error", err))
			continue
		}
		line := a.Line(time.Local)
		if *asJSON {
			line = string(a.Data)
		}
		if err := emit(line); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
	}
	return nil
}

// claim asks the daemon's desk to record a claim; a second claim of the
// same alert is refused.
func (m *Main) claim(ctx context.Context, cfg Config, url, id, by string) error {
	if id == "" || by == "" {
		return usagef("watch: --claim needs an alert id and --by NAME")
	}
	if err := m.askDesk(ctx, cfg, url, "claim", alert.DeskRequest{AlertID: id, By: by}); err != nil {
		return err
	}
	_, err := fmt.Fprintf(m.Stdout, "claimed %s as %s\n", id, by)
	return err
}

// reject asks the daemon's desk to mark one alert "not this person"; a
// second mark is refused. The desk takes the customer from its own record
// of the alert.
func (m *Main) reject(ctx context.Context, cfg Config, url, id, by, reason string) error {
	if by == "" {
		return usagef("watch: --reject needs --by NAME")
	}
	if _, err := ulid.ParseStrict(id); err != nil {
		return usagef("watch: --reject %q is not an alert id", id)
	}
	if err := m.askDesk(ctx, cfg, url, "reject", alert.DeskRequest{AlertID: id, By: by, Reason: reason}); err != nil {
		return err
	}
	_, err := fmt.Fprintf(m.Stdout, "marked %s not this person as %s\n", id, by)
	return err
}

// answerCard asks the daemon's desk to confirm or dismiss a verify card.
func (m *Main) answerCard(ctx context.Context, cfg Config, url, verb, id, by string) error {
	if by == "" {
		return usagef("watch: --%s needs --by NAME", verb)
	}
	if _, err := ulid.ParseStrict(id); err != nil {
		return usagef("watch: --%s %q is not a card id", verb, id)
	}
	if err := m.askDesk(ctx, cfg, url, verb, alert.DeskRequest{AlertID: id, By: by}); err != nil {
		return err
	}
	done := "confirmed " + id + " as an arrival"
	if verb == "dismiss" {
		done = "dismissed " + id
	}
	_, err := fmt.Fprintf(m.Stdout, "%s, by %s\n", done, by)
	return err
}

// askDesk sends a claim or mark with the staff member's password or PIN,
// which the daemon checks against web.staff: holding the box's NATS
// credentials is not enough to act as a member of staff.
func (m *Main) askDesk(ctx context.Context, cfg Config, url, verb string, req alert.DeskRequest) error {
	secret, err := m.staffSecret(req.By)
	if err != nil {
		return err
	}
	req.Secret = secret
	conn, err := watchConn(cfg, url, "concierge-"+verb, alert.IdentityLobby)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return alert.AskDesk(cctx, conn, cfg.Branch, verb, req, m.Logger)
}

// staffSecret is CONCIERGE_STAFF_PASSWORD, or one line read from standard
// input (a prompt on stderr when it is a terminal).
func (m *Main) staffSecret(by string) (string, error) {
	if s := os.Getenv("CONCIERGE_STAFF_PASSWORD"); s != "" {
		return s, nil
	}
	if m.Stdin == nil {
		return "", concierge.Errorf(concierge.EUNAUTHORIZED, "the password or PIN of %s is required (standard input or CONCIERGE_STAFF_PASSWORD)", by)
	}
	if f, ok := m.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(m.Stderr, "password or PIN of %s: ", by)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(m.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(io.LimitReader(m.Stdin, 1024)).ReadString('\n')
	if line = strings.TrimRight(line, "\r\n"); line == "" {
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		return "", concierge.Errorf(concierge.EUNAUTHORIZED, "the password or PIN of %s is required (standard input or CONCIERGE_STAFF_PASSWORD)", by)
	}
	return line, nil
}

// watchConn is how a terminal connects: with nats.url's configured
// credentials, or to this box's embedded server as the box's lobby (or
// manager) identity, whose seed only root and the service's user can read.
func watchConn(cfg Config, url, name string, id alert.Identity) (alert.ConnConfig, error) {
	if cfg.NATS.URL != "" {
		return natsClient(cfg.NATS, url, name), nil
	}
	creds := cfg.natsCredentials()
	if _, err := creds.PublicKey(id); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return alert.ConnConfig{}, concierge.Errorf(concierge.EUNAUTHORIZED,
				"the box's NATS credentials in %s are readable only by root and the service's user: run watch as one of them", creds.Dir)
		}
		return alert.ConnConfig{}, concierge.Wrapf(err,
			"the box's NATS credentials are missing from %s (has `concierge run` started with this config?)", creds.Dir)
	}
	c := creds.Conn(url, name, id)
	c.TLSCA = cfg.NATS.TLSCA
	return c, nil
}

// parseSince turns --since into where the subscription starts.
func parseSince(s string, now time.Time) (alert.Start, error) {
	switch s {
	case "":
		return alert.Start{}, nil
	case "all":
		return alert.Start{All: true}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return alert.Start{}, fmt.Errorf(`%q is neither a positive duration (30m, 2h) nor "all"`, s)
	}
	return alert.Start{Since: now.Add(-d)}, nil
}

// watchURL is where watch finds NATS: nats.url, or the embedded server that
// `concierge run` starts at nats.listen on this box.
func watchURL(c NATSConfig) (string, error) {
	if c.URL != "" {
		return c.URL, nil
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", fmt.Errorf("nats.listen %q: %w", c.Listen, err)
	}
	if port == "-1" || port == "0" {
		return "", errors.New("nats.listen: a random port cannot be reached from another process; set nats.url")
	}
	// A server listening on every interface is reached on loopback.
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, port), nil
}

// natsClient maps the nats config's client settings (credentials, TLS)
// onto a connection to url.
func natsClient(c NATSConfig, url, name string) alert.ConnConfig {
	return alert.ConnConfig{
		URL:          url,
		Name:         name,
		User:         c.User,
		Password:     c.Password,
		Token:        c.Token,
		NKeySeedFile: c.NKeySeedFile,
		CredsFile:    c.CredsFile,
		TLSCA:        c.TLSCA,
		TLSCert:      c.TLSCert,
		TLSKey:       c.TLSKey,
	}
}
