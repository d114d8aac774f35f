package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"concierge"

	"concierge/checkin"
	"concierge/sqlite"
	"concierge/tiering"
)

// tierLookup gives check-in and identify the staff's view of a customer's
// tier and, separately, the risk flags: from imported core-banking profiles
// (the tiering cache) first, else from a tier an operator assigned at
// enrollment.
type tierLookup struct {
	cache   *tiering.Cache
	schemes *tiering.Schemes

	mu     sync.RWMutex
	manual map[string]sqlite.TierAssignment
}

var _ checkin.TierLookup = (*tierLookup)(nil)

// openTiers loads the schemes, the profile cache and the manual tiers; a
// positive poll makes the cache pick up imports made by other processes.
func openTiers(ctx context.Context, cfg Config, db *sqlite.DB, log *slog.Logger, poll time.Duration) (*tierLookup, error) {
	schemes, err := tiering.LoadSchemes(cfg.Tiering.SchemesDir, cfg.Tiering.Scheme)
	if err != nil {
		return nil, concierge.Errorf(concierge.EINVALID, "tiering: %w", err)
	}
	cache := tiering.NewCache(db, schemes)
	cache.Logger = log
	cache.PollInterval = poll
	if err := cache.Open(ctx); err != nil {
		return nil, fmt.Errorf("tier cache: %w", err)
	}
	t := &tierLookup{cache: cache, schemes: schemes}
	if err := t.reload(ctx, db); err != nil {
		cache.Close()
		return nil, err
	}
	return t, nil
}

func (t *tierLookup) reload(ctx context.Context, db *sqlite.DB) error {
	m, err := db.TierAssignments(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.manual = m
	t.mu.Unlock()
	return nil
}

func (t *tierLookup) Lookup(customerID string, at time.Time) (*checkin.Tier, []checkin.RiskFlag) {
	p, _ := t.cache.Profile(customerID)
	t.mu.RLock()
	m, ok := t.manual[customerID]
	t.mu.RUnlock()
	var a *tiering.Assignment
	if ok {
		a = &tiering.Assignment{Scheme: m.Scheme, Level: m.Level, Language: m.Language}
	}
	st, assigned, err := t.schemes.Current(customerID, p, a, tiering.DateOf(at))
	switch {
	case err != nil:
		return nil, nil
	case assigned:
		return &checkin.Tier{Scheme: st.Scheme, Level: st.Level, LevelName: st.CustomerLevelName(), VIP: st.VIP,
			Service: serviceLevel(st.ServiceLevel, st.Greeting()), Language: st.Language}, nil
	}
	tier := &checkin.Tier{
		Scheme: st.Scheme, Level: st.Level, LevelName: st.CustomerLevelName(), VIP: st.VIP,
		Service:             serviceLevel(st.ServiceLevel, st.Greeting()),
		RelationshipManager: st.RelationshipManager.Name,
		FormOfAddress:       st.FormOfAddress,
		Language:            st.Language,
	}
	var risk []checkin.RiskFlag
	for _, f := range st.RiskFlags {
		risk = append(risk, checkin.RiskFlag{Kind: string(f.Kind), Reason: f.Reason})
	}
	return tier, risk
}

func serviceLevel(sl tiering.ServiceLevel, greeting string) *checkin.ServiceLevel {
	return &checkin.ServiceLevel{
		Priority: sl.AlertPriority(),
		Greeting: greeting,
		Lane:     sl.Place(),
		NotifyRM: sl.NotifyRM,
		Cooldown: time.Duration(sl.Cooldown),
		// 0 (branch default) and NeverEscalate (< 0) keep their meaning.
		EscalateAfter: time.Duration(sl.EscalateAfter),
	}
}

// Close stops the cache's reload loop.
func (t *tierLookup) Close() error { return t.cache.Close() }

// directory gives check-in the customer's display name from the store.
type directory struct{ db *sqlite.DB }

func (d directory) DisplayName(ctx context.Context, customerID string) (string, error) {
	c, err := d.db.Customer(ctx, customerID)
	if err != nil {
		return "", err
	}
	return c.DisplayName, nil
}
