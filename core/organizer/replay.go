package organizer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleetcore/fleetcore/core/failover"
	"github.com/fleetcore/fleetcore/core/signal"
	"github.com/fleetcore/fleetcore/core/spool"
	"github.com/fleetcore/fleetcore/core/store"
)

// Replay job names.
const (
	JobReplayFailover = "replay.failover"
	JobReplaySpool    = "replay.spool"
)

// ReplayStore is what replay needs from Postgres.
type ReplayStore interface {
	WriteSignals(ctx context.Context, batch []signal.Signal) (store.WriteResult, error)
	Ping(ctx context.Context) error
}

// Replayer moves batches that were made durable in the failover queue or
// the disk spool into Postgres, idempotently, and acks a message / deletes
// a segment only after COMMIT. While Postgres does not answer its probe,
// replay pauses (nothing is consumed, so nothing is requeued in a loop).
type Replayer struct {
	store        ReplayStore
	failover     *failover.Broker // nil without RabbitMQ
	spool        *spool.Spool
	log          hclog.Logger
	maxSignals   int
	writeTimeout time.Duration

	paused                     atomic.Bool
	fromFailover, fromSpool    atomic.Uint64 // signals replayed
	insertedRows, duplicateRow atomic.Uint64
	mu                         sync.Mutex
	spoolRate                  float64
	lastRun                    time.Time
}

// NewReplayer makes a replayer. fo may be nil. maxSignals bounds one write
// (spool records are grouped up to it); writeTimeout bounds one write.
func NewReplayer(st ReplayStore, fo *failover.Broker, sp *spool.Spool, maxSignals int, writeTimeout time.Duration, log hclog.Logger) *Replayer {
	if maxSignals <= 0 {
		maxSignals = 4096
	}
	if writeTimeout <= 0 {
		writeTimeout = 10 * time.Second
	}
	return &Replayer{store: st, failover: fo, spool: sp, log: log, maxSignals: maxSignals, writeTimeout: writeTimeout}
}

// Jobs returns the replay jobs to add to an organizer.
func (r *Replayer) Jobs(interval time.Duration) []Job {
	var jobs []Job
	if r.failover != nil {
		jobs = append(jobs, Job{Name: JobReplayFailover, Interval: interval, Run: r.ReplayFailover})
	}
	if r.spool != nil {
		jobs = append(jobs, Job{Name: JobReplaySpool, Interval: interval, Run: r.ReplaySpool})
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

// write stores a replayed batch with its path label and reports whether
// a failure is permanent (the data is refused) or transient.
func (r *Replayer) write(ctx context.Context, path string, batch []signal.Signal) error {
	for i := range batch {
		batch[i].Path = path
	}
	wctx, cancel := context.WithTimeout(ctx, r.writeTimeout)
	defer cancel()
	res, err := r.store.WriteSignals(wctx, batch)
	if err != nil {
		if permanent(err) {
			return fmt.Errorf("%w: %w: %w", failover.ErrPoison, spool.ErrRefused, err)
		}
		return err
	}
	r.insertedRows.Add(uint64(res.Inserted))
	r.duplicateRow.Add(uint64(res.Duplicates))
	return nil
}

// permanent reports a Postgres error about the data rather than about the
// server's availability.
func permanent(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || len(pg.Code) < 2 {
		return false
	}
	switch pg.Code[:2] {
	// Connection, transaction rollback, resources, object state, operator
	// intervention, system, internal, transaction state; and what is wrong
	// with the deployment rather than the data: authorization (28),
	// catalog name (3D), and syntax or access rules (42: a table missing or
	// not writable). Those are retried, never dead-lettered.
	case "08", "40", "53", "55", "57", "58", "XX", "25", "28", "3D", "42":
		return false
	}
	return true
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

// ReplayStats is a snapshot of replay.
type ReplayStats struct {
	Paused           bool   // Postgres did not answer the last probe
	FailoverSignals  uint64 // signals replayed from the failover queue
	SpoolSignals     uint64 // signals replayed from the spool
	Inserted         uint64 // rows new to Postgres
	Duplicates       uint64 // rows Postgres already had (resends, repeated replays)
	FailoverRate     float64
	SpoolRate        float64 // signals/s in the last round that replayed any
	LastRun          time.Time
	FailoverBacklog  int64 // messages (-1 unknown or no RabbitMQ)
	SpoolBacklog     int64 // bytes
	OldestBacklogAge time.Duration
}

// Stats returns a snapshot.
func (r *Replayer) Stats() ReplayStats {
	s := ReplayStats{
		Paused: r.paused.Load(), FailoverSignals: r.fromFailover.Load(), SpoolSignals: r.fromSpool.Load(),
		Inserted: r.insertedRows.Load(), Duplicates: r.duplicateRow.Load(), FailoverBacklog: -1,
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
