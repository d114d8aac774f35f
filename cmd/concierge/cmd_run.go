package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"concierge/internal/nativelog"
	"concierge/vision"
)

// shutdownBudget is how long a graceful stop may take before main gives up
// waiting; the database is consistent at every commit, so even a forced
// exit loses nothing that was acknowledged.
const shutdownBudget = 5 * time.Second

func runRun(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("run")
	defaults := fs.Bool("defaults", false, "run on the built-in defaults when no --config is given")
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, "usage: concierge run --config FILE | --defaults")
		fs.PrintDefaults()
	}
	if _, err := parse(fs, args); err != nil {
		return err
	}
	// The defaults put the database under the running user's home (root's
	// /var/lib/concierge) and listen on fixed ports: fine for a demo, a
	// surprise on a branch box that lost its --config in a unit file.
	if m.configPath == "" && !*defaults {
		d := DefaultConfig()
		return usagef("run: no configuration: pass --config FILE (or set CONCIERGE_CONFIG), "+
			"or --defaults to run on the built-in defaults (database %s, NATS %s, HTTP %s)", d.DB, d.NATS.Listen, d.HTTP.Addr)
	}
	// OpenCV's video backends print to fd 2 beneath the logger; their
	// lines become records of the log instead (internal/nativelog). Only
	// for the real process: a test's Main has its own Stderr.
	var native *nativelog.Capture
	if m.Stderr == io.Writer(os.Stderr) {
		c, err := nativelog.Start()
		if err != nil {
			fmt.Fprintf(m.Stderr, "concierge: warning: %v; native libraries print straight to stderr\n", err)
		} else {
			native = c
			defer native.Close() // after the daemon's Close: its cameras' last words are logged
			m.Stderr = native.Stderr()
		}
	}
	cfg, err := m.config()
	if err != nil {
		return err
	}
	if native != nil {
		sources := make([]string, len(cfg.Cameras))
		for i, cam := range cfg.Cameras {
			sources[i] = cam.Source
		}
		native.Log(m.Logger.With("component", "native"), func(s string) string { return vision.MaskCredentials(s, sources...) })
	}
	if os.Geteuid() == 0 {
		m.Logger.Warn("running as root: the systemd unit (deploy/concierge.service) runs the daemon as its own user")
	}
	d := NewDaemon(cfg, m.Logger)
	if err := d.Open(ctx); err != nil {
		return err
	}
	if m.onOpen != nil {
		m.onOpen(d)
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	done := make(chan error, 1)
	go func() { done <- d.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(shutdownBudget):
		return fmt.Errorf("shutdown took longer than %v", shutdownBudget)
	}
}
