package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/metrics"
)

// Interface guards: what the ingest stage exports to /metrics and to the
// service checks.
var (
	_ metrics.Collector = (*Batcher)(nil)
	_ metrics.Collector = (*PostgresTier)(nil)
	_ metrics.Collector = (*Breaker)(nil)
	_ health.Checker    = (*Batcher)(nil)
	_ health.Checker    = PostgresCheck{}
)

// hist keeps a nil *Histogram a nil metrics.Histogram.
func hist(h *Histogram) metrics.Histogram {
	if h == nil {
		return nil
	}
	return h
}

// Collect writes the batcher's and the durability tiers' counters.
func (b *Batcher) Collect(w *metrics.Writer) {
	st := b.Stats()
	w.Counter("fleetcore_ingest_signals_submitted_total", "Signals submitted to ingest.", float64(st.Submitted))
	w.Counter("fleetcore_ingest_signals_durable_total", "Signals stored durably in some tier (acked).", float64(st.Durable))
	w.Counter("fleetcore_ingest_signals_not_durable_total", "Signals no tier could store (frames left unacked).", float64(st.NotDurable))
	w.Counter("fleetcore_ingest_signals_refused_total", "Signals Postgres refused for their data on direct ingest (frames left unacked, records in rejected_records).", float64(st.Refused))
	w.Counter("fleetcore_ingest_batches_total", "Batches written.", float64(st.Batches))
	w.Gauge("fleetcore_ingest_pending_signals", "Signals waiting or in flight.", float64(st.Pending))
	w.Histogram("fleetcore_ingest_batch_signals", "Signals per batch.", hist(st.BatchSizes))
	w.Histogram("fleetcore_ingest_write_seconds", "Time to write a batch through the durability chain.", metrics.Milliseconds(hist(st.WriteMillis)))
	w.Histogram("fleetcore_ingest_durable_seconds", "Time from a frame's signals reaching the batcher to their batch being durable (group-commit wait included).", metrics.Milliseconds(hist(st.DurableMillis)))
	for _, t := range st.Tiers {
		w.Counter("fleetcore_tier_batches_total", "Batches stored by each durability tier.", float64(t.Batches), "tier", t.Name)
	}
	for _, t := range st.Tiers {
		w.Counter("fleetcore_tier_signals_total", "Signals stored by each durability tier.", float64(t.Signals), "tier", t.Name)
	}
	for _, t := range st.Tiers {
		w.Counter("fleetcore_tier_failures_total", "Failed batch writes per tier.", float64(t.Failures), "tier", t.Name)
	}
	for _, t := range st.Tiers {
		w.Counter("fleetcore_tier_skipped_total", "Batches not tried because the tier's breaker was open.", float64(t.Skipped), "tier", t.Name)
	}
	for _, t := range st.Tiers {
		w.Gauge("fleetcore_tier_down", "1 when the tier's last write failed or its breaker is open.", metrics.Bool(t.Down), "tier", t.Name)
	}
}

// Check is the "ingest" service check: failing when every tier is down,
// degraded when some are.
func (b *Batcher) Check(context.Context) (string, string) {
	st := b.Stats()
	var down []string
	for _, t := range st.Tiers {
		if t.Down {
			down = append(down, t.Name)
		}
	}
	if len(down) == len(st.Tiers) && len(down) > 0 {
		return health.StatusFail, fmt.Sprintf("every tier down (%v); %d signals pending", down, st.Pending)
	}
	if len(down) > 0 {
		return health.StatusWarn, fmt.Sprintf("tiers down: %v; %d signals pending", down, st.Pending)
	}
	return health.StatusOK, fmt.Sprintf("%d signals stored, %d pending", st.Durable, st.Pending)
}

// Collect writes the rows the Postgres tier inserted and the duplicates it
// skipped.
func (p *PostgresTier) Collect(w *metrics.Writer) {
	ins, dup := p.Counts()
	w.Counter("fleetcore_store_rows_inserted_total", "Signal rows inserted into Postgres.", float64(ins))
	w.Counter("fleetcore_store_duplicates_total", "Signals already stored (resends, replays) and skipped.", float64(dup))
}

// Collect writes the breaker's state and its closed→open transitions.
func (b *Breaker) Collect(w *metrics.Writer) {
	bs := b.Stats()
	w.Gauge("fleetcore_breaker_open", "1 while the Postgres breaker is open.", metrics.Bool(bs.Open), "tier", bs.Tier)
	w.Counter("fleetcore_breaker_opens_total", "Breaker closed→open transitions.", float64(bs.Opens), "tier", bs.Tier)
}

// PostgresCheck is the "postgres" service check: failing when Ping fails,
// degraded while Postgres answers but Breaker (when set) is still open.
type PostgresCheck struct {
	Ping    func(ctx context.Context) error
	Breaker *Breaker
}

// Check pings Postgres.
func (c PostgresCheck) Check(ctx context.Context) (string, string) {
	start := time.Now()
	if err := c.Ping(ctx); err != nil {
		return health.StatusFail, err.Error()
	}
	detail := fmt.Sprintf("answered in %s", time.Since(start).Round(time.Millisecond))
	if c.Breaker != nil {
		if bs := c.Breaker.Stats(); bs.Open {
			return health.StatusWarn, fmt.Sprintf("reachable, but the ingest breaker is open for %s", bs.OpenFor.Round(time.Second))
		}
	}
	return health.StatusOK, detail
}

// rowCounter is a tier that counts the rows it inserted and the
// duplicates it skipped (PostgresTier).
type rowCounter interface {
	Counts() (inserted, duplicates uint64)
}

// Summary is the batcher's part of the dashboard: signals acked (a
// resend of a stored record is acked again), the new rows and the
// duplicates of the tiers that count them, not durable and pending, and
// each tier's state. "signals stored" counts new rows only, never a
// duplicate.
func (b *Batcher) Summary() [][2]string {
	st := b.Stats()
	out := [][2]string{{"signals acked", fmt.Sprint(st.Durable)}}
	for _, ts := range b.tiers {
		if rc, ok := ts.tier.(rowCounter); ok {
			ins, dup := rc.Counts()
			out = append(out, [2]string{"signals stored (new rows, " + ts.tier.Name() + ")", fmt.Sprint(ins)},
				[2]string{"duplicates skipped (" + ts.tier.Name() + ")", fmt.Sprint(dup)})
		}
	}
	out = append(out, [2]string{"not durable", fmt.Sprint(st.NotDurable)}, [2]string{"pending", fmt.Sprint(st.Pending)})
	for _, t := range st.Tiers {
		state := "up"
		if t.Down {
			state = "down"
		}
		out = append(out, [2]string{"tier " + t.Name, fmt.Sprintf("%s, %d batches", state, t.Batches)})
	}
	return out
}
