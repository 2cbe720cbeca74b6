package store

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetcore/fleetcore/core/config"
	"github.com/fleetcore/fleetcore/signal"
)

// Store is fleetcore's handle on Postgres.
type Store struct {
	pool   *pgxpool.Pool
	recent *recentKeys
	log    hclog.Logger
	// refusals counts records Postgres refused, by whether they had been
	// acked (came through a failover tier); refusalLog rate-limits the
	// WARN line about them.
	refusedAcked, refusedUnacked atomic.Uint64
	refusalLog                   rateLog
}

// Options tunes Open.
type Options struct {
	MaxConns       int32
	ConnectTimeout time.Duration
	// Log receives the rate-limited warnings about refused records (nil:
	// discarded).
	Log hclog.Logger
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
	log := o.Log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	st := &Store{recent: newRecentKeys(), log: log}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		id, err := serverIdentity(ctx, c)
		if err != nil {
			return err
		}
		if st.recent.onServer(id) {
			st.log.Warn("connected to another Postgres server than before (failover or restart): forgetting the recently stored keys, so resends are checked by this server",
				"server", id)
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening database pool: %w", config.RedactError(err, dbURL))
	}
	st.pool = pool
	return st, nil
}

// serverIdentity names the server process a connection reached: its
// address and port as the server sees them and its postmaster's start
// time. A promoted standby, another host of a multi-host URL, or the same
// server restarted (possibly from a backup) each differ; all need no
// privileges.
func serverIdentity(ctx context.Context, c *pgx.Conn) (string, error) {
	var id string
	err := c.QueryRow(ctx, `SELECT coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port(), 0)::text
		|| ' started ' || to_char(pg_postmaster_start_time() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("identifying the database server: %w", err)
	}
	return id, nil
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
	"dtcs", "attrs", "protocol", "path", "record_hash", "frame_hash", "frame", "decoder_version",
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
	var decoderVersion any
	if s.DecoderVersion != "" {
		decoderVersion = s.DecoderVersion
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
		dtcs, attrs, s.Protocol, s.Path, s.RecordHash(), frameHash, frame, decoderVersion,
	}
}
