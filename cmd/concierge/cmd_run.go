package main

import (
	"context"
	"fmt"
	"time"
)

// shutdownBudget is how long a graceful stop may take before main gives up
// waiting; the database is consistent at every commit, so even a forced
// exit loses nothing that was acknowledged.
const shutdownBudget = 5 * time.Second

func runRun(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("run")
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, "usage: concierge run --config FILE")
		fs.PrintDefaults()
	}
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := m.config()
	if err != nil {
		return err
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
