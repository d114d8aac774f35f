package alert

import (
	"fmt"
	"strings"
	"time"
)

// Line is the alert as a staff terminal shows it (concierge watch), in
// loc's time:
// 10:42:07  door-1  VIP 五星  王女士  (C1001)  RM Li  distance 0.31
func (a Alert) Line(loc *time.Location) string {
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
	if a.VerifiedBy != "" {
		parts = append(parts, "verified by "+a.VerifiedBy)
	}
	if e := a.Escalated; e != nil {
		parts = append(parts, "ESCALATED: unclaimed for "+waited(time.Duration(e.After)))
	}
	return strings.Join(parts, "  ")
}

// Line is a claim, an escalation, a "not this person" mark or a verify
// card and its answer as a staff terminal shows it, in loc's time:
// 10:42:31  claimed  01JP98PWCR5S2K33TS5K32AFDS  by Li
// 10:43:07  ESCALATED  01JP98PWCR5S2K33TS5K32AFDS  (C1001)  unclaimed for 60s
// 10:43:30  withdrawn  01JP98PWCR5S2K33TS5K32AFDS  not this person, by Li: different person
func (e Event) Line(loc *time.Location) string {
	switch {
	case e.Claim != nil:
		c := e.Claim
		return fmt.Sprintf("%s  claimed  %s  by %s", c.At.In(loc).Format(time.TimeOnly), c.AlertID, c.By)
	case e.Escalation != nil:
		x := e.Escalation
		return fmt.Sprintf("%s  ESCALATED  %s  (%s)  unclaimed for %s", x.At.In(loc).Format(time.TimeOnly), x.AlertID,
			x.CustomerID, waited(time.Duration(x.After)))
	case e.Rejection != nil:
		r := e.Rejection
		line := fmt.Sprintf("%s  withdrawn  %s  not this person, by %s", r.At.In(loc).Format(time.TimeOnly), r.AlertID, r.By)
		if r.Reason != "" {
			line += ": " + r.Reason
		}
		return line
	case e.Card != nil:
		c := e.Card
		name := c.Customer.FormOfAddress
		if name == "" {
			name = c.Customer.DisplayName
		}
		return fmt.Sprintf("%s  VERIFY  %s  %s  is this %s (%s)?  distance %.2f  answer by %s: --confirm or --dismiss %s",
			c.Time.In(loc).Format(time.TimeOnly), c.ID, c.Camera, strings.TrimSpace(name), c.Customer.ID, c.Match.Distance,
			c.ExpiresAt.In(loc).Format(time.TimeOnly), c.ID)
	case e.CardAnswer != nil:
		a := e.CardAnswer
		return fmt.Sprintf("%s  %s  %s  by %s", a.Time.In(loc).Format(time.TimeOnly), a.Answer, a.CardID, a.By)
	case e.Arrival != nil:
		return Alert{Message: *e.Arrival, Seq: e.Seq, Subject: e.Subject, Stored: e.Stored, Data: e.Data}.Line(loc)
	}
	return string(e.Data)
}

// waited writes a wait as staff say it: 60s, 5m, 2m30s.
func waited(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
