package node

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/spool"
)

// Organizer job names of the integrity stage.
const (
	JobScore  = "score"  // fold new signals and findings into device scores and alerts
	JobAlerts = "alerts" // deliver alert transitions to the broker and webhook
	JobHealth = "health" // service checks
)

// startIntegrity adds the score, alert delivery and service check jobs
// (Node.Scorer, Node.Alerts, Node.Health). Alerts go to the topic exchange
// amqp.alert_exchange when amqp.url is set, and to integrity.webhook when
// set.
func (n *Node) startIntegrity(ctx context.Context) error {
	cfg := n.cfg
	log := n.log.Named("integrity")
	pool := n.Store.Pool()
	n.Scorer = integrity.NewScorer(pool, integrity.ParamsFrom(cfg.Integrity), log)
	var broker integrity.Broker
	if cfg.AMQP.URL != "" {
		b := integrity.NewAMQPBroker(cfg.AMQP.URL, cfg.AMQP.AlertExchange, config.Duration(cfg.AMQP.ConfirmTimeout), log.Named("alerts"))
		n.alertBroker = b
		broker = b
		go func() {
			<-ctx.Done()
			n.Organizer.Wait()
			b.Close()
		}()
	}
	n.Alerts = integrity.NewPublisher(pool, broker, cfg.Integrity.Webhook, log.Named("alerts"))
	n.Health = integrity.NewHealth(log.Named("health"), 5*time.Second)
	n.addProbes()

	scoreEvery := config.Duration(cfg.Organizer.ScoreInterval)
	healthEvery := config.Duration(cfg.Organizer.HealthInterval)
	n.Organizer.Add(organizer.Job{Name: JobScore, Interval: scoreEvery, Run: func(ctx context.Context) error {
		if err := n.Scorer.Run(ctx); err != nil {
			return err
		}
		// Deliver what this round opened or cleared without waiting for the
		// alerts job; a broker outage is that job's to report.
		if err := n.Alerts.Drain(ctx); err != nil {
			log.Debug("alert delivery deferred", "error", err)
		}
		return nil
	}})
	n.Organizer.Add(organizer.Job{Name: JobAlerts, Interval: min(scoreEvery, 10*time.Second), Run: n.Alerts.Drain})
	n.Organizer.Add(organizer.Job{Name: JobHealth, Interval: healthEvery, Run: n.Health.Run})
	return nil
}

// addProbes registers the service checks: Postgres, RabbitMQ, the
// Postgres breaker, failover and spool backlogs, rule errors, organizer
// lag and ingest.
func (n *Node) addProbes() {
	h := n.Health
	h.Add(integrity.Probe{Name: "postgres", Check: func(ctx context.Context) (string, string) {
		start := time.Now()
		if err := n.Store.Ping(ctx); err != nil {
			return integrity.StatusFail, err.Error()
		}
		detail := fmt.Sprintf("answered in %s", time.Since(start).Round(time.Millisecond))
		if n.Breaker != nil {
			if bs := n.Breaker.Stats(); bs.Open {
				return integrity.StatusWarn, fmt.Sprintf("reachable, but the ingest breaker is open for %s", bs.OpenFor.Round(time.Second))
			}
		}
		return integrity.StatusOK, detail
	}})
	if n.cfg.AMQP.URL != "" {
		h.Add(integrity.Probe{Name: "rabbitmq", Check: func(ctx context.Context) (string, string) {
			if n.Failover != nil {
				st := n.Failover.Stats()
				if !st.Connected {
					return integrity.StatusFail, "failover publisher not connected"
				}
				detail := fmt.Sprintf("connected (%s queue)", st.QueueType)
				switch {
				case st.DeadLetterBacklog > 0:
					return integrity.StatusWarn, fmt.Sprintf("%s; %d batches dead-lettered (undecodable or given up after repeated failures; queue %s)",
						detail, st.DeadLetterBacklog, n.cfg.AMQP.DeadLetter)
				case st.Backlog > 0:
					return integrity.StatusWarn, fmt.Sprintf("%s; failover backlog %d batches, oldest %s", detail, st.Backlog, st.OldestAge.Round(time.Second))
				}
				return integrity.StatusOK, detail + ", failover queue empty"
			}
			if n.alertBroker != nil {
				if err := n.alertBroker.Ping(ctx); err != nil {
					return integrity.StatusFail, err.Error()
				}
			}
			return integrity.StatusOK, "reachable"
		}})
	}
	h.Add(integrity.Probe{Name: "spool", Check: func(ctx context.Context) (string, string) {
		if n.Spool == nil {
			return integrity.StatusOK, "disabled"
		}
		return spoolCheck(n.Spool.Stats())
	}})
	h.Add(integrity.Probe{Name: "rules", Check: func(ctx context.Context) (string, string) {
		var recent, failing int64
		if err := n.Store.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT (rule, rule_version))
			FROM rule_errors WHERE at > now() - interval '1 hour'`).Scan(&recent, &failing); err != nil {
			return integrity.StatusWarn, "cannot read rule errors: " + err.Error()
		}
		disabled := 0
		live := 0
		if n.Rules != nil {
			for _, r := range n.Rules.Status() {
				switch r.Status {
				case "disabled":
					disabled++
				case "live":
					live++
				}
			}
		}
		switch {
		case disabled > 0:
			return integrity.StatusWarn, fmt.Sprintf("%d rules disabled after repeated failures; %d failed batches in the last hour", disabled, recent)
		case recent > 0:
			return integrity.StatusWarn, fmt.Sprintf("%d failed batches of %d rules in the last hour", recent, failing)
		case n.Rules == nil:
			return integrity.StatusOK, "rules disabled by configuration"
		}
		return integrity.StatusOK, fmt.Sprintf("%d rules live, no errors in the last hour", live)
	}})
	h.Add(integrity.OrganizerProbe(n.Organizer, time.Now))
	h.Add(integrity.Probe{Name: "ingest", Check: func(ctx context.Context) (string, string) {
		st := n.Batcher.Stats()
		var down []string
		for _, t := range st.Tiers {
			if t.Down {
				down = append(down, t.Name)
			}
		}
		if len(down) == len(st.Tiers) && len(down) > 0 {
			return integrity.StatusFail, fmt.Sprintf("every tier down (%v); %d signals pending", down, st.Pending)
		}
		if len(down) > 0 {
			return integrity.StatusWarn, fmt.Sprintf("tiers down: %v; %d signals pending", down, st.Pending)
		}
		return integrity.StatusOK, fmt.Sprintf("%d signals stored, %d pending", st.Durable, st.Pending)
	}})
}

// spoolCheck is the spool's service check: failing while full, degraded
// with a backlog or with undecodable segments kept in dead/.
func spoolCheck(st spool.Stats) (string, string) {
	dead := ""
	if st.DeadBacklog > 0 {
		dead = fmt.Sprintf("; %d undecodable segments in dead/", st.DeadBacklog)
	}
	switch {
	case st.Full:
		return integrity.StatusFail, fmt.Sprintf("full: %d of %d bytes, writers waiting%s", st.Bytes, st.MaxBytes, dead)
	case st.Signals > 0:
		return integrity.StatusWarn, fmt.Sprintf("backlog %d signals in %d records, oldest %s%s", st.Signals, st.Records, st.OldestAge.Round(time.Second), dead)
	case st.DeadBacklog > 0:
		return integrity.StatusWarn, "empty" + dead
	}
	return integrity.StatusOK, "empty"
}
