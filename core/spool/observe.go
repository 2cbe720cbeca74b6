package spool

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/metrics"
)

var (
	_ metrics.Collector = (*Spool)(nil)
	_ health.Checker    = (*Spool)(nil)
)

// Collect writes the journal's size, backlog and throughput.
func (s *Spool) Collect(w *metrics.Writer) {
	st := s.Stats()
	w.Gauge("fleetcore_spool_bytes", "Bytes in the spool journal (the backlog).", float64(st.Bytes))
	w.Gauge("fleetcore_spool_backlog_signals", "Signals waiting in the spool for replay.", float64(st.Signals))
	w.Gauge("fleetcore_spool_full", "1 while spool writers wait for space.", metrics.Bool(st.Full))
	w.Gauge("fleetcore_spool_oldest_seconds", "Age of the oldest spooled record.", st.OldestAge.Seconds())
	w.Counter("fleetcore_spool_written_signals_total", "Signals written to the spool.", float64(st.WriteSignals))
	w.Counter("fleetcore_spool_replayed_signals_total", "Signals replayed from the spool into Postgres.", float64(st.ReplayedSignals))
	w.Gauge("fleetcore_spool_dead_segments", "Undecodable spool segments kept in dead/.", float64(st.DeadBacklog))
}

// Check is the "spool" service check (see check).
func (s *Spool) Check(context.Context) (string, string) { return check(s.Stats()) }

// Ready reports an error while the spool is full (the node's /readyz).
func (s *Spool) Ready(context.Context) error {
	if st := s.Stats(); st.Full {
		return fmt.Errorf("spool full (%d of %d bytes)", st.Bytes, st.MaxBytes)
	}
	return nil
}

// check is failing while the spool is full, degraded with a backlog or
// with undecodable segments kept in dead/.
func check(st Stats) (string, string) {
	dead := ""
	if st.DeadBacklog > 0 {
		dead = fmt.Sprintf("; %d undecodable segments in dead/", st.DeadBacklog)
	}
	switch {
	case st.Full:
		return health.StatusFail, fmt.Sprintf("full: %d of %d bytes, writers waiting%s", st.Bytes, st.MaxBytes, dead)
	case st.Signals > 0:
		return health.StatusWarn, fmt.Sprintf("backlog %d signals in %d records, oldest %s%s", st.Signals, st.Records, st.OldestAge.Round(time.Second), dead)
	case st.DeadBacklog > 0:
		return health.StatusWarn, "empty" + dead
	}
	return health.StatusOK, "empty"
}
