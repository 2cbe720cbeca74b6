package gateway

import (
	"fmt"
	"math"
	"sort"

	"github.com/fleetcore/fleetcore/core/metrics"
)

var _ metrics.Collector = (*Gateway)(nil)

// Collect writes the connection, frame, ack and per-protocol counters.
func (g *Gateway) Collect(m *metrics.Writer) {
	st := g.Stats()
	m.Gauge("fleetcore_connections_open", "Open device connections.", float64(st.Open.Load()))
	m.Counter("fleetcore_connections_accepted_total", "Device connections accepted.", float64(st.Accepted.Load()))
	m.Counter("fleetcore_connections_refused_total", "Device connections refused over a connection cap.", float64(st.Refused.Load()))
	for _, r := range []string{RefusedListenerCap, RefusedIPCap, RefusedGatewayCap} {
		m.Counter("fleetcore_connections_refused_by_reason_total", "Device connections refused, by the cap that refused them.", float64(st.RefusedBy(r)), "reason", r)
	}
	m.Counter("fleetcore_connections_unavailable_total", "Device connections closed (UDP datagrams dropped) at once because the listener's decoder could not serve them (a drop-in decoder with no version loaded).", float64(st.Unavailable.Load()))
	m.Counter("fleetcore_frames_timed_out_total", "Partial frames quarantined because they were not complete within the listener's frame_timeout.", float64(st.FramesTimedOut.Load()))
	m.Counter("fleetcore_buffer_budget_closed_total", "Connections closed without ack because gateway.max_buffered_bytes had no room for their partial frame.", float64(st.BufferBudgetClosed.Load()))
	m.Counter("fleetcore_tls_handshake_failed_total", "Connections to TLS listeners closed because their TLS handshake failed or timed out (a plain-text client among them).", float64(st.TLSFailed.Load()))
	m.Counter("fleetcore_proxy_header_refused_total", "Connections to proxy_protocol listeners closed because they did not start with a valid PROXY protocol header.", float64(st.ProxyRefused.Load()))
	m.Gauge("fleetcore_buffered_bytes", "Bytes of connection buffers beyond their initial 2 KiB (bounded by gateway.max_buffered_bytes).", float64(st.Buffered.Load()))
	m.Counter("fleetcore_frames_total", "Frames read from devices.", float64(st.Frames.Load()))
	m.Counter("fleetcore_frames_rejected_total", "Frames rejected (quarantined, never acked).", float64(st.Rejected.Load()))
	m.Counter("fleetcore_frames_acked_total", "Frames acked after their signals were durable.", float64(st.Acked.Load()))
	m.Counter("fleetcore_ack_writes_total", "Writes carrying TCP acks (the acks of frames durable together share one write).", float64(st.AckWrites.Load()))
	m.Counter("fleetcore_frames_unacked_total", "Frames left unacked because their signals were not durable.", float64(st.Unacked.Load()))
	if st.AckLatency != nil {
		m.Histogram("fleetcore_ack_latency_seconds", "Time from reading a frame to acking it.", metrics.Milliseconds(st.AckLatency))
	}
	type proto struct {
		name                      string
		frames, rejected, signals uint64
		panics                    uint64
	}
	var ps []proto
	st.Protocols(func(name string, p *ProtocolStats) {
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

// Summary is the gateway's part of the dashboard: open connections,
// rejected frames and the 99th percentile of the ack latency.
func (g *Gateway) Summary() [][2]string {
	st := g.Stats()
	out := [][2]string{{"connections open", fmt.Sprint(st.Open.Load())}, {"frames rejected", fmt.Sprint(st.Rejected.Load())}}
	if q := st.AckLatency.Quantile(0.99); !math.IsNaN(q) {
		out = append(out, [2]string{"ack p99", fmt.Sprintf("%.1f ms", q)})
	}
	return out
}
