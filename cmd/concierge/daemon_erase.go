package main

import (
	"context"

	"concierge/alert"
	"concierge/sqlite"
)

// erasureQueue hands the database's queued withdrawals to the eraser.
type erasureQueue struct{ db *sqlite.DB }

var _ alert.ErasureQueue = erasureQueue{}

func (q erasureQueue) PendingErasures(ctx context.Context) ([]alert.ErasureRequest, error) {
	es, err := q.db.PendingErasures(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]alert.ErasureRequest, len(es))
	for i, e := range es {
		out[i] = alert.ErasureRequest{ID: e.ID, CustomerID: e.CustomerID, AlertIDs: e.AlertIDs}
	}
	return out, nil
}

func (q erasureQueue) FinishErasure(ctx context.Context, id int64) error {
	return q.db.FinishErasure(ctx, id)
}
