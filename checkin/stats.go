package checkin

import "sync/atomic"

// Stats counts what the check-in pipeline did since the service started.
// The counters are atomic so the daemon's metrics endpoint reads them while
// cameras run; checkin itself depends on no metrics library.
type Stats struct {
	TracksStarted atomic.Int64
	TracksEnded   atomic.Int64
	// TracksDropped counts ended tracks that never became a decision
	// (strangers, conflicts, too few votes): their embeddings are gone.
	TracksDropped atomic.Int64
	Embeddings    atomic.Int64 // successful embed calls
	EmbedErrors   atomic.Int64
	Arrivals      atomic.Int64
	Cards         atomic.Int64 // verify cards published
	// Suppressed counts decisions not published because the customer was
	// still in cooldown.
	Suppressed atomic.Int64
	// Conflicts counts tracks whose embeddings named two customers.
	Conflicts    atomic.Int64
	RecordErrors atomic.Int64 // VisitLog failures
	NotifyErrors atomic.Int64 // Notifier failures and timeouts
	// Pending is how many arrivals are held for retry now (a gauge);
	// Redelivered counts those delivered after all, and Dropped those
	// lost: the retry queue was full, or the arrival was invalid.
	Pending     atomic.Int64
	Redelivered atomic.Int64
	Dropped     atomic.Int64
}

// StatsSnapshot is a consistent-enough copy of Stats for export: each
// counter is read atomically, not all of them at one instant.
type StatsSnapshot struct {
	TracksStarted int64 `json:"tracks_started"`
	TracksEnded   int64 `json:"tracks_ended"`
	TracksDropped int64 `json:"tracks_dropped"`
	Embeddings    int64 `json:"embeddings"`
	EmbedErrors   int64 `json:"embed_errors"`
	Arrivals      int64 `json:"arrivals"`
	Cards         int64 `json:"cards"`
	Suppressed    int64 `json:"suppressed"`
	Conflicts     int64 `json:"conflicts"`
	RecordErrors  int64 `json:"record_errors"`
	NotifyErrors  int64 `json:"notify_errors"`
	Pending       int64 `json:"pending"`
	Redelivered   int64 `json:"redelivered"`
	Dropped       int64 `json:"dropped"`
}

// Snapshot reads every counter.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		TracksStarted: s.TracksStarted.Load(),
		TracksEnded:   s.TracksEnded.Load(),
		TracksDropped: s.TracksDropped.Load(),
		Embeddings:    s.Embeddings.Load(),
		EmbedErrors:   s.EmbedErrors.Load(),
		Arrivals:      s.Arrivals.Load(),
		Cards:         s.Cards.Load(),
		Suppressed:    s.Suppressed.Load(),
		Conflicts:     s.Conflicts.Load(),
		RecordErrors:  s.RecordErrors.Load(),
		NotifyErrors:  s.NotifyErrors.Load(),
		Pending:       s.Pending.Load(),
		Redelivered:   s.Redelivered.Load(),
		Dropped:       s.Dropped.Load(),
	}
}
