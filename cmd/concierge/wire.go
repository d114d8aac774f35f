package main

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"concierge/checkin"
	"concierge/sqlite"
	"concierge/tiering"
)

// tierLookup adapts the tiering cache to what check-in needs: the staff's
// view of the tier, and the risk flags separately.
type tierLookup struct{ cache *tiering.Cache }

var _ checkin.TierLookup = tierLookup{}

func (t tierLookup) Lookup(customerID string, at time.Time) (*checkin.Tier, []checkin.RiskFlag) {
	st, ok := t.cache.Tier(customerID, at)
	if !ok {
		return nil, nil
	}
	sl := st.ServiceLevel
	lane := sl.Lane
	if sl.Room != "" {
		lane = sl.Room
	}
	tier := &checkin.Tier{
		Scheme:    st.Scheme,
		Level:     st.Level,
		LevelName: st.LevelName,
		VIP:       st.VIP,
		Service: &checkin.ServiceLevel{
			// tiering ranks none..urgent as 0..4; alerts say 1 for most urgent.
			Priority: 5 - max(0, sl.Priority.Rank()),
			Greeting: st.Greeting(),
			Lane:     lane,
			NotifyRM: sl.NotifyRM,
			Cooldown: time.Duration(sl.Cooldown),
		},
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

// directory gives check-in the customer's display name from the store.
type directory struct{ db *sqlite.DB }

func (d directory) DisplayName(ctx context.Context, customerID string) (string, error) {
	c, err := d.db.Customer(ctx, customerID)
	if err != nil {
		return "", err
	}
	return c.DisplayName, nil
}

// maskName applies a name-masking policy for screens in the lobby:
//   - "full": the name as enrolled
//   - "surname" (default): the first character of a Chinese name or the
//     first word of a Latin one, then "*": 王女士 → 王*, "Wang Xiaoming" → "Wang *"
//   - "initial": one character and a dot
func maskName(policy string) func(string) string {
	return func(name string) string {
		name = strings.TrimSpace(name)
		if name == "" {
			return ""
		}
		switch policy {
		case "full":
			return name
		case "initial":
			r, _ := utf8.DecodeRuneInString(name)
			return string(r) + "."
		}
		if r, _ := utf8.DecodeRuneInString(name); r >= 0x2E80 {
			return string(r) + "*"
		}
		if i := strings.IndexByte(name, ' '); i > 0 {
			return name[:i] + " *"
		}
		r, _ := utf8.DecodeRuneInString(name)
		return string(r) + "*"
	}
}
