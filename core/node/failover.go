package node

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/recovery"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/signal"
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
	return m.n.st.Ping(ctx)
}

func (m migratedStore) WriteSignals(ctx context.Context, batch []signal.Signal) (store.WriteResult, error) {
	if !m.n.migrated.Load() {
		return store.WriteResult{}, errNotMigrated
	}
	return m.n.st.WriteSignals(ctx, batch)
}

func (m migratedStore) QuarantineRecords(ctx context.Context, recs []store.RejectedRecord) error {
	if !m.n.migrated.Load() {
		return errNotMigrated
	}
	return m.n.st.QuarantineRecords(ctx, recs)
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
		ok, err := integrity.OpenAlert(ctx, n.st.Pool(), dev, integrity.KindRecordRefused, reason)
		if err != nil {
			// The records are kept and counted; the alert is what is lost.
			n.log.Error("recording the record_refused alert", "device", dev, "error", err)
			continue
		}
		opened = opened || ok
	}
	if opened {
		n.org.Trigger(JobAlerts)
	}
}

// JobRecordAlerts clears record_refused alerts of devices whose acked
// refused records are gone from rejected_records.
const JobRecordAlerts = "records.alerts"

// clearRecordAlerts clears the record_refused alert of every device that
// has no acked row left in rejected_records: an operator deleted them
// after dealing with them (re-storing them, or deciding they are lost).
func (n *Node) clearRecordAlerts(ctx context.Context) error {
	subjects, err := integrity.OpenSubjects(ctx, n.st.Pool(), integrity.KindRecordRefused)
	if err != nil {
		return err
	}
	cleared := 0
	for _, dev := range subjects {
		left, err := n.st.HasAckedRejected(ctx, dev)
		if err != nil {
			return err
		}
		if left {
			continue
		}
		ok, err := integrity.ClearAlert(ctx, n.st.Pool(), dev, integrity.KindRecordRefused, "no acked refused records left in rejected_records")
		if err != nil {
			return err
		}
		if ok {
			cleared++
			n.log.Info("alert cleared", "device", dev, "kind", integrity.KindRecordRefused)
		}
	}
	if cleared > 0 {
		n.org.Trigger(JobAlerts)
	}
	return nil
}

// addReplayJobs adds the jobs that replay the failover queue and the spool
// into Postgres, and starts them at once when the Postgres breaker closes.
func (n *Node) addReplayJobs() {
	cfg := n.cfg
	n.replayer = recovery.New(migratedStore{n}, n.fo, n.sp, cfg.Ingest.BatchMaxSignals,
		config.Duration(cfg.Database.WriteTimeout), n.log.Named("replay"))
	n.replayer.OnRefused(n.recordsRefused)
	for _, j := range n.replayer.Jobs(config.Duration(cfg.Organizer.ReplayInterval)) {
		n.org.Add(j)
	}
	n.org.Add(organizer.Job{Name: JobRecordAlerts, Interval: config.Duration(cfg.Organizer.HealthInterval), Run: n.clearRecordAlerts})
	org := n.org
	n.breaker.OnRecover(func() {
		org.Trigger(recovery.JobReplayFailover)
		org.Trigger(recovery.JobReplaySpool)
	})
}
