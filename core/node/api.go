package node

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/fleetcore/fleetcore/core/api"
	"github.com/fleetcore/fleetcore/core/quarantine"
)

// APIAddr is the API's bound address (after Ready; nil when disabled).
func (n *Node) APIAddr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.apiAddr
}

// startAPI binds the HTTP API (refusing a non-loopback address without a
// token) and serves it until ctx ends.
func (n *Node) startAPI(ctx context.Context) error {
	cfg := n.cfg
	if !*cfg.API.Enabled {
		return nil
	}
	deps := api.Deps{
		Pool: n.Store.Pool(), Batcher: n.Batcher, Gateway: n.Gateway, PG: n.PG, Organizer: n.Organizer,
		Health: n.Health, Publisher: n.Alerts, NodeID: cfg.NodeID,
		Ready:      n.readyProbes(),
		Collectors: []api.Collector{api.CollectorFunc(n.collectMetrics)},
	}
	if n.Rules != nil {
		deps.Rules = ruleLister{n}
	}
	srv, err := api.New(api.Options{Address: cfg.API.Address, Token: cfg.API.Token, EnterBelow: cfg.Integrity.EnterBelow},
		deps, n.log.Named("api"))
	if err != nil {
		return err
	}
	addr, err := srv.Listen()
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.API, n.apiAddr = srv, addr
	n.mu.Unlock()
	go func() {
		if err := srv.Serve(ctx); err != nil {
			n.log.Error("api stopped", "error", err)
		}
	}()
	return nil
}

// readyProbes: the node can take traffic when Postgres, the failover
// broker or the spool can take a batch.
func (n *Node) readyProbes() []api.ReadyProbe {
	probes := []api.ReadyProbe{{Name: "postgres", Check: n.Store.Ping}}
	if n.Failover != nil {
		probes = append(probes, api.ReadyProbe{Name: "failover", Check: func(ctx context.Context) error {
			if !n.Failover.Available() {
				return errors.New("failover broker not connected")
			}
			return nil
		}})
	}
	if n.Spool != nil {
		probes = append(probes, api.ReadyProbe{Name: "spool", Check: func(ctx context.Context) error {
			if st := n.Spool.Stats(); st.Full {
				return fmt.Errorf("spool full (%d of %d bytes)", st.Bytes, st.MaxBytes)
			}
			return nil
		}})
	}
	return probes
}

type ruleLister struct{ n *Node }

func (l ruleLister) Rules() []api.RuleStatus {
	var out []api.RuleStatus
	for _, s := range l.n.Rules.Status() {
		if s.Name == "" {
			continue // a refused file without a loaded version
		}
		rs := api.RuleStatus{Name: s.Name, Version: s.Version, State: "active"}
		if s.Meta != nil {
			rs.Dimension, rs.Severity = s.Meta.Dimension, s.Meta.Severity
		}
		if s.Status == "disabled" {
			rs.State = "disabled"
		}
		if s.Stats != nil {
			rs.Errors, rs.LastError = s.Stats.Failed, s.Stats.LastError
			if s.Stats.Consecutive > 0 && rs.State == "active" {
				rs.State = "failing"
			}
		}
		out = append(out, rs)
	}
	return out
}

// collectMetrics adds the durability chain's and the rules' own counters.
func (n *Node) collectMetrics(w *api.MetricWriter) {
	acked, unacked := n.Store.RefusedCounts()
	w.Counter("fleetcore_store_records_refused_total", "Records Postgres refused for their data, kept in rejected_records (acked: refused on replay after the device was acked).", float64(acked), "acked", "true")
	w.Counter("fleetcore_store_records_refused_total", "", float64(unacked), "acked", "false")
	if n.Breaker != nil {
		bs := n.Breaker.Stats()
		w.Gauge("fleetcore_breaker_open", "1 while the Postgres breaker is open.", b2f(bs.Open), "tier", bs.Tier)
		w.Counter("fleetcore_breaker_opens_total", "Breaker closed→open transitions.", float64(bs.Opens), "tier", bs.Tier)
	}
	if n.Failover != nil {
		st := n.Failover.Stats()
		w.Gauge("fleetcore_failover_connected", "1 while the failover publisher is connected.", b2f(st.Connected))
		w.Counter("fleetcore_failover_published_batches_total", "Batches confirmed by the failover broker.", float64(st.Published))
		w.Counter("fleetcore_failover_published_signals_total", "Signals confirmed by the failover broker.", float64(st.PublishedSignals))
		w.Counter("fleetcore_failover_failures_total", "Failover batches not confirmed.", float64(st.Failures))
		w.Gauge("fleetcore_failover_backlog_batches", "Batches waiting in the failover queue (-1 unknown).", float64(st.Backlog))
		w.Gauge("fleetcore_failover_dead_letter_batches", "Batches in the dead-letter queue (-1 unknown).", float64(st.DeadLetterBacklog))
		w.Gauge("fleetcore_failover_oldest_seconds", "Age of the oldest batch waiting in the failover queue.", st.OldestAge.Seconds())
		w.Counter("fleetcore_failover_replayed_signals_total", "Signals replayed from the failover queue into Postgres.", float64(st.ReplayedSignals))
	}
	if n.Spool != nil {
		st := n.Spool.Stats()
		w.Gauge("fleetcore_spool_bytes", "Bytes in the spool journal (the backlog).", float64(st.Bytes))
		w.Gauge("fleetcore_spool_backlog_signals", "Signals waiting in the spool for replay.", float64(st.Signals))
		w.Gauge("fleetcore_spool_full", "1 while spool writers wait for space.", b2f(st.Full))
		w.Gauge("fleetcore_spool_oldest_seconds", "Age of the oldest spooled record.", st.OldestAge.Seconds())
		w.Counter("fleetcore_spool_written_signals_total", "Signals written to the spool.", float64(st.WriteSignals))
		w.Counter("fleetcore_spool_replayed_signals_total", "Signals replayed from the spool into Postgres.", float64(st.ReplayedSignals))
		w.Gauge("fleetcore_spool_dead_segments", "Undecodable spool segments kept in dead/.", float64(st.DeadBacklog))
	}
	if n.Quarantine != nil {
		writeQuarantine(w, n.Quarantine.Stats(), n.Retention.Deleted())
	}
	if n.Rules != nil {
		st := n.Rules.Status()
		for _, s := range st {
			if s.Stats != nil {
				w.Counter("fleetcore_rule_host_signals_total", "Signals evaluated by each loaded rule in this process.", float64(s.Stats.Signals), "rule", s.Name, "version", s.Version)
			}
		}
		for _, s := range st {
			if s.Stats != nil {
				w.Counter("fleetcore_rule_host_failed_batches_total", "Batches a loaded rule could not evaluate in this process.", float64(s.Stats.Failed), "rule", s.Name, "version", s.Version)
			}
		}
	}
	if n.RuleRunner != nil {
		for _, s := range n.RuleRunner.Status() {
			w.Gauge("fleetcore_rule_backlog_signals", "Signals stored but not yet evaluated by each rule (upper bound).", float64(s.Backlog), "rule", s.Rule, "version", s.Version)
		}
	}
}

// writeQuarantine writes the quarantine stage's counters.
func writeQuarantine(w *api.MetricWriter, st quarantine.Stats, deleted uint64) {
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

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
