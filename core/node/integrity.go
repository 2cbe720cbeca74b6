package node

import (
	"context"
	"time"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/rules"
	"github.com/fleetcore/fleetcore/core/store"
)

// Organizer job names of the integrity stage.
const (
	JobScore  = "score"  // fold new signals and findings into device scores and alerts
	JobAlerts = "alerts" // deliver alert transitions to the broker and webhook
	JobHealth = "health" // service checks
)

// startIntegrity adds the score, alert delivery and service check jobs. Alerts go to the topic exchange
// amqp.alert_exchange when amqp.url is set, and to integrity.webhook when
// set.
func (n *Node) startIntegrity(ctx context.Context) error {
	cfg := n.cfg
	log := n.log.Named("integrity")
	pool := n.st.Pool()
	n.scorer = integrity.NewScorer(pool, integrity.ParamsFrom(cfg.Integrity), log)
	var broker integrity.Broker
	if urls := cfg.AMQP.Endpoints(); len(urls) > 0 {
		b := integrity.NewAMQPBroker(urls, cfg.AMQP.AlertExchange, config.Duration(cfg.AMQP.ConfirmTimeout), log.Named("alerts"))
		broker = b
		go func() {
			<-ctx.Done()
			n.org.Wait()
			b.Close()
		}()
	}
	n.alerts = integrity.NewPublisher(pool, broker, cfg.Integrity.Webhook, log.Named("alerts"))
	n.health = health.New(n.log.Named("integrity").Named("health"), 5*time.Second)
	n.addProbes()

	scoreEvery := config.Duration(cfg.Organizer.ScoreInterval)
	healthEvery := config.Duration(cfg.Organizer.HealthInterval)
	n.org.Add(organizer.Job{Name: JobScore, Interval: scoreEvery, Run: func(ctx context.Context) error {
		// One node scores at a time (DESIGN.md §6); the others skip the
		// round, and the scorer's watermarks carry on where it stopped.
		if _, err := store.Singleton(ctx, pool, JobScore, n.scorer.Run); err != nil {
			return err
		}
		// Deliver what this round opened or cleared without waiting for the
		// alerts job; a broker outage is that job's to report.
		if err := n.alerts.Drain(ctx); err != nil {
			log.Debug("alert delivery deferred", "error", err)
		}
		return nil
	}})
	n.org.Add(organizer.Job{Name: JobAlerts, Interval: min(scoreEvery, 10*time.Second), Run: n.alerts.Drain})
	n.org.Add(organizer.Job{Name: JobHealth, Interval: healthEvery, Run: n.health.Run})
	return nil
}

// addProbes registers the service checks, each the stage's own: Postgres
// (and its breaker), RabbitMQ, spool, rules, organizer lag and ingest.
func (n *Node) addProbes() {
	h := n.health
	h.Add(health.Of("postgres", ingest.PostgresCheck{Ping: n.st.Ping, Breaker: n.breaker}))
	if n.fo != nil {
		h.Add(health.Of("rabbitmq", n.fo))
	}
	if n.sp != nil {
		h.Add(health.Of("spool", n.sp))
	} else {
		h.Add(health.Probe{Name: "spool", Check: func(context.Context) (string, string) { return health.StatusOK, "disabled" }})
	}
	h.Add(health.Of("rules", n.ruleHealth()))
	if n.dec != nil {
		h.Add(health.Of("decoders", decoderHealth{n.dec, n.decLive}))
	}
	h.Add(health.Of("organizer", n.org))
	h.Add(health.Of("ingest", n.batcher))
}

// ruleHealth is the rules' collector and service check.
func (n *Node) ruleHealth() rules.RuleHealth {
	return rules.RuleHealth{Dir: n.rules, Runner: n.ruleRunner, Errors: n.st.RuleErrors}
}
