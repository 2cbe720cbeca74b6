package ingest

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/signal"
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

// Write stores the batch and counts new and duplicate rows. Records
// Postgres refuses for their data are isolated by the store: they are
// kept in rejected_records (acked=false: their frames are not acked) and
// reported in a *PartialError; the rest of the batch is committed. They
// are not handed to a later tier, which would only keep them for a replay
// that Postgres refuses again.
func (p *PostgresTier) Write(ctx context.Context, batch []signal.Signal) error {
	res, err := p.Store.WriteSignals(ctx, batch)
	if err != nil {
		return err
	}
	p.inserted.Add(uint64(res.Inserted))
	p.duplicates.Add(uint64(res.Duplicates))
	if len(res.Refused) == 0 {
		return nil
	}
	// The quarantine row is evidence, not acked data: if it cannot be
	// written, each refused frame's error says so and the device resends.
	qerr := p.Store.QuarantineRecords(ctx, store.RefusedRecords(batch, store.Unkept(res.Refused), false))
	pe := &PartialError{Refused: make([]int, len(res.Refused)), Reasons: make([]string, len(res.Refused))}
	for i, r := range res.Refused {
		pe.Refused[i] = r.Index
		pe.Reasons[i] = fmt.Sprintf("Postgres refused the record (SQLSTATE %s): %s", r.SQLState, r.Message)
		if qerr != nil {
			pe.Reasons[i] += fmt.Sprintf(" (not quarantined: %v)", qerr)
		}
	}
	return pe
}

// Counts returns rows inserted and duplicates skipped so far.
func (p *PostgresTier) Counts() (inserted, duplicates uint64) {
	return p.inserted.Load(), p.duplicates.Load()
}
