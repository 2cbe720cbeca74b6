package integrity

import "github.com/fleetcore/fleetcore/core/metrics"

var _ metrics.Collector = (*Publisher)(nil)

// Collect writes the alert events the broker confirmed and the publishes
// that failed.
func (p *Publisher) Collect(w *metrics.Writer) {
	pub, failed := p.Counts()
	w.Counter("fleetcore_alert_events_published_total", "Alert events confirmed by the broker.", float64(pub))
	w.Counter("fleetcore_alert_publish_failures_total", "Alert event publishes that failed (retried later).", float64(failed))
}
