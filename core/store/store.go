package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/core/signal"
)

// Store is fleetcore's handle on Postgres.
type Store struct {
	pool   *pgxpool.Pool
	recent *recentKeys
}

// Options tunes Open.
type Options struct {
	MaxConns       int32
	ConnectTimeout time.Duration
}

// Open connects a pool to dbURL. It does not migrate; call Migrate.
func Open(ctx context.Context, dbURL string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parsing database url: %w", config.RedactError(err, dbURL))
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if o.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = o.ConnectTimeout
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "fleetcore"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening database pool: %w", config.RedactError(err, dbURL))
	}
	return &Store{pool: pool, recent: newRecentKeys()}, nil
}

// Pool exposes the pool to other stages (organizer, API) that run their
// own queries.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that Postgres answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("pinging database: %w", err)
	}
	return nil
}

// MigrateAll applies pending migrations on one pooled connection.
func (s *Store) MigrateAll(ctx context.Context) ([]int, error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring connection for migrations: %w", err)
	}
	defer c.Release()
	return Migrate(ctx, c.Conn())
}

// SignalColumns are the columns a batch write fills, in COPY order.
var SignalColumns = []string{
	"device_id", "ts", "recv", "lat", "lon", "alt", "speed", "heading", "sats", "hdop", "valid",
	"rpm", "coolant", "fuel", "voltage", "odometer", "engine_load", "throttle",
	"dtcs", "attrs", "protocol", "path", "record_hash", "frame_hash", "frame",
}

// WriteResult counts what one batch write did.
type WriteResult struct {
	Inserted   int // new rows
	Duplicates int // rows already stored (resends, replays)
}

// WriteSignals stores a batch and returns only once it is committed; any
// error means the outcome is not known to be durable.
//
// The common case, a batch of new records, is one COPY in its own implicit
// transaction: a single round trip. When the COPY hits the idempotency key
// (a resend, a replay, a duplicate inside the batch) nothing was written,
// and the batch is written again in a transaction that first looks up
// which of its keys are already stored and copies only the others; if a
// concurrent writer stores one of them in between, that transaction falls
// back to a staging table and INSERT … ON CONFLICT DO NOTHING. Whichever
// path runs, every record ends up stored exactly once.
//
// Each signal's Path must be set. The raw frame is stored once, on the
// first record of the frame that gets stored.
func (s *Store) WriteSignals(ctx context.Context, batch []signal.Signal) (WriteResult, error) {
	if len(batch) == 0 {
		return WriteResult{}, nil
	}
	hashes := make([]int64, len(batch))
	keys := make([]recentKey, len(batch))
	for i := range batch {
		hashes[i] = batch[i].RecordHash()
		keys[i] = keyOf(batch[i].DeviceID, batch[i].TS.UnixMicro(), hashes[i])
	}
	// Leave out what this process knows is stored and repeats inside the
	// batch, so that resends do not fail the COPY.
	fresh := s.recent.fresh(keys)
	if len(fresh) == 0 {
		return WriteResult{Duplicates: len(batch)}, nil
	}
	n, err := s.copyFresh(ctx, batch, hashes, fresh)
	if err == nil {
		copied := make([]recentKey, len(fresh))
		for j, i := range fresh {
			copied[j] = keys[i]
		}
		s.recent.add(copied)
		return WriteResult{Inserted: int(n), Duplicates: len(batch) - int(n)}, nil
	}
	if !isUniqueViolation(err) {
		return WriteResult{}, fmt.Errorf("copying signals: %w", err)
	}
	rows := Rows(batch)
	var res WriteResult
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		fresh, err := unstored(ctx, tx, batch, rows)
		if err != nil {
			return err
		}
		if len(fresh) == 0 {
			res.Inserted = 0
			return nil
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("opening savepoint: %w", err)
		}
		n, err := sp.CopyFrom(ctx, pgx.Identifier{"signals"}, SignalColumns, pgx.CopyFromRows(fresh))
		if err == nil {
			if err := sp.Commit(ctx); err != nil {
				return fmt.Errorf("releasing savepoint: %w", err)
			}
			res.Inserted = int(n)
			return nil
		}
		if !isUniqueViolation(err) {
			return fmt.Errorf("copying new signals: %w", err)
		}
		// A concurrent writer stored some of them since the lookup.
		if err := sp.Rollback(ctx); err != nil {
			return fmt.Errorf("rolling back to savepoint: %w", err)
		}
		ins, err := insertIdempotent(ctx, tx, fresh)
		res.Inserted = ins
		return err
	})
	if err != nil {
		return WriteResult{}, err
	}
	s.recent.add(keys) // every key of the batch is stored now
	res.Duplicates = len(batch) - res.Inserted
	return res, nil
}

// copyFresh writes the signals fresh (indices into batch, in order) with
// one binary COPY in its own transaction and returns the rows copied. Raw
// frames are placed over the whole batch first (frameRefs): a record left
// out because it is known to be stored takes no frame (its frame was stored
// with it), and a repeat inside the batch never carries one (the first
// occurrence does).
func (s *Store) copyFresh(ctx context.Context, batch []signal.Signal, hashes []int64, fresh []int) (int64, error) {
	refs := frameRefs(batch)
	bufp := copyBufs.Get().(*[]byte)
	buf := append((*bufp)[:0], copyHeader...)
	var now time.Time
	for _, i := range fresh {
		recv := batch[i].Recv
		if recv.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			recv = now
		}
		buf = appendCopyRow(buf, &batch[i], recv, hashes[i], refs[i])
	}
	buf = append(buf, copyTrailer...)
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		copyBufs.Put(bufp)
		return 0, err
	}
	defer c.Release()
	tag, err := c.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), copySignalsSQL)
	if err != nil {
		// When the server fails the COPY, pgconn may return before its
		// sending goroutine stops reading buf: the buffer is not reused.
		return 0, err
	}
	if cap(buf) <= maxPooledCopyBuf {
		*bufp = buf
		copyBufs.Put(bufp)
	}
	return tag.RowsAffected(), nil
}

// copyBufs recycles COPY buffers between batches.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledCopyBuf keeps one huge batch from pinning its buffer.
const maxPooledCopyBuf = 8 << 20

// Rows turns a batch into COPY values in SignalColumns order. The raw
// frame goes on the first record of each frame in the batch.
func Rows(batch []signal.Signal) [][]any {
	refs := frameRefs(batch)
	rows := make([][]any, len(batch))
	for i := range batch {
		var fh, frame any
		if refs[i].has {
			fh = refs[i].hash
			if refs[i].bytes != nil {
				frame = refs[i].bytes
			}
		}
		rows[i] = signalRow(&batch[i], fh, frame)
	}
	return rows
}

const (
	colDevice    = 0
	colTS        = 1
	colHash      = 22
	colFrameHash = 23
	colFrame     = 24
)

// unstored returns the rows of the batch whose keys are not stored yet,
// each key once, with the raw frame moved to the first remaining record of
// its frame.
func unstored(ctx context.Context, tx pgx.Tx, batch []signal.Signal, rows [][]any) ([][]any, error) {
	devs := make([]string, len(rows))
	tss := make([]time.Time, len(rows))
	hashes := make([]int64, len(rows))
	for i, r := range rows {
		devs[i], tss[i], hashes[i] = r[colDevice].(string), r[colTS].(time.Time), r[colHash].(int64)
	}
	q, err := tx.Query(ctx, `SELECT k.i FROM unnest($1::text[], $2::timestamptz[], $3::bigint[]) WITH ORDINALITY AS k(d, t, h, i)
		WHERE EXISTS (SELECT 1 FROM signals s WHERE s.device_id = k.d AND s.ts = k.t AND s.record_hash = k.h)`, devs, tss, hashes)
	if err != nil {
		return nil, fmt.Errorf("looking up stored keys: %w", err)
	}
	stored := make(map[int]bool)
	for q.Next() {
		var i int64
		if err := q.Scan(&i); err != nil {
			q.Close()
			return nil, fmt.Errorf("looking up stored keys: %w", err)
		}
		stored[int(i)-1] = true
	}
	q.Close()
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("looking up stored keys: %w", err)
	}
	type key struct {
		dev string
		ts  time.Time
		h   int64
	}
	seen := make(map[key]bool, len(rows))
	// Every write that stores records of a frame stores the frame on one
	// of them, so a frame with any record already stored is stored.
	framed := map[int64]bool{}
	for i := range stored {
		if fh, ok := rows[i][colFrameHash].(int64); ok {
			framed[fh] = true
		}
	}
	fresh := make([][]any, 0, len(rows))
	for i, r := range rows {
		k := key{devs[i], tss[i], hashes[i]}
		if stored[i] || seen[k] {
			continue
		}
		seen[k] = true
		r[colFrame] = nil
		if fh, ok := r[colFrameHash].(int64); ok && !framed[fh] {
			framed[fh] = true
			r[colFrame] = batch[i].Frame
		}
		fresh = append(fresh, r)
	}
	return fresh, nil
}

func insertIdempotent(ctx context.Context, tx pgx.Tx, rows [][]any) (int, error) {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS signals_staging (
		device_id text, ts timestamptz, recv timestamptz,
		lat double precision, lon double precision, alt double precision, speed double precision,
		heading double precision, sats double precision, hdop double precision, valid boolean,
		rpm double precision, coolant double precision, fuel double precision, voltage double precision,
		odometer double precision, engine_load double precision, throttle double precision,
		dtcs text[], attrs jsonb, protocol text, path text, record_hash bigint, frame_hash bigint, frame bytea
	) ON COMMIT DELETE ROWS`); err != nil {
		return 0, fmt.Errorf("creating staging table: %w", err)
	}
	// A previous transaction on this connection that rolled back may have
	// left rows behind.
	if _, err := tx.Exec(ctx, "TRUNCATE signals_staging"); err != nil {
		return 0, fmt.Errorf("clearing staging table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"signals_staging"}, SignalColumns, pgx.CopyFromRows(rows)); err != nil {
		return 0, fmt.Errorf("copying signals to staging: %w", err)
	}
	cols := strings.Join(SignalColumns, ", ")
	tag, err := tx.Exec(ctx, `INSERT INTO signals (`+cols+`) SELECT `+cols+`
		FROM signals_staging ON CONFLICT (device_id, ts, record_hash) DO NOTHING`)
	if err != nil {
		return 0, fmt.Errorf("inserting signals from staging: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func nullable(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}

func signalRow(s *signal.Signal, frameHash, frame any) []any {
	var valid any
	if v, ok := s.Valid.Bool(); ok {
		valid = v
	}
	var dtcs any
	if len(s.DTCs) > 0 {
		dtcs = s.DTCs
	}
	var attrs any
	if len(s.Attrs) > 0 {
		attrs = attrsJSON(s.Attrs)
	}
	recv := s.Recv
	if recv.IsZero() {
		recv = time.Now()
	}
	return []any{
		s.DeviceID, s.TS.UTC(), recv.UTC(),
		nullable(s.Lat), nullable(s.Lon), nullable(s.Alt), nullable(s.Speed), nullable(s.Heading),
		nullable(s.Sats), nullable(s.HDOP), valid,
		nullable(s.RPM), nullable(s.Coolant), nullable(s.Fuel), nullable(s.Voltage), nullable(s.Odometer),
		nullable(s.EngineLoad), nullable(s.Throttle),
		dtcs, attrs, s.Protocol, s.Path, s.RecordHash(), frameHash, frame,
	}
}
