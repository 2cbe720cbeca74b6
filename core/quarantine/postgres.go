package quarantine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleetcore/fleetcore/core/store"
)

// Copier is the part of a pgx pool (or connection) PGSink uses.
type Copier interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// PGSink stores rows in the rejected_frames table, one COPY per batch.
type PGSink struct {
	DB Copier
}

var _ Sink = PGSink{}

// Columns are the rejected_frames columns PGSink fills, in COPY order.
var Columns = []string{"recv", "remote_addr", "listener", "protocol", "device_id", "reason", "raw", "raw_length"}

// WriteRows copies rows into rejected_frames. A data error (SQLSTATE
// classes 22, 23, 54: the rows themselves) wraps ErrRefused.
func (s PGSink) WriteRows(ctx context.Context, rows []Row) error {
	_, err := s.DB.CopyFrom(ctx, pgx.Identifier{"rejected_frames"}, Columns, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		r := &rows[i]
		var dev any
		if r.DeviceID != "" {
			dev = r.DeviceID
		}
		raw := r.Raw
		if raw == nil {
			raw = []byte{}
		}
		return []any{r.Recv, r.RemoteAddr, r.Listener, r.Protocol, dev, r.Reason, raw, int32(min(r.RawLength, 1<<31-1))}, nil
	}))
	if err != nil {
		if store.DataError(err) {
			return fmt.Errorf("storing %d rejected frames: %w: %w", len(rows), ErrRefused, err)
		}
		return fmt.Errorf("storing %d rejected frames: %w", len(rows), err)
	}
	return nil
}

// DB is the part of a pgx pool Retention uses.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// RetentionJob is the organizer job name of Retention.Run, and
// RetentionEvery its interval.
const (
	RetentionJob   = "quarantine_retention"
	RetentionEvery = time.Minute
)

// Retention deletes old rejected frames: rows received more than MaxAge
// ago, and the oldest rows beyond MaxRows. It deletes in chunks of Chunk
// rows (short statements, short locks), at most MaxChunks per run; a
// larger backlog is worked off over the next runs.
type Retention struct {
	DB        DB
	MaxAge    time.Duration // 0: no age limit
	MaxRows   int64         // 0: no row cap
	Chunk     int           // default 5000
	MaxChunks int           // default 100
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time

	deleted atomic.Uint64
}

// Deleted is how many rows Retention deleted since the process started.
func (r *Retention) Deleted() uint64 { return r.deleted.Load() }

// Run does one round of deletions.
func (r *Retention) Run(ctx context.Context) error {
	chunk, budget := r.Chunk, r.MaxChunks
	if chunk <= 0 {
		chunk = 5000
	}
	if budget <= 0 {
		budget = 100
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if r.MaxAge > 0 {
		cutoff := now().Add(-r.MaxAge)
		for ; budget > 0; budget-- {
			tag, err := r.DB.Exec(ctx, `DELETE FROM rejected_frames WHERE id IN (
				SELECT id FROM rejected_frames WHERE recv < $1 ORDER BY recv LIMIT $2)`, cutoff, chunk)
			if err != nil {
				return fmt.Errorf("deleting rejected frames older than %s: %w", r.MaxAge, err)
			}
			r.deleted.Add(uint64(tag.RowsAffected()))
			if tag.RowsAffected() < int64(chunk) {
				break
			}
		}
	}
	if r.MaxRows <= 0 || budget == 0 {
		return nil
	}
	// Ids only grow, and deletions take the oldest: max-min+1 bounds the
	// row count, so the exact cut is looked up only when it may be needed.
	var lo, hi *int64
	if err := r.DB.QueryRow(ctx, `SELECT min(id), max(id) FROM rejected_frames`).Scan(&lo, &hi); err != nil {
		return fmt.Errorf("sizing rejected frames: %w", err)
	}
	if lo == nil || *hi-*lo+1 <= r.MaxRows {
		return nil
	}
	var cut int64
	err := r.DB.QueryRow(ctx, `SELECT id FROM rejected_frames ORDER BY id DESC OFFSET $1 LIMIT 1`, r.MaxRows).Scan(&cut)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finding the rejected frames beyond %d rows: %w", r.MaxRows, err)
	}
	for ; budget > 0; budget-- {
		tag, err := r.DB.Exec(ctx, `DELETE FROM rejected_frames WHERE id IN (
			SELECT id FROM rejected_frames WHERE id <= $1 ORDER BY id LIMIT $2)`, cut, chunk)
		if err != nil {
			return fmt.Errorf("deleting rejected frames beyond %d rows: %w", r.MaxRows, err)
		}
		r.deleted.Add(uint64(tag.RowsAffected()))
		if tag.RowsAffected() < int64(chunk) {
			break
		}
	}
	return nil
}
