package tiering

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Cache answers Tier lookups for the alert path from memory. Every customer's
// history is evaluated once per refresh into a Profile, so a lookup is two
// binary searches and never touches the database. Lookups are lock-free and
// safe from any goroutine; refreshes swap in a whole new map.
type Cache struct {
	Store   Store
	Schemes *Schemes
	Logger  *slog.Logger
	// PollInterval, when positive, makes Open start a loop that reloads
	// whenever Store.TiersVersion changes: imports usually run as a
	// separate CLI process beside the daemon.
	PollInterval time.Duration

	refreshMu sync.Mutex
	state     atomic.Pointer[cacheState]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type cacheState struct {
	version  int64
	profiles map[string]*Profile
}

// NewCache returns a Cache over store; call Open (or Refresh) to load it.
func NewCache(store Store, schemes *Schemes) *Cache {
	return &Cache{Store: store, Schemes: schemes, Logger: slog.Default()}
}

// Open loads every customer and, if PollInterval is set, starts watching
// for imports.
func (c *Cache) Open(ctx context.Context) error {
	if err := c.Refresh(ctx); err != nil {
		return err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.PollInterval > 0 {
		c.wg.Add(1)
		go c.poll()
	}
	return nil
}

// Close stops the watch loop and waits for it; calling it twice is harmless.
func (c *Cache) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	return nil
}

func (c *Cache) poll() {
	defer c.wg.Done()
	t := time.NewTicker(c.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			if err := c.refreshIfChanged(c.ctx); err != nil && c.ctx.Err() == nil {
				c.logger().Error("refresh tier cache", "err", err)
			}
		}
	}
}

func (c *Cache) logger() *slog.Logger {
	l := c.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.WithGroup("tiering")
}

// Refresh reloads every customer from the Store.
func (c *Cache) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	return c.load(ctx)
}

func (c *Cache) refreshIfChanged(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	v, err := c.Store.TiersVersion(ctx)
	if err != nil {
		return fmt.Errorf("tiers version: %w", err)
	}
	if st := c.state.Load(); st != nil && st.version == v {
		return nil
	}
	return c.load(ctx)
}

// load must hold refreshMu. The version is read before the data so that an
// import landing in between makes the next poll reload again rather than
// be missed.
func (c *Cache) load(ctx context.Context) error {
	v, err := c.Store.TiersVersion(ctx)
	if err != nil {
		return fmt.Errorf("tiers version: %w", err)
	}
	profiles := map[string]*Profile{}
	skipped := 0
	err = c.Store.EachTierCustomer(ctx, func(id string, snaps []Snapshot) error {
		p, err := NewProfile(c.Schemes, id, snaps, "")
		if err != nil {
			// One customer naming a scheme the operator has since removed
			// must not blind the whole branch.
			// The error names the customer: the id goes at Debug only.
			c.logger().Warn("a customer's tier data cannot be evaluated and is skipped (the id and reason at debug level)")
			c.logger().Debug("tier skipped", "customer_id", id, "err", err)
			skipped++
			return nil
		}
		profiles[id] = p
		return nil
	})
	if err != nil {
		return fmt.Errorf("load tiers: %w", err)
	}
	c.state.Store(&cacheState{version: v, profiles: profiles})
	c.logger().Info("tier cache loaded", "customers", len(profiles), "skipped", skipped, "version", v)
	return nil
}

// Tier returns the customer's status at t (its calendar date in t's
// location), or false if the customer has no tier data by then.
func (c *Cache) Tier(customerID string, at time.Time) (Status, bool) {
	st := c.state.Load()
	if st == nil {
		return Status{}, false
	}
	p, ok := st.profiles[customerID]
	if !ok {
		return Status{}, false
	}
	return p.At(at)
}

// Profile returns the customer's evaluated history.
func (c *Cache) Profile(customerID string) (*Profile, bool) {
	st := c.state.Load()
	if st == nil {
		return nil, false
	}
	p, ok := st.profiles[customerID]
	return p, ok
}

// Len is the number of customers loaded.
func (c *Cache) Len() int {
	if st := c.state.Load(); st != nil {
		return len(st.profiles)
	}
	return 0
}
