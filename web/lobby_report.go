package web

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"concierge"
	"concierge/alert"
)

// ServiceReports gives the branch manager's service report (aggregates
// only: no names, faces or ids) for the manager's panel of the lobby page:
// the daemon's database with level names from the tier schemes.
type ServiceReports interface {
	// RecentServiceReport covers the last days calendar days, today
	// included, as `concierge report --since <days>d` does.
	RecentServiceReport(ctx context.Context, days int) (alert.ServiceReport, error)
}

// reportDays is how far back the manager's panel looks.
const reportDays = 7

// role is the signed-in person's role; RoleStaff when unknown.
func (l *Lobby) role(s session) Role {
	if c := l.auth.byName[s.Name]; c != nil {
		return c.role
	}
	return RoleStaff
}

// handleReport answers the manager's panel. Only managers see how the
// branch serves its tiers; other staff get 403 and the page shows them
// no panel.
func (l *Lobby) handleReport(w http.ResponseWriter, r *http.Request, s session) {
	if l.role(s) != RoleManager {
		writeJSONError(w, http.StatusForbidden, concierge.EUNAUTHORIZED, "the service report is for the branch manager")
		return
	}
	if l.cfg.Reports == nil {
		writeJSONError(w, http.StatusNotFound, concierge.ENOTFOUND, "no service report on this box")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	rep, err := l.cfg.Reports.RecentServiceReport(ctx, reportDays)
	if err != nil {
		l.log.Error("service report failed", slog.Any("error", err))
		writeJSONError(w, http.StatusServiceUnavailable, concierge.EUNAVAILABLE, "the service report could not be read; try again")
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
