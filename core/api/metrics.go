package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetcore/fleetcore/core/metrics"
)

// FleetLock says whether this node exports the fleet-wide database
// families (store.SessionLock): one node at a time does, so that a sum
// over nodes counts every device and alert once.
type FleetLock interface {
	Held(ctx context.Context) bool
}

// scoreThresholds are the score labels of fleetcore_devices_below_score
// (integrity.enter_below is added when it is not one of them).
var scoreThresholds = []int{20, 40, 60, 80, 100}

// registry is what /metrics serves besides the database's families: the
// Go runtime's and the process's, fleetcore_up and uptime, and the
// stages' collectors.
func (s *Server) registry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("registering go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("registering process collector: %w", err)
	}
	cs := append([]Collector{CollectorFunc(func(m *metrics.Writer) {
		m.Gauge("fleetcore_up", "1 while the process serves.", 1)
		m.Gauge("fleetcore_uptime_seconds", "Seconds since the API started.", time.Since(s.started).Seconds())
	})}, s.deps.Collectors...)
	for _, c := range cs {
		if err := reg.Register(metrics.Prometheus(c)); err != nil {
			return nil, fmt.Errorf("registering collector: %w", err)
		}
	}
	return reg, nil
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	db := prometheus.NewRegistry()
	if err := db.Register(metrics.Prometheus(CollectorFunc(func(m *metrics.Writer) { s.writeDBMetrics(ctx, m) }))); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	promhttp.HandlerFor(prometheus.Gatherers{s.reg, db}, promhttp.HandlerOpts{
		ErrorLog:      promLog{s.log},
		ErrorHandling: promhttp.ContinueOnError, // serve what could be gathered, log the rest
	}).ServeHTTP(w, r)
}

// promLog is promhttp's error log.
type promLog struct{ log hclog.Logger }

func (l promLog) Println(v ...any) { l.log.Warn("serving /metrics", "error", fmt.Sprint(v...)) }

// writeDBMetrics adds what only the database knows. Every node writes
// fleetcore_metrics_database_up and fleetcore_fleet_metrics_exporter;
// the fleet-wide families (rule evaluations and errors, open alerts,
// scored devices) come from the one node holding the FleetLock (every
// node when Deps.FleetLock is nil, a single node's setup). A database
// outage shows as fleetcore_metrics_database_up 0.
func (s *Server) writeDBMetrics(ctx context.Context, m *metrics.Writer) {
	const upHelp = "1 when the database could be read for /metrics."
	const exportHelp = "1 on the node that exports the fleet-wide database families (it holds an advisory lock), 0 on the others."
	if s.deps.FleetLock != nil && !s.deps.FleetLock.Held(ctx) {
		var one int
		err := s.deps.DB.QueryRow(ctx, "SELECT 1").Scan(&one)
		m.Gauge("fleetcore_metrics_database_up", upHelp, metrics.Bool(err == nil))
		m.Gauge("fleetcore_fleet_metrics_exporter", exportHelp, 0)
		return
	}
	m.Gauge("fleetcore_fleet_metrics_exporter", exportHelp, 1)
	rules, err := s.ruleRows(ctx)
	if err != nil {
		m.Gauge("fleetcore_metrics_database_up", upHelp, 0)
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
	thresholds := scoreThresholds
	if e := s.opts.EnterBelow; e > 0 && !slices.Contains(thresholds, e) {
		thresholds = append(slices.Clone(thresholds), e)
		slices.Sort(thresholds)
	}
	var devices int64
	below := make([]int64, len(thresholds))
	if err == nil {
		// One scan: devices per whole point of score, summed below each
		// threshold here.
		rows, err = s.deps.DB.Query(ctx, `SELECT score / 100, count(*) FROM device_scores GROUP BY 1`)
	}
	if err == nil {
		for rows.Next() {
			var point, n int64
			if err = rows.Scan(&point, &n); err != nil {
				break
			}
			devices += n
			for i, t := range thresholds {
				if point < int64(t) {
					below[i] += n
				}
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	m.Gauge("fleetcore_metrics_database_up", upHelp, metrics.Bool(err == nil))
	for _, r := range rules {
		m.Counter("fleetcore_rule_evaluations_total", "Signals evaluated per rule version (fleet-wide, from the database).", float64(r.Evaluated), "rule", r.Name, "version", r.Version)
	}
	for _, r := range rules {
		m.Counter("fleetcore_rule_errors_total", "Batches a rule version could not evaluate (fleet-wide, from the database).", float64(r.Errors), "rule", r.Name, "version", r.Version)
	}
	for _, a := range alerts {
		m.Gauge("fleetcore_alerts_open", "Open alerts by kind (fleet-wide).", float64(a.n), "kind", a.kind)
	}
	if err == nil {
		m.Gauge("fleetcore_devices_scored", "Devices with an integrity score (fleet-wide).", float64(devices))
		for i, t := range thresholds {
			m.Gauge("fleetcore_devices_below_score", "Devices whose integrity score is below the score label (fleet-wide; cumulative).", float64(below[i]), "score", strconv.Itoa(t))
		}
	}
}
