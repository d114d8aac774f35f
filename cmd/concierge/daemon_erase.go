package main

import (
	"context"
	"sync/atomic"

	"concierge/alert"
	"concierge/checkin"
	"concierge/sqlite"
)

// erasureQueue hands the database's queued withdrawals to the eraser, and
// drops the faces learning holds in memory for each withdrawn customer:
// the erasure message names alerts only, and a held visit can outlive its
// alert's stream message (a card's, after alerts.verify_ttl). held is
// empty until learning starts, after the eraser.
type erasureQueue struct {
	db   *sqlite.DB
	held *atomic.Pointer[checkin.HeldFaces]
}

var _ alert.ErasureQueue = erasureQueue{}

func (q erasureQueue) PendingErasures(ctx context.Context) ([]alert.ErasureRequest, error) {
	es, err := q.db.PendingErasures(ctx)
	if err != nil {
		return nil, err
	}
	h := q.held.Load()
	out := make([]alert.ErasureRequest, len(es))
	for i, e := range es {
		out[i] = alert.ErasureRequest{ID: e.ID, CustomerID: e.CustomerID, AlertIDs: e.AlertIDs}
		if h != nil {
			h.ForgetCustomer(e.CustomerID)
		}
	}
	return out, nil
}

func (q erasureQueue) FinishErasure(ctx context.Context, id int64) error {
	return q.db.FinishErasure(ctx, id)
}
