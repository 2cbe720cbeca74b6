package rules

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The safe frontier of signal ids.
//
// signals.id comes from signals_id_seq, and writer transactions commit in
// any order: a transaction can take id 5, stay open while another takes id 6
// and commits, and commit later. A rule that advanced its watermark to 6 when
// only 6 was visible would never see 5. So rules evaluate only ids up to a
// frontier F below which no row can still appear:
//
//  1. read L = pg_sequence_last_value(signals_id_seq);
//  2. then list H, the transactions holding RowExclusiveLock on signals or
//     one of its partitions (from pg_locks, fast-path locks included).
//
// Every writer takes that lock (when its INSERT or COPY is parsed or opened)
// before it allocates ids through the column default, and keeps it until it
// commits or rolls back (a lock taken in a savepoint that is rolled back is
// released, but so are the rows). An id <= L was therefore allocated before
// step 1 by a transaction that then held the lock: by step 2 it has ended
// (its rows are visible or gone) or it is in H. Once no member of H holds
// the lock any more, every id <= L is final and F may advance to L.
//
// A candidate (L, H) is confirmed by polling pg_locks for a short while
// (ingest transactions last milliseconds); a candidate whose writers are
// still open after FrontierWait stays pending and is confirmed on a later
// call, while rules keep using the last confirmed frontier. The frontier is
// per process and needs no shared state: each organizer computes a correct
// (possibly more conservative) one.
//
// This relies on signals_id_seq having CACHE 1 (the default): with a larger
// cache a session could hand out a pre-allocated id below L later. The
// runner checks this when it starts.
type frontier struct {
	pool *pgxpool.Pool
	wait time.Duration
	log  hclog.Logger

	mu        sync.Mutex
	confirmed int64
	pending   *frontierCandidate
}

type frontierCandidate struct {
	last    int64
	holders []string // virtualtransaction ids
	since   time.Time
	warned  bool
}

// stallWarning is how long a writer may hold the frontier before it is
// logged: rules evaluate nothing newer than that writer's ids meanwhile.
const stallWarning = time.Minute

const (
	seqLastSQL = `SELECT coalesce(pg_sequence_last_value('signals_id_seq'), 0)`
	// Writers of signals, including prepared transactions (pid NULL).
	holdersSQL = `SELECT coalesce(array_agg(DISTINCT l.virtualtransaction), '{}')
		FROM pg_locks l
		WHERE l.locktype = 'relation'
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.relation IN (SELECT relid FROM pg_partition_tree('signals'))
		  AND l.mode = 'RowExclusiveLock'
		  AND l.pid IS DISTINCT FROM pg_backend_pid()`
	seqCacheSQL = `SELECT cache_size FROM pg_sequences WHERE schemaname = current_schema() AND sequencename = 'signals_id_seq'`
)

func (f *frontier) candidate(ctx context.Context) (frontierCandidate, error) {
	c := frontierCandidate{since: time.Now()}
	// Two statements, in this order: the sequence first, then the lock
	// holders.
	if err := f.pool.QueryRow(ctx, seqLastSQL).Scan(&c.last); err != nil {
		return c, fmt.Errorf("reading signals_id_seq: %w", err)
	}
	hs, err := f.holders(ctx)
	if err != nil {
		return c, err
	}
	c.holders = hs
	return c, nil
}

func (f *frontier) holders(ctx context.Context) ([]string, error) {
	var hs []string
	if err := f.pool.QueryRow(ctx, holdersSQL).Scan(&hs); err != nil {
		return nil, fmt.Errorf("listing signal writers: %w", err)
	}
	return hs, nil
}

// done reports whether none of the candidate's writers still holds its lock.
func (f *frontier) done(ctx context.Context, c *frontierCandidate) (bool, error) {
	if len(c.holders) == 0 {
		return true, nil
	}
	now, err := f.holders(ctx)
	if err != nil {
		return false, err
	}
	open := make(map[string]bool, len(now))
	for _, h := range now {
		open[h] = true
	}
	for _, h := range c.holders {
		if open[h] {
			return false, nil
		}
	}
	return true, nil
}

func (f *frontier) confirm(c *frontierCandidate) {
	if c.last > f.confirmed {
		f.confirmed = c.last
	}
}

// Safe returns the highest id below which every signal is committed or
// gone for good, refreshed now. Concurrent callers take turns.
func (f *frontier) Safe(ctx context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending != nil {
		ok, err := f.done(ctx, f.pending)
		if err != nil {
			return f.confirmed, err
		}
		if ok {
			f.confirm(f.pending)
			f.pending = nil
		} else if !f.pending.warned && time.Since(f.pending.since) > stallWarning {
			f.pending.warned = true
			f.log.Warn("a long transaction writing signals holds back rule evaluation",
				"open_for", time.Since(f.pending.since).Round(time.Second),
				"transactions", f.pending.holders, "frontier", f.confirmed)
		}
	}
	c, err := f.candidate(ctx)
	if err != nil {
		return f.confirmed, err
	}
	deadline := time.Now().Add(f.wait)
	pause := 2 * time.Millisecond
	for {
		ok, err := f.done(ctx, &c)
		if err != nil {
			return f.confirmed, err
		}
		if ok {
			f.confirm(&c)
			f.pending = nil
			return f.confirmed, nil
		}
		if time.Now().Add(pause).After(deadline) {
			// Keep the oldest unconfirmed candidate: it is the one that
			// can unblock the frontier first.
			if f.pending == nil {
				f.pending = &c
			}
			return f.confirmed, nil
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return f.confirmed, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// Confirmed returns the last confirmed frontier without a query.
func (f *frontier) Confirmed() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.confirmed
}
