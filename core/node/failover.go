package node

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/integrity"
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

func (m migratedStore) QuarantineRecords(ctx context.Context, recs []store.RejectedRecord) error {
	if !m.n.migrated.Load() {
		return errNotMigrated
	}
	return m.n.Store.QuarantineRecords(ctx, recs)
}

// recordsRefused opens the record_refused alert (integrity.KindRecordRefused)
// of each device with acked records that Postgres refused on replay (they
// are in rejected_records), and delivers it at once.
func (n *Node) recordsRefused(ctx context.Context, recs []store.RejectedRecord) {
	byDev := map[string][]store.RejectedRecord{}
	for _, r := range recs {
		dev := store.Printable(r.Signal.DeviceID, store.MaxPrintable)
		byDev[dev] = append(byDev[dev], r)
	}
	devs := make([]string, 0, len(byDev))
	for d := range byDev {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	opened := false
	for _, dev := range devs {
		rs := byDev[dev]
		reason := fmt.Sprintf("%d acked records refused by Postgres on replay (SQLSTATE %s: %s); kept in rejected_records",
			len(rs), rs[0].SQLState, store.Printable(rs[0].Reason, 512))
		ok, err := integrity.OpenAlert(ctx, n.Store.Pool(), dev, integrity.KindRecordRefused, reason)
		if err != nil {
			// The records are kept and counted; the alert is what is lost.
			n.log.Error("recording the record_refused alert", "device", dev, "error", err)
			continue
		}
		opened = opened || ok
	}
	if opened {
		n.Organizer.Trigger(JobAlerts)
	}
}

// addReplayJobs adds the jobs that replay the failover queue and the spool
// into Postgres, and starts them at once when the Postgres breaker closes.
func (n *Node) addReplayJobs() {
	cfg := n.cfg
	n.Replayer = organizer.NewReplayer(migratedStore{n}, n.Failover, n.Spool, cfg.Ingest.BatchMaxSignals,
		config.Duration(cfg.Database.WriteTimeout), n.log.Named("replay"))
	n.Replayer.OnRefused(n.recordsRefused)
	for _, j := range n.Replayer.Jobs(config.Duration(cfg.Organizer.ReplayInterval)) {
		n.Organizer.Add(j)
	}
	org := n.Organizer
	n.Breaker.OnRecover(func() {
		org.Trigger(organizer.JobReplayFailover)
		org.Trigger(organizer.JobReplaySpool)
	})
}
