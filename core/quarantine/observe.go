package quarantine

import "github.com/fleetcore/fleetcore/core/metrics"

// Collector writes the quarantine stage's counters: what Writer stored and
// dropped, and what Retention (which may be nil) deleted.
func Collector(w *Writer, r *Retention) metrics.Collector {
	return metrics.CollectorFunc(func(m *metrics.Writer) {
		var deleted uint64
		if r != nil {
			deleted = r.Deleted()
		}
		collect(m, w.Stats(), deleted)
	})
}

func collect(w *metrics.Writer, st Stats, deleted uint64) {
	w.Counter("fleetcore_quarantine_rows_total", "Rejected frames stored in rejected_frames.", float64(st.Rows))
	for _, d := range []struct {
		reason string
		n      uint64
	}{{"rate_limited", st.RateLimited}, {"queue_full", st.QueueFull}, {"refused", st.Refused}, {"shutdown", st.Shutdown}} {
		w.Counter("fleetcore_quarantine_dropped_total", "Rejected frames not stored, by reason.", float64(d.n), "reason", d.reason)
	}
	w.Counter("fleetcore_quarantine_log_suppressed_total", "Rejected frames not logged one by one (rate limits; summarised once a minute).", float64(st.LogSuppressed))
	w.Counter("fleetcore_quarantine_write_failures_total", "Failed quarantine batch writes (retried).", float64(st.WriteFailures))
	w.Gauge("fleetcore_quarantine_queued", "Rejected frames waiting for the database.", float64(st.Queued))
	w.Gauge("fleetcore_quarantine_sources", "Sources tracked by the quarantine rate limiter.", float64(st.Sources))
	w.Counter("fleetcore_quarantine_deleted_total", "Rejected frames deleted by retention (age or row cap).", float64(deleted))
}
