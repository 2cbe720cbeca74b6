package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetcore/fleetcore/core/signal"
)

// Store is fleetcore's handle on Postgres.
type Store struct {
	pool *pgxpool.Pool
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
		return nil, fmt.Errorf("parsing database url: %w", err)
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
		return nil, fmt.Errorf("opening database pool: %w", err)
	}
	return &Store{pool: pool}, nil
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
	"dtcs", "attrs", "protocol", "path", "record_hash", "frame_hash",
}

// WriteResult counts what one batch write did.
type WriteResult struct {
	Inserted   int // new rows
	Duplicates int // rows already stored (resends, replays)
}

// WriteSignals stores a batch in one transaction: raw frames first (once per
// frame), then the signals with one COPY. A batch that repeats a stored
// record (unique violation) is rolled back to a savepoint and written again
// through a staging table with INSERT … ON CONFLICT DO NOTHING, so the
// result is the same as if every record were written once. Each signal's
// Path must be set. It returns only after COMMIT succeeded; any error means
// the outcome is not known to be durable.
func (s *Store) WriteSignals(ctx context.Context, batch []signal.Signal) (WriteResult, error) {
	var res WriteResult
	if len(batch) == 0 {
		return res, nil
	}
	rows := make([][]any, len(batch))
	frames := map[int64]int{} // frame hash -> index of first signal carrying it
	for i := range batch {
		sig := &batch[i]
		var fh any
		if len(sig.Frame) > 0 {
			h := signal.FrameHash(sig.Frame)
			fh = h
			if _, ok := frames[h]; !ok {
				frames[h] = i
			}
		}
		rows[i] = signalRow(sig, fh)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(frames) > 0 {
			hashes := make([]int64, 0, len(frames))
			protos := make([]string, 0, len(frames))
			raws := make([][]byte, 0, len(frames))
			for h, i := range frames {
				hashes = append(hashes, h)
				protos = append(protos, batch[i].Protocol)
				raws = append(raws, batch[i].Frame)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO raw_frames (hash, protocol, frame)
				SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[]) ON CONFLICT (hash) DO NOTHING`,
				hashes, protos, raws); err != nil {
				return fmt.Errorf("storing raw frames: %w", err)
			}
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("opening savepoint: %w", err)
		}
		n, err := sp.CopyFrom(ctx, pgx.Identifier{"signals"}, SignalColumns, pgx.CopyFromRows(rows))
		if err == nil {
			if err := sp.Commit(ctx); err != nil {
				return fmt.Errorf("releasing savepoint: %w", err)
			}
			res.Inserted = int(n)
			return nil
		}
		if !isUniqueViolation(err) {
			return fmt.Errorf("copying signals: %w", err)
		}
		if err := sp.Rollback(ctx); err != nil {
			return fmt.Errorf("rolling back to savepoint: %w", err)
		}
		ins, err := insertIdempotent(ctx, tx, rows)
		if err != nil {
			return err
		}
		res.Inserted = ins
		return nil
	})
	if err != nil {
		return WriteResult{}, err
	}
	res.Duplicates = len(batch) - res.Inserted
	return res, nil
}

func insertIdempotent(ctx context.Context, tx pgx.Tx, rows [][]any) (int, error) {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS signals_staging (
		device_id text, ts timestamptz, recv timestamptz,
		lat double precision, lon double precision, alt double precision, speed double precision,
		heading double precision, sats double precision, hdop double precision, valid boolean,
		rpm double precision, coolant double precision, fuel double precision, voltage double precision,
		odometer double precision, engine_load double precision, throttle double precision,
		dtcs text[], attrs jsonb, protocol text, path text, record_hash bigint, frame_hash bigint
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
	tag, err := tx.Exec(ctx, `INSERT INTO signals (device_id, ts, recv, lat, lon, alt, speed, heading, sats, hdop, valid,
		rpm, coolant, fuel, voltage, odometer, engine_load, throttle, dtcs, attrs, protocol, path, record_hash, frame_hash)
		SELECT device_id, ts, recv, lat, lon, alt, speed, heading, sats, hdop, valid,
		rpm, coolant, fuel, voltage, odometer, engine_load, throttle, dtcs, attrs, protocol, path, record_hash, frame_hash
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

func signalRow(s *signal.Signal, frameHash any) []any {
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
		attrs = sanitizeAttrs(s.Attrs)
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
		dtcs, attrs, s.Protocol, s.Path, s.RecordHash(), frameHash,
	}
}

// sanitizeAttrs replaces values JSON cannot hold (NaN, ±Inf) with null.
func sanitizeAttrs(m map[string]any) map[string]any {
	for _, v := range m {
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			out := make(map[string]any, len(m))
			for k, v := range m {
				if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
					out[k] = nil
				} else {
					out[k] = v
				}
			}
			return out
		}
	}
	return m
}

// Rejected is one quarantined frame.
type Rejected struct {
	Recv       time.Time
	RemoteAddr string
	Listener   string
	Protocol   string
	DeviceID   string
	Reason     string
	Raw        []byte
}

// Quarantine records a rejected frame.
func (s *Store) Quarantine(ctx context.Context, r Rejected) error {
	var dev any
	if r.DeviceID != "" {
		dev = r.DeviceID
	}
	raw := r.Raw
	if raw == nil {
		raw = []byte{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO rejected_frames (recv, remote_addr, listener, protocol, device_id, reason, raw)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.Recv.UTC(), r.RemoteAddr, r.Listener, r.Protocol, dev, r.Reason, raw)
	if err != nil {
		return fmt.Errorf("storing rejected frame: %w", err)
	}
	return nil
}
