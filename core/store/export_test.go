package store

import (
	"context"

	"github.com/fleetcore/fleetcore/signal"
)

// WriteSignalsHalving is WriteSignals with the COPY error positions
// ignored, so that a test exercises the halving alone.
func WriteSignalsHalving(ctx context.Context, s *Store, batch []signal.Signal) (WriteResult, error) {
	return s.writeSignals(ctx, batch, false)
}
