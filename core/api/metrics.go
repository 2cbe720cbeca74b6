package api

import (
	"bufio"
	"context"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/core/gateway"
	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/core/integrity"
)

// MetricWriter writes the Prometheus text exposition format (version
// 0.0.4). Samples of one metric name must be written one after another;
// HELP and TYPE are written before the first.
type MetricWriter struct {
	w    *bufio.Writer
	seen map[string]bool
}

func newMetricWriter(w *bufio.Writer) *MetricWriter {
	return &MetricWriter{w: w, seen: map[string]bool{}}
}

func (m *MetricWriter) header(name, typ, help string) {
	if m.seen[name] {
		return
	}
	m.seen[name] = true
	m.w.WriteString("# HELP " + name + " " + escapeHelp(help) + "\n")
	m.w.WriteString("# TYPE " + name + " " + typ + "\n")
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// labels renders k1, v1, k2, v2 … as {k1="v1",k2="v2"}.
func labels(kv ...string) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i] + `="` + escapeLabel(kv[i+1]) + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

func (m *MetricWriter) sample(name string, v float64, kv ...string) {
	m.w.WriteString(name + labels(kv...) + " " + formatValue(v) + "\n")
}

// Counter writes one counter sample.
func (m *MetricWriter) Counter(name, help string, v float64, kv ...string) {
	m.header(name, "counter", help)
	m.sample(name, v, kv...)
}

// Gauge writes one gauge sample.
func (m *MetricWriter) Gauge(name, help string, v float64, kv ...string) {
	m.header(name, "gauge", help)
	m.sample(name, v, kv...)
}

// Histogram writes a histogram from an ingest.Histogram.
func (m *MetricWriter) Histogram(name, help string, h *ingest.Histogram, kv ...string) {
	if h == nil {
		return
	}
	m.header(name, "histogram", help)
	bounds, cum, sum, count := h.Snapshot()
	for i, b := range bounds {
		m.sample(name+"_bucket", float64(cum[i]), append(append([]string(nil), kv...), "le", formatValue(b))...)
	}
	m.sample(name+"_bucket", float64(count), append(append([]string(nil), kv...), "le", "+Inf")...)
	m.sample(name+"_sum", sum, kv...)
	m.sample(name+"_count", float64(count), kv...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	m := newMetricWriter(bw)
	m.Gauge("fleetcore_up", "1 while the process serves.", 1)
	m.Gauge("fleetcore_uptime_seconds", "Seconds since the API started.", time.Since(s.started).Seconds())
	if b := s.deps.Batcher; b != nil {
		writeIngest(m, b.Stats())
	}
	if p := s.deps.PG; p != nil {
		ins, dup := p.Counts()
		m.Counter("fleetcore_store_rows_inserted_total", "Signal rows inserted into Postgres.", float64(ins))
		m.Counter("fleetcore_store_duplicates_total", "Signals already stored (resends, replays) and skipped.", float64(dup))
	}
	if g := s.deps.Gateway; g != nil {
		writeGateway(m, g.Stats())
	}
	if o := s.deps.Organizer; o != nil {
		st := o.Status()
		for _, j := range st {
			m.Counter("fleetcore_job_runs_total", "Organizer job rounds.", float64(j.Runs), "job", j.Name)
		}
		for _, j := range st {
			m.Counter("fleetcore_job_failures_total", "Organizer job rounds that failed.", float64(j.Failures), "job", j.Name)
		}
		for _, j := range st {
			v := 0.0
			if !j.LastSuccess.IsZero() {
				v = float64(j.LastSuccess.UnixMilli()) / 1000
			}
			m.Gauge("fleetcore_job_last_success_timestamp_seconds", "When the job last succeeded (0 = never).", v, "job", j.Name)
		}
		for _, j := range st {
			m.Gauge("fleetcore_job_last_duration_milliseconds", "Duration of the job's last round.", float64(j.LastMillis), "job", j.Name)
		}
	}
	if h := s.deps.Health; h != nil {
		for _, c := range h.Results() {
			v := 1.0
			switch c.Status {
			case integrity.StatusWarn:
				v = 0.5
			case integrity.StatusFail:
				v = 0
			}
			m.Gauge("fleetcore_service_check", "Service check status: 1 ok, 0.5 degraded, 0 failing.", v, "check", c.Name)
		}
	}
	if p := s.deps.Publisher; p != nil {
		pub, failed := p.Counts()
		m.Counter("fleetcore_alert_events_published_total", "Alert events confirmed by the broker.", float64(pub))
		m.Counter("fleetcore_alert_publish_failures_total", "Alert event publishes that failed (retried later).", float64(failed))
	}
	for _, c := range s.deps.Collectors {
		c.Collect(m)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	s.writeDBMetrics(ctx, m)
}

func writeIngest(m *MetricWriter, st ingest.Stats) {
	m.Counter("fleetcore_ingest_signals_submitted_total", "Signals submitted to ingest.", float64(st.Submitted))
	m.Counter("fleetcore_ingest_signals_durable_total", "Signals stored durably in some tier (acked).", float64(st.Durable))
	m.Counter("fleetcore_ingest_signals_not_durable_total", "Signals no tier could store (frames left unacked).", float64(st.NotDurable))
	m.Counter("fleetcore_ingest_signals_refused_total", "Signals Postgres refused for their data on direct ingest (frames left unacked, records in rejected_records).", float64(st.Refused))
	m.Counter("fleetcore_ingest_batches_total", "Batches written.", float64(st.Batches))
	m.Gauge("fleetcore_ingest_pending_signals", "Signals waiting or in flight.", float64(st.Pending))
	m.Histogram("fleetcore_ingest_batch_signals", "Signals per batch.", st.BatchSizes)
	m.Histogram("fleetcore_ingest_write_milliseconds", "Time to write a batch through the durability chain.", st.WriteMillis)
	m.Histogram("fleetcore_ingest_durable_milliseconds", "Time from a frame's signals reaching the batcher to their batch being durable (group-commit wait included).", st.DurableMillis)
	for _, t := range st.Tiers {
		m.Counter("fleetcore_tier_batches_total", "Batches stored by each durability tier.", float64(t.Batches), "tier", t.Name)
	}
	for _, t := range st.Tiers {
		m.Counter("fleetcore_tier_signals_total", "Signals stored by each durability tier.", float64(t.Signals), "tier", t.Name)
	}
	for _, t := range st.Tiers {
		m.Counter("fleetcore_tier_failures_total", "Failed batch writes per tier.", float64(t.Failures), "tier", t.Name)
	}
	for _, t := range st.Tiers {
		m.Counter("fleetcore_tier_skipped_total", "Batches not tried because the tier's breaker was open.", float64(t.Skipped), "tier", t.Name)
	}
	for _, t := range st.Tiers {
		m.Gauge("fleetcore_tier_down", "1 when the tier's last write failed or its breaker is open.", b2f(t.Down), "tier", t.Name)
	}
}

func writeGateway(m *MetricWriter, st *gateway.Stats) {
	m.Gauge("fleetcore_connections_open", "Open device connections.", float64(st.Open.Load()))
	m.Counter("fleetcore_connections_accepted_total", "Device connections accepted.", float64(st.Accepted.Load()))
	m.Counter("fleetcore_connections_refused_total", "Device connections refused over a connection cap.", float64(st.Refused.Load()))
	for _, r := range []string{gateway.RefusedListenerCap, gateway.RefusedIPCap, gateway.RefusedGatewayCap} {
		m.Counter("fleetcore_connections_refused_by_reason_total", "Device connections refused, by the cap that refused them.", float64(st.RefusedBy(r)), "reason", r)
	}
	m.Counter("fleetcore_frames_timed_out_total", "Partial frames quarantined because they were not complete within the listener's frame_timeout.", float64(st.FramesTimedOut.Load()))
	m.Counter("fleetcore_buffer_budget_closed_total", "Connections closed without ack because gateway.max_buffered_bytes had no room for their partial frame.", float64(st.BufferBudgetClosed.Load()))
	m.Gauge("fleetcore_buffered_bytes", "Bytes of connection buffers beyond their initial 2 KiB (bounded by gateway.max_buffered_bytes).", float64(st.Buffered.Load()))
	m.Counter("fleetcore_frames_total", "Frames read from devices.", float64(st.Frames.Load()))
	m.Counter("fleetcore_frames_rejected_total", "Frames rejected (quarantined, never acked).", float64(st.Rejected.Load()))
	m.Counter("fleetcore_frames_acked_total", "Frames acked after their signals were durable.", float64(st.Acked.Load()))
	m.Counter("fleetcore_frames_unacked_total", "Frames left unacked because their signals were not durable.", float64(st.Unacked.Load()))
	m.Histogram("fleetcore_ack_latency_milliseconds", "Time from reading a frame to acking it.", st.AckLatency)
	type proto struct {
		name                      string
		frames, rejected, signals uint64
		panics                    uint64
	}
	var ps []proto
	st.Protocols(func(name string, p *gateway.ProtocolStats) {
		ps = append(ps, proto{name, p.Frames.Load(), p.Rejected.Load(), p.Signals.Load(), p.Panics.Load()})
	})
	sort.Slice(ps, func(i, j int) bool { return ps[i].name < ps[j].name })
	for _, p := range ps {
		m.Counter("fleetcore_protocol_frames_total", "Frames per protocol.", float64(p.frames), "protocol", p.name)
	}
	for _, p := range ps {
		m.Counter("fleetcore_protocol_rejected_total", "Rejected frames per protocol.", float64(p.rejected), "protocol", p.name)
	}
	for _, p := range ps {
		m.Counter("fleetcore_protocol_signals_total", "Decoded signals per protocol.", float64(p.signals), "protocol", p.name)
	}
	for _, p := range ps {
		m.Counter("fleetcore_decoder_panics_total", "Frames whose decoder panicked (quarantined, their connection closed).", float64(p.panics), "protocol", p.name)
	}
}

// writeDBMetrics adds what only the database knows: rule evaluations and
// errors, open alerts, scored devices. A database outage shows as
// fleetcore_metrics_database_up 0.
func (s *Server) writeDBMetrics(ctx context.Context, m *MetricWriter) {
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
	rows, err := s.deps.Pool.Query(ctx, `SELECT kind, count(*) FROM alerts WHERE state = 'open' GROUP BY kind ORDER BY kind`)
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
		err = s.deps.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE score < 6000) FROM device_scores`).Scan(&devices, &low)
	}
	m.Gauge("fleetcore_metrics_database_up", "1 when the database metrics below could be read.", b2f(err == nil))
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
