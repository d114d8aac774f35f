package checkin

import (
	"context"
	"log/slog"
	"time"

	"concierge"
)

// pendingArrival is a decided arrival not yet both recorded and notified.
// It keeps its id, so the visit log and the outbox, which ignore an id
// they hold, take it once however often it is retried.
type pendingArrival struct {
	a        Arrival
	risk     []RiskFlag
	recorded bool // the visit log has it
	notified bool // the notifier took it
	tries    int
}

// deliver records and notifies p, each part at most once over retries.
// The two are independent: staff are alerted even while the visit log
// fails, and a visit is recorded even while alerts cannot be queued.
func (s *Service) deliver(ctx context.Context, p *pendingArrival) error {
	var rerr, nerr error
	if !p.recorded {
		if s.VisitLog == nil {
			p.recorded = true
		} else {
			rctx, cancel := context.WithTimeout(ctx, s.cfg.DeliverTimeout)
			rerr = s.VisitLog.RecordVisit(rctx, p.a)
			cancel()
			if rerr != nil {
				s.Stats.RecordErrors.Add(1)
			}
			p.recorded = rerr == nil
		}
	}
	if !p.notified {
		if s.Notifier == nil {
			p.notified = true
		} else {
			nctx, cancel := context.WithTimeout(ctx, s.cfg.DeliverTimeout)
			nerr = s.Notifier.Notify(nctx, p.a, p.risk)
			cancel()
			if nerr != nil {
				s.Stats.NotifyErrors.Add(1)
			}
			p.notified = nerr == nil
		}
	}
	if rerr != nil {
		return rerr
	}
	return nerr
}

// hold queues p for RetryLoop after a failed delivery (err), or behind
// earlier failures (err nil) so that arrivals reach the visit log and the
// outbox in the order they were decided. An arrival that can never be
// delivered (EINVALID), or one that finds the queue full, is dropped:
// counted, and logged as an error.
func (s *Service) hold(p *pendingArrival, err error) {
	log := s.logger()
	if err != nil && concierge.ErrorCode(err) == concierge.EINVALID {
		s.Stats.Dropped.Add(1)
		log.Error("arrival dropped: it cannot be delivered", slog.String("id", p.a.ID), slog.Any("error", err))
		return
	}
	s.retryMu.Lock()
	if err != nil {
		s.retryErr = err.Error()
	}
	if len(s.retry) >= s.cfg.RetryQueue {
		s.retryMu.Unlock()
		s.Stats.Dropped.Add(1)
		log.Error("arrival dropped: retry queue full", slog.String("id", p.a.ID), slog.Int("queue", s.cfg.RetryQueue))
		return
	}
	s.retry = append(s.retry, p)
	s.Stats.Pending.Store(int64(len(s.retry)))
	s.retryMu.Unlock()
	if err != nil {
		log.Warn("arrival kept for retry", slog.String("id", p.a.ID), slog.Any("error", err))
	}
	s.RetryNow()
}

// RetryNow makes RetryLoop try the held arrivals at once, whatever its
// backoff: the daemon calls it when the database takes writes again, so
// that arrivals held for minutes are not kept waiting another 30 s.
func (s *Service) RetryNow() {
	select {
	case s.retryWake <- struct{}{}:
	default:
	}
}

// held reports whether arrivals wait for RetryLoop.
func (s *Service) holding() bool {
	s.retryMu.Lock()
	defer s.retryMu.Unlock()
	return len(s.retry) > 0
}

// Pending is how many arrivals wait to be recorded or notified, and the
// text of the latest failure that made one wait ("" when none waits). An
// arrival only waits because a store failed, so the daemon's health
// reports it while it is non-zero.
func (s *Service) Pending() (n int, lastErr string) {
	s.retryMu.Lock()
	defer s.retryMu.Unlock()
	if len(s.retry) == 0 {
		return 0, ""
	}
	return len(s.retry), s.retryErr
}

// RetryLoop delivers the arrivals whose recording or notification failed,
// oldest first, until ctx ends: at once when a new one is held, else
// after a backoff from RetryMin doubling to RetryMax while the head keeps
// failing. Arrivals still held when ctx ends are logged as lost.
func (s *Service) RetryLoop(ctx context.Context) error {
	backoff := s.cfg.RetryMin
	t := time.NewTimer(backoff)
	defer t.Stop()
	for {
		var tick <-chan time.Time
		if s.holding() {
			tick = t.C
		}
		select {
		case <-ctx.Done():
			if n, _ := s.Pending(); n > 0 {
				s.logger().Error("arrivals not delivered at shutdown", slog.Int("arrivals", n))
			}
			return nil
		case <-s.retryWake:
		case <-tick:
		}
		if s.retryHeld(ctx) {
			backoff = s.cfg.RetryMin
		} else {
			backoff = min(2*backoff, s.cfg.RetryMax)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(backoff)
	}
}

// retryHeld delivers held arrivals in order until one fails; it reports
// whether the queue is now empty.
func (s *Service) retryHeld(ctx context.Context) bool {
	log := s.logger()
	for ctx.Err() == nil {
		s.retryMu.Lock()
		if len(s.retry) == 0 {
			s.retryErr = ""
			s.retryMu.Unlock()
			return true
		}
		p := s.retry[0]
		s.retryMu.Unlock()
		p.tries++
		err := s.deliver(ctx, p)
		if err != nil && concierge.ErrorCode(err) != concierge.EINVALID {
			s.retryMu.Lock()
			s.retryErr = err.Error()
			s.retryMu.Unlock()
			log.Debug("arrival retry failed", slog.String("id", p.a.ID), slog.Int("tries", p.tries), slog.Any("error", err))
			return false
		}
		s.retryMu.Lock()
		s.retry[0] = nil
		s.retry = s.retry[1:]
		s.Stats.Pending.Store(int64(len(s.retry)))
		s.retryMu.Unlock()
		if err != nil {
			s.Stats.Dropped.Add(1)
			log.Error("arrival dropped: it cannot be delivered", slog.String("id", p.a.ID), slog.Any("error", err))
			continue
		}
		s.Stats.Redelivered.Add(1)
		log.Info("arrival delivered after retry", slog.String("id", p.a.ID), slog.Int("tries", p.tries),
			slog.Duration("late", time.Since(p.a.At)))
	}
	return false
}
