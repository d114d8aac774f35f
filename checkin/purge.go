package checkin

import (
	"context"
	"log/slog"
	"time"

	"concierge"
)

// PurgeLoop deletes visits older than retention from the VisitLog at once
// and then every interval, until ctx is cancelled. It runs in the caller's
// goroutine, so the caller owns its lifetime; it returns nil when ctx ends
// and an EINVALID error for bad arguments or a missing VisitLog. A failed
// purge is logged and retried at the next interval.
func (s *Service) PurgeLoop(ctx context.Context, every, retention time.Duration) error {
	switch {
	case s.VisitLog == nil:
		return concierge.Errorf(concierge.EINVALID, "purge visits: no visit log")
	case every <= 0:
		return concierge.Errorf(concierge.EINVALID, "purge visits: interval %v must be > 0", every)
	case retention <= 0:
		return concierge.Errorf(concierge.EINVALID, "purge visits: retention %v must be > 0", retention)
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		before := now().Add(-retention)
		n, err := s.VisitLog.PurgeVisits(ctx, before)
		switch {
		case err != nil && ctx.Err() == nil:
			s.logger().Error("purge visits", slog.Any("error", err))
		case n > 0:
			s.logger().Info("purged visits", slog.Int64("count", n), slog.Time("before", before))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
