package recovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/failover"
	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/spool"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/signal"
)

// Replay job names (kept from when replay lived in the organizer: they
// are the job names /api/status and /metrics show).
const (
	JobReplayFailover = "replay.failover"
	JobReplaySpool    = "replay.spool"
)

// Store is what replay needs from Postgres.
type Store interface {
	WriteSignals(ctx context.Context, batch []signal.Signal) (store.WriteResult, error)
	QuarantineRecords(ctx context.Context, recs []store.RejectedRecord) error
	Ping(ctx context.Context) error
}

// RefusedFunc is told about records that were acked (they came through a
// failover tier) and that Postgres refused on replay, after they were
// kept in rejected_records: the node opens a record_refused alert.
type RefusedFunc func(ctx context.Context, recs []store.RejectedRecord)

// Replayer moves batches that were made durable in the failover queue or
// the disk spool into Postgres, idempotently, and acks a message / deletes
// a segment only after COMMIT. While Postgres does not answer its probe,
// replay pauses (nothing is consumed, so nothing is requeued in a loop).
//
// Records Postgres refuses for their data are isolated by the store's
// write (store.WriteSignals): the rest of the message or segment is
// committed, the refused ones (acked: they came through a failover tier)
// are kept in rejected_records with acked=true, counted and handed to the
// RefusedFunc, and only then is the message acked or the segment removed.
// A message or segment is never dead-lettered because of its records.
type Replayer struct {
	store        Store
	failover     *failover.Broker // nil without RabbitMQ
	spool        *spool.Spool
	log          hclog.Logger
	maxSignals   int
	writeTimeout time.Duration

	onRefused RefusedFunc

	paused                     atomic.Bool
	fromFailover, fromSpool    atomic.Uint64 // signals replayed
	refused                    atomic.Uint64 // acked records Postgres refused
	insertedRows, duplicateRow atomic.Uint64
	mu                         sync.Mutex
	spoolRate                  float64
	lastRun                    time.Time
}

// New makes a replayer. fo may be nil. maxSignals bounds one write
// (spool records are grouped up to it); writeTimeout bounds one write.
func New(st Store, fo *failover.Broker, sp *spool.Spool, maxSignals int, writeTimeout time.Duration, log hclog.Logger) *Replayer {
	if maxSignals <= 0 {
		maxSignals = 4096
	}
	if writeTimeout <= 0 {
		writeTimeout = 10 * time.Second
	}
	return &Replayer{store: st, failover: fo, spool: sp, log: log, maxSignals: maxSignals, writeTimeout: writeTimeout}
}

// OnRefused sets what is told about acked records Postgres refused (call
// before the jobs run).
func (r *Replayer) OnRefused(fn RefusedFunc) { r.onRefused = fn }

// Jobs returns the replay jobs to add to an organizer.
func (r *Replayer) Jobs(interval time.Duration) []organizer.Job {
	var jobs []organizer.Job
	if r.failover != nil {
		jobs = append(jobs, organizer.Job{Name: JobReplayFailover, Interval: interval, Run: r.ReplayFailover})
	}
	if r.spool != nil {
		jobs = append(jobs, organizer.Job{Name: JobReplaySpool, Interval: interval, Run: r.ReplaySpool})
	}
	return jobs
}

// errPaused: Postgres does not answer, replay waits.
var errPaused = errors.New("postgres unavailable; replay paused")

func (r *Replayer) ready(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, r.writeTimeout)
	defer cancel()
	if err := r.store.Ping(pctx); err != nil {
		if !r.paused.Swap(true) {
			r.log.Warn("replay paused until postgres answers", "error", err)
		}
		return fmt.Errorf("%w: %w", errPaused, err)
	}
	if r.paused.Swap(false) {
		r.log.Info("replay resumed")
	}
	return nil
}

// write stores a replayed batch with its path label. An error means the
// batch is not known to be stored (Postgres unavailable, the context
// ended): the message or segment stays and is replayed again. Records
// Postgres refuses are not errors: they are kept in rejected_records.
func (r *Replayer) write(ctx context.Context, path string, batch []signal.Signal) error {
	for i := range batch {
		batch[i].Path = path
	}
	wctx, cancel := context.WithTimeout(ctx, r.writeTimeout)
	defer cancel()
	res, err := r.store.WriteSignals(wctx, batch)
	if err != nil {
		return err
	}
	r.insertedRows.Add(uint64(res.Inserted))
	r.duplicateRow.Add(uint64(res.Duplicates))
	if len(res.Refused) == 0 {
		return nil
	}
	recs := store.RefusedRecords(batch, res.Refused, true)
	// WriteSignals keeps most refused records itself, in the batch's own
	// transaction; the rest are kept here.
	if err := r.store.QuarantineRecords(wctx, store.RefusedRecords(batch, store.Unkept(res.Refused), true)); err != nil {
		// The rest is committed; the batch is replayed again (stored
		// idempotently) until its refused records are kept.
		return fmt.Errorf("keeping %d refused records: %w", len(recs), err)
	}
	r.refused.Add(uint64(len(recs)))
	if r.onRefused != nil {
		r.onRefused(ctx, recs)
	}
	return nil
}

// ReplayFailover drains the failover queue into Postgres.
func (r *Replayer) ReplayFailover(ctx context.Context) error {
	if err := r.ready(ctx); err != nil {
		r.failover.Refresh(ctx) //nolint:errcheck // gauges only; the broker may be down too
		return err
	}
	res, err := r.failover.Drain(ctx, func(ctx context.Context, b []signal.Signal) error {
		return r.write(ctx, signal.PathFailover, b)
	})
	r.fromFailover.Add(uint64(res.Signals))
	r.touch()
	if err != nil {
		return fmt.Errorf("replaying failover queue: %w", err)
	}
	return nil
}

// ReplaySpool replays the spool into Postgres, oldest segment first.
func (r *Replayer) ReplaySpool(ctx context.Context) error {
	if r.spool.Stats().Segments == 0 {
		return nil
	}
	if err := r.ready(ctx); err != nil {
		return err
	}
	start := time.Now()
	n, err := r.spool.Replay(ctx, r.maxSignals, func(ctx context.Context, b []signal.Signal) error {
		return r.write(ctx, signal.PathSpool, b)
	})
	r.fromSpool.Add(uint64(n))
	if n > 0 {
		r.mu.Lock()
		r.spoolRate = float64(n) / time.Since(start).Seconds()
		r.mu.Unlock()
	}
	r.touch()
	if err != nil {
		return fmt.Errorf("replaying spool: %w", err)
	}
	return nil
}

func (r *Replayer) touch() {
	r.mu.Lock()
	r.lastRun = time.Now()
	r.mu.Unlock()
}

// Stats is a snapshot of replay.
type Stats struct {
	Paused           bool   // Postgres did not answer the last probe
	FailoverSignals  uint64 // signals replayed from the failover queue
	SpoolSignals     uint64 // signals replayed from the spool
	Inserted         uint64 // rows new to Postgres
	Duplicates       uint64 // rows Postgres already had (resends, repeated replays)
	Refused          uint64 // acked records Postgres refused, kept in rejected_records
	FailoverRate     float64
	SpoolRate        float64 // signals/s in the last round that replayed any
	LastRun          time.Time
	FailoverBacklog  int64 // messages (-1 unknown or no RabbitMQ)
	SpoolBacklog     int64 // bytes
	OldestBacklogAge time.Duration
}

// Stats returns a snapshot.
func (r *Replayer) Stats() Stats {
	s := Stats{
		Paused: r.paused.Load(), FailoverSignals: r.fromFailover.Load(), SpoolSignals: r.fromSpool.Load(),
		Inserted: r.insertedRows.Load(), Duplicates: r.duplicateRow.Load(), Refused: r.refused.Load(), FailoverBacklog: -1,
	}
	r.mu.Lock()
	s.SpoolRate, s.LastRun = r.spoolRate, r.lastRun
	r.mu.Unlock()
	if r.failover != nil {
		fs := r.failover.Stats()
		s.FailoverRate, s.FailoverBacklog, s.OldestBacklogAge = fs.ReplayRate, fs.Backlog, fs.OldestAge
	}
	if r.spool != nil {
		ss := r.spool.Stats()
		s.SpoolBacklog = ss.Bytes
		s.OldestBacklogAge = max(s.OldestBacklogAge, ss.OldestAge)
	}
	return s
}
