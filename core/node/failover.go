package node

import (
	"context"
	"errors"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/signal"
	"github.com/fleetcore/fleetcore/core/store"
)

// migratedStore is the node's store as replay sees it: not answering
// until the database is migrated, so a node started while Postgres was
// unreachable does not replay into a database without its tables (which
// would refuse every batch) in the moments between Postgres coming back
// and the breaker's probe migrating it.
type migratedStore struct{ n *Node }

var errNotMigrated = errors.New("the database is not migrated yet")

func (m migratedStore) Ping(ctx context.Context) error {
	if !m.n.migrated.Load() {
		return errNotMigrated
	}
	return m.n.Store.Ping(ctx)
}

func (m migratedStore) WriteSignals(ctx context.Context, batch []signal.Signal) (store.WriteResult, error) {
	if !m.n.migrated.Load() {
		return store.WriteResult{}, errNotMigrated
	}
	return m.n.Store.WriteSignals(ctx, batch)
}

// addReplayJobs adds the jobs that replay the failover queue and the spool
// into Postgres, and starts them at once when the Postgres breaker closes.
func (n *Node) addReplayJobs() {
	cfg := n.cfg
	n.Replayer = organizer.NewReplayer(migratedStore{n}, n.Failover, n.Spool, cfg.Ingest.BatchMaxSignals,
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
