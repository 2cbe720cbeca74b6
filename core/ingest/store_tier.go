package ingest

import (
	"context"
	"sync/atomic"

	"github.com/fleetcore/fleetcore/core/signal"
	"github.com/fleetcore/fleetcore/core/store"
)

// PostgresTier writes batches to Postgres, the first tier.
type PostgresTier struct {
	Store      *store.Store
	inserted   atomic.Uint64
	duplicates atomic.Uint64
}

var _ Tier = (*PostgresTier)(nil)

// Name is the path label "direct".
func (p *PostgresTier) Name() string { return signal.PathDirect }

// Write stores the batch and counts new and duplicate rows.
func (p *PostgresTier) Write(ctx context.Context, batch []signal.Signal) error {
	res, err := p.Store.WriteSignals(ctx, batch)
	if err != nil {
		return err
	}
	p.inserted.Add(uint64(res.Inserted))
	p.duplicates.Add(uint64(res.Duplicates))
	return nil
}

// Counts returns rows inserted and duplicates skipped so far.
func (p *PostgresTier) Counts() (inserted, duplicates uint64) {
	return p.inserted.Load(), p.duplicates.Load()
}
