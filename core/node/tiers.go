package node

import (
	"context"
	"fmt"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/failover"
	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/core/spool"
)

// Interface guards: every tier fits the batcher; the optional gates are
// where the batcher looks for them.
var (
	_ ingest.Tier = (*failover.Broker)(nil)
	_ ingest.Gate = (*failover.Broker)(nil)
	_ ingest.Tier = (*spool.Spool)(nil)
	_ ingest.Gate = (*ingest.Breaker)(nil)
)

// buildTiers assembles the durability chain from config, first tier first:
// Postgres behind a circuit breaker, then RabbitMQ (when amqp.url is set),
// then the disk spool. The returned func releases what the tiers hold.
func (n *Node) buildTiers(ctx context.Context) ([]ingest.Tier, func(), error) {
	cfg := n.cfg
	probe := n.st.Ping
	if !n.migrated.Load() {
		probe = func(pctx context.Context) error { return n.migrateThenPing(ctx, pctx) }
	}
	n.breaker = ingest.NewBreaker(n.pg, probe, config.Duration(cfg.Ingest.BreakerProbe), n.log.Named("breaker"))
	if n.startErr != nil {
		n.breaker.Trip(n.startErr) // open from the start; the probe migrates
	}
	tiers := []ingest.Tier{n.breaker}
	closers := []func(){n.breaker.Close}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if urls := cfg.AMQP.Endpoints(); len(urls) > 0 {
		fo, err := failover.New(failover.Options{
			URLs: urls, Queue: cfg.AMQP.Queue, DeadLetter: cfg.AMQP.DeadLetter, QueueType: cfg.AMQP.QueueType,
			ConfirmTimeout: config.Duration(cfg.AMQP.ConfirmTimeout), Window: cfg.AMQP.ConfirmWindow,
			Prefetch: cfg.AMQP.Prefetch, MaxRedeliver: cfg.AMQP.MaxRedeliver,
			ReconnectMax: config.Duration(cfg.AMQP.ReconnectMax), NodeID: cfg.NodeID,
		}, n.log.Named("failover"))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		fo.Connect() //nolint:errcheck // logged by the link; the tier is down until the broker answers
		n.fo = fo
		tiers = append(tiers, fo)
		closers = append(closers, fo.Close)
	}
	if !*cfg.Spool.Enabled {
		n.log.Warn("spool disabled: a batch that no other tier takes is left unacked (devices resend)")
		return tiers, closeAll, nil
	}
	sp, err := spool.Open(spool.Options{
		Dir: cfg.Spool.Dir, MaxBytes: cfg.Spool.MaxBytes, SegmentBytes: cfg.Spool.SegmentBytes,
		FS: n.spoolFS, Log: n.log.Named("spool"),
	})
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("opening spool: %w", err)
	}
	n.sp = sp
	tiers = append(tiers, sp)
	closers = append(closers, func() { sp.Close() })
	return tiers, closeAll, nil
}
