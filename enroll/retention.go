package enroll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"concierge"
)

// FilingThreshold is the number of people whose face data obliges the
// operator to file with the provincial CAC (Measures for the Security
// Management of Face Recognition Technology Applications).
const FilingThreshold = 100_000

// RetentionStore is what retention needs of storage (sqlite.DB).
type RetentionStore interface {
	// StaleCustomers lists customers holding templates who were last
	// recognised, or else last enrolled, before the given time.
	StaleCustomers(ctx context.Context, before time.Time) ([]string, error)
	// Erase deletes the customer's face data and ends their consent at
	// the given time for the reason, as Store.Forget does.
	Erase(ctx context.Context, customerID string, at time.Time, reason string) (int, error)
	// FaceDataSubjects counts the people whose templates are stored.
	FaceDataSubjects(ctx context.Context) (int, error)
}

// Retention keeps face data no longer than the bank's retention period:
// templates of customers not seen for MaxAge are deleted and their consent
// ended with the reason WithdrawnRetention. It also counts the people whose
// face data is stored, against the CAC filing threshold.
type Retention struct {
	Store RetentionStore
	// Gallery, when set, drops expired customers at once.
	Gallery *Gallery
	// MaxAge is the retention period; 0 keeps templates until withdrawn.
	MaxAge time.Duration
	// WarnAt logs a warning once the stored people reach it; 0: never.
	WarnAt int
	Now    func() time.Time
	Logger *slog.Logger
}

// RetentionReport is what one Run did and found.
type RetentionReport struct {
	Expired   int // customers whose templates were deleted
	Templates int // templates deleted
	Subjects  int // people whose face data is stored after the run
	// OverWarn: Subjects reached WarnAt.
	OverWarn bool
}

// Run expires stale customers, then counts the people left. A customer who
// fails to expire is reported in the error and the others still are.
func (r *Retention) Run(ctx context.Context) (RetentionReport, error) {
	var rep RetentionReport
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if r.MaxAge > 0 {
		at := now().UTC()
		ids, err := r.Store.StaleCustomers(ctx, at.Add(-r.MaxAge))
		if err != nil {
			return rep, fmt.Errorf("retention: %w", err)
		}
		failed, lastErr := 0, error(nil)
		for _, id := range ids {
			n, err := r.Store.Erase(ctx, id, at, WithdrawnRetention)
			if concierge.ErrorCode(err) == concierge.ENOTFOUND {
				continue // erased meanwhile
			}
			if err != nil {
				// The error is logged above Debug: the id only at Debug.
				log.Debug("face data not expired", "customer", id, "err", err)
				failed, lastErr = failed+1, err
				if ctx.Err() != nil {
					break
				}
				continue
			}
			if r.Gallery != nil {
				r.Gallery.Remove(id)
			}
			rep.Expired++
			rep.Templates += n
			log.Debug("face data expired", "customer", id, "templates_deleted", n)
		}
		if failed > 0 {
			errs = append(errs, fmt.Errorf("retention: face data of %d customers not erased (Debug logs name them), last: %w", failed, lastErr))
		}
		if rep.Expired > 0 {
			log.Info("face data of customers not seen within the retention period deleted",
				"customers", rep.Expired, "templates", rep.Templates, "retention", r.MaxAge)
		}
	}
	n, err := r.Store.FaceDataSubjects(ctx)
	if err != nil {
		return rep, errors.Join(append(errs, fmt.Errorf("retention: %w", err))...)
	}
	rep.Subjects = n
	if r.WarnAt > 0 && n >= r.WarnAt {
		rep.OverWarn = true
		log.Warn("face data of many people stored: the CAC filing duty starts at 100,000 across the bank's boxes",
			"people", n, "warn_at", r.WarnAt, "filing_threshold", FilingThreshold)
	}
	return rep, errors.Join(errs...)
}
