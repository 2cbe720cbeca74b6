package node

import (
	"context"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/quarantine"
	"github.com/fleetcore/fleetcore/core/store"
)

// PartitionsJob is the organizer job that creates signals partitions
// ahead, keeps the default partition empty and applies retention.
const PartitionsJob = "partitions_retention"

// partitioner is the partition and retention job of the config.
func (n *Node) partitioner() *store.Partitioner {
	rc := n.cfg.Retention
	return &store.Partitioner{
		Pool: n.st.Pool(), Log: n.log.Named("partitions"),
		Months: rc.PartitionMonths, Ahead: *rc.PartitionsAhead,
		SignalsMaxAge:  config.Duration(rc.Signals),
		FindingsMaxAge: config.Duration(rc.Findings),
		AlertsMaxAge:   config.Duration(rc.Alerts),
		BatchRows:      rc.BatchRows,
	}
}

// startAsync starts the organizer with every asynchronous job and the
// other background services. The returned func waits for them to stop
// after ctx ends.
func (n *Node) startAsync(ctx context.Context) (func(), error) {
	n.org = organizer.New(n.log.Named("organizer"), 4)
	n.addReplayJobs()
	if n.retention.MaxAge > 0 || n.retention.MaxRows > 0 {
		n.org.Add(organizer.Job{Name: quarantine.RetentionJob, Interval: quarantine.RetentionEvery, Run: func(ctx context.Context) error {
			_, err := store.Singleton(ctx, n.st.Pool(), quarantine.RetentionJob, n.retention.Run) // one node at a time
			return err
		}})
	}
	n.org.Add(organizer.Job{Name: PartitionsJob, Interval: config.Duration(n.cfg.Retention.Interval), Run: n.parts.Run})
	if !n.partsDone {
		n.org.Trigger(PartitionsJob) // the first round failed at start: again now
	}
	if err := n.startRules(ctx); err != nil {
		return nil, err
	}
	n.startDecoders(ctx)
	if err := n.startIntegrity(ctx); err != nil {
		return nil, err
	}
	if err := n.startAPI(ctx); err != nil {
		return nil, err
	}
	n.org.Start(ctx)
	return n.org.Wait, nil
}
