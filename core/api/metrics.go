package api

import (
	"bufio"
	"context"
	"net/http"
	"time"

	"github.com/fleetcore/fleetcore/core/metrics"
)

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	m := metrics.NewWriter(bw)
	m.Gauge("fleetcore_up", "1 while the process serves.", 1)
	m.Gauge("fleetcore_uptime_seconds", "Seconds since the API started.", time.Since(s.started).Seconds())
	for _, c := range s.deps.Collectors {
		c.Collect(m)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	s.writeDBMetrics(ctx, m)
}

// writeDBMetrics adds what only the database knows: rule evaluations and
// errors, open alerts, scored devices. A database outage shows as
// fleetcore_metrics_database_up 0.
func (s *Server) writeDBMetrics(ctx context.Context, m *metrics.Writer) {
	rules, err := s.ruleRows(ctx)
	if err != nil {
		m.Gauge("fleetcore_metrics_database_up", "1 when the database metrics below could be read.", 0)
		return
	}
	type alertCount struct {
		kind string
		n    int64
	}
	var alerts []alertCount
	rows, err := s.deps.DB.Query(ctx, `SELECT kind, count(*) FROM alerts WHERE state = 'open' GROUP BY kind ORDER BY kind`)
	if err == nil {
		for rows.Next() {
			var a alertCount
			if rows.Scan(&a.kind, &a.n) == nil {
				alerts = append(alerts, a)
			}
		}
		rows.Close()
		err = rows.Err()
	}
	var devices, low int64
	if err == nil {
		err = s.deps.DB.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE score < 6000) FROM device_scores`).Scan(&devices, &low)
	}
	m.Gauge("fleetcore_metrics_database_up", "1 when the database metrics below could be read.", metrics.Bool(err == nil))
	for _, r := range rules {
		m.Counter("fleetcore_rule_evaluations_total", "Signals evaluated per rule version.", float64(r.Evaluated), "rule", r.Name, "version", r.Version)
	}
	for _, r := range rules {
		m.Gauge("fleetcore_rule_failed_24h", "Signals a rule version failed over the last 24 hours of device time.", float64(r.Failed24h), "rule", r.Name, "version", r.Version)
	}
	for _, r := range rules {
		m.Counter("fleetcore_rule_errors_total", "Batches a rule version could not evaluate.", float64(r.Errors), "rule", r.Name, "version", r.Version)
	}
	for _, a := range alerts {
		m.Gauge("fleetcore_alerts_open", "Open alerts by kind.", float64(a.n), "kind", a.kind)
	}
	if err == nil {
		m.Gauge("fleetcore_devices_scored", "Devices with an integrity score.", float64(devices))
		m.Gauge("fleetcore_devices_score_below_60", "Devices scoring below 60.", float64(low))
	}
}
