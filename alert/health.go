package alert

import (
	"context"
	"fmt"
	"time"

	"concierge"
)

// OldestPending is when the oldest message still waiting in the outbox
// for JetStream's acknowledgement was queued; ok is false when none
// waits.
func (p *Publisher) OldestPending(ctx context.Context) (created time.Time, ok bool, err error) {
	msgs, err := p.outbox.PendingOutbox(ctx, 1)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("outbox: %w", err)
	}
	if len(msgs) == 0 {
		return time.Time{}, false, nil
	}
	return msgs[0].Created, true, nil
}

// CheckDrain says whether the outbox drains: it fails (EUNAVAILABLE) when
// a message has waited longer than staleAfter at time now, which a
// moment's NATS outage never causes but a lost server, a full stream or
// missing permissions do, and staff then get no alerts at all.
func (p *Publisher) CheckDrain(ctx context.Context, now time.Time, staleAfter time.Duration) error {
	created, ok, err := p.OldestPending(ctx)
	if err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "%w", err)
	}
	if !ok {
		return nil
	}
	if age := now.Sub(created); age > staleAfter {
		return concierge.Errorf(concierge.EUNAVAILABLE, "outbox does not drain: the oldest alert has waited %v (alerts.outbox_stale_after %v)",
			age.Round(time.Second), staleAfter)
	}
	return nil
}
