package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"concierge"
	"concierge/alert"
)

const watchUsage = `usage: concierge watch [--json] [--since DURATION|all] [--feed arrival|manager|visit] [--config FILE]
       concierge watch --claim ALERT_ID --by NAME
Prints the branch's alerts, and who claimed them, as they arrive until interrupted; --claim takes
an alert ("I'm on it") for every screen to see. Connects to nats.url, or to the embedded server of
the daemon running on this box (nats.listen) when nats.url is empty.`

func runWatch(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("watch")
	asJSON := fs.Bool("json", false, "print each alert exactly as published, one JSON object per line")
	since := fs.String("since", "", `also print earlier alerts: from this long ago (e.g. 30m), or "all" the stream keeps`)
	feedName := fs.String("feed", "arrival", "arrival (staff alerts), manager (with risk flags) or visit (every check-in)")
	claimID := fs.String("claim", "", "claim this alert id and exit")
	claimBy := fs.String("by", "", "who claims (with --claim)")
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
		return concierge.Errorf(concierge.EINVALID, "%v", err)
	}
	if *claimID != "" || *claimBy != "" {
		return m.claim(ctx, cfg, url, *claimID, *claimBy)
	}
	sub, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: cfg.Branch, Conn: natsClient(cfg.NATS, url, "concierge-watch"), Logger: m.Logger})
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%v", err)
	}
	if err := sub.Open(); err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "%v", err)
	}
	defer sub.Close()
	var mu sync.Mutex
	emit := func(line string) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := fmt.Fprintln(m.Stdout, line)
		return err
	}
	// Claims come on their own feed; show them beside the alerts so every
	// terminal sees who is already on it.
	var wg sync.WaitGroup
	if feed == alert.FeedArrival {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range sub.Alerts(ctx, alert.FeedClaim, start) {
				c, err := alert.DecodeClaim(a.Data)
				if err != nil {
					m.Logger.Warn("unreadable claim skipped", slog.Any("error", err))
					continue
				}
				line := fmt.Sprintf("%s  claimed  %s  by %s", c.At.In(time.Local).Format(time.TimeOnly), c.AlertID, c.By)
				if *asJSON {
					line = string(a.Data)
				}
				if emit(line) != nil {
					return
				}
			}
		}()
	}
	// Closing the connection ends the claims reader however it is blocked;
	// only then wait for it.
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
		line := formatAlert(a, time.Local)
		if *asJSON {
			line = string(a.Data)
		}
		if err := emit(line); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
	}
	return nil
}

// claim publishes one claim; a second claim of the same alert is refused.
func (m *Main) claim(ctx context.Context, cfg Config, url, id, by string) error {
	if id == "" || by == "" {
		return usagef("watch: --claim needs an alert id and --by NAME")
	}
	c, err := alert.NewClaimer(natsClient(cfg.NATS, url, "concierge-claim"), cfg.Branch, m.Logger)
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "%v", err)
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Claim(cctx, id, by, time.Now()); err != nil {
		if errors.Is(err, alert.ErrAlreadyClaimed) {
			return concierge.Errorf(concierge.ECONFLICT, "alert %s was already claimed", id)
		}
		return concierge.Errorf(concierge.EUNAVAILABLE, "%v", err)
	}
	_, err = fmt.Fprintf(m.Stdout, "claimed %s as %s\n", id, by)
	return err
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

// formatAlert is the line a staff terminal shows:
// 10:42:07  door-1  VIP 五星  王女士  (C1001)  RM Li  distance 0.31
func formatAlert(a alert.Alert, loc *time.Location) string {
	parts := []string{a.Time.In(loc).Format(time.TimeOnly), a.Camera}
	if t := a.Tier; t != nil {
		level := t.LevelName
		if level == "" {
			level = t.Level
		}
		if t.VIP {
			level = strings.TrimSpace("VIP " + level)
		}
		if level != "" {
			parts = append(parts, level)
		}
	}
	// The tier's form of address (王女士) is what staff say; the masked
	// display name (王*) is the fallback.
	name := a.Customer.FormOfAddress
	if name == "" {
		name = a.Customer.DisplayName
	}
	if name != "" {
		parts = append(parts, name)
	}
	parts = append(parts, "("+a.Customer.ID+")")
	if a.RelationshipManager != "" {
		parts = append(parts, "RM "+a.RelationshipManager)
	}
	parts = append(parts, fmt.Sprintf("distance %.2f", a.Match.Distance))
	if len(a.RiskFlags) > 0 {
		var flags []string
		for _, f := range a.RiskFlags {
			flags = append(flags, f.Kind+":"+f.Reason)
		}
		parts = append(parts, "RISK "+strings.Join(flags, ","))
	}
	return strings.Join(parts, "  ")
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
