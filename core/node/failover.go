package node

import (
	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/organizer"
)

// addReplayJobs adds the jobs that replay the failover queue and the spool
// into Postgres, and starts them at once when the Postgres breaker closes.
func (n *Node) addReplayJobs() {
	cfg := n.cfg
	n.Replayer = organizer.NewReplayer(n.Store, n.Failover, n.Spool, cfg.Ingest.BatchMaxSignals,
		config.Duration(cfg.Database.WriteTimeout), n.log.Named("replay"))
	for _, j := range n.Replayer.Jobs(config.Duration(cfg.Organizer.ReplayInterval)) {
		n.Organizer.Add(j)
	}
	org := n.Organizer
	n.Breaker.OnRecover(func() {
		org.Trigger(organizer.JobReplayFailover)
		org.Trigger(organizer.JobReplaySpool)
	})
}
