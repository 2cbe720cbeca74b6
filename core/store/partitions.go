package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Partitioner keeps signals partitioned by device time (ts, UTC) into
// ranges of Months months, creates them Ahead periods ahead of now, keeps
// the default partition empty (rows found there are moved into their
// period's partition), and applies retention: whole signals partitions
// whose range ended before now-SignalsMaxAge are dropped; findings and
// cleared alerts older than their bound are deleted in batches of
// BatchRows. One node does the work at a time (a transaction-level
// advisory lock); the others skip the round.
type Partitioner struct {
	Pool *pgxpool.Pool
	Log  hclog.Logger
	// Months is the length of one partition (1, 2, 3, 4, 6 or 12), aligned
	// to January.
	Months int
	// Ahead is how many periods after the current one exist at all times.
	Ahead int
	// SignalsMaxAge, FindingsMaxAge and AlertsMaxAge bound the age of
	// rows (0: keep). Signals by device time (ts), findings by creation,
	// alerts by the time they were cleared (open alerts are kept).
	SignalsMaxAge  time.Duration
	FindingsMaxAge time.Duration
	AlertsMaxAge   time.Duration
	BatchRows      int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// partitionLock is the advisory lock key of the partition job ("fcparts").
const partitionLock = 0x66637061727473

// PeriodStart is the start (UTC) of the months-long period holding t.
func PeriodStart(t time.Time, months int) time.Time {
	t = t.UTC()
	m := (int(t.Month()) - 1) / months * months
	return time.Date(t.Year(), time.Month(m+1), 1, 0, 0, 0, 0, time.UTC)
}

// PartitionName is the name of the signals partition starting at start.
func PartitionName(start time.Time) string {
	return fmt.Sprintf("signals_p%04d%02d", start.Year(), int(start.Month()))
}

type partRange struct {
	name     string
	from, to time.Time
}

// Run does one round: partitions ahead, the default partition emptied,
// retention. It is an organizer job.
func (p *Partitioner) Run(ctx context.Context) error {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	conn, err := p.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("partitions: %w", err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(partitionLock)).Scan(&got); err != nil {
		return fmt.Errorf("partitions: %w", err)
	}
	if !got {
		return nil // another node does this round
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(partitionLock)) //nolint:errcheck
	c := conn.Conn()
	t := now().UTC()
	if err := p.ensureAhead(ctx, c, t); err != nil {
		return err
	}
	if err := p.emptyDefault(ctx, c, t); err != nil {
		return err
	}
	return p.retain(ctx, c, t)
}

// partitions lists signals' range partitions with their bounds.
func partitions(ctx context.Context, c *pgx.Conn) ([]partRange, error) {
	rows, err := c.Query(ctx, `
SELECT ch.relname,
       (regexp_match(pg_get_expr(ch.relpartbound, ch.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
       (regexp_match(pg_get_expr(ch.relpartbound, ch.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
FROM pg_inherits i JOIN pg_class ch ON ch.oid = i.inhrelid
WHERE i.inhparent = 'signals'::regclass AND pg_get_expr(ch.relpartbound, ch.oid) <> 'DEFAULT'
ORDER BY 2`)
	if err != nil {
		return nil, fmt.Errorf("listing signals partitions: %w", err)
	}
	defer rows.Close()
	var out []partRange
	for rows.Next() {
		var r partRange
		if err := rows.Scan(&r.name, &r.from, &r.to); err != nil {
			return nil, fmt.Errorf("listing signals partitions: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing signals partitions: %w", err)
	}
	return out, nil
}

func overlaps(parts []partRange, from, to time.Time) bool {
	for _, r := range parts {
		if r.from.Before(to) && from.Before(r.to) {
			return true
		}
	}
	return false
}

// ensureAhead creates the current period's partition and Ahead more.
func (p *Partitioner) ensureAhead(ctx context.Context, c *pgx.Conn, now time.Time) error {
	parts, err := partitions(ctx, c)
	if err != nil {
		return err
	}
	start := PeriodStart(now, p.Months)
	for i := 0; i <= p.Ahead; i++ {
		from := start.AddDate(0, i*p.Months, 0)
		to := from.AddDate(0, p.Months, 0)
		if overlaps(parts, from, to) {
			continue
		}
		if err := p.create(ctx, c, from, to); err != nil {
			return err
		}
		parts = append(parts, partRange{name: PartitionName(from), from: from, to: to})
	}
	return nil
}

// create makes the partition [from, to), moving the default partition's
// rows of that range into it in the same transaction.
func (p *Partitioner) create(ctx context.Context, c *pgx.Conn, from, to time.Time) error {
	name := PartitionName(from)
	var moved int64
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5s'"); err != nil {
			return err
		}
		// Ingest inserts into signals_default wait for this transaction:
		// normally it holds no row of the range and this is quick.
		if _, err := tx.Exec(ctx, "LOCK TABLE signals_default IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return err
		}
		ident := pgx.Identifier{name}.Sanitize()
		if _, err := tx.Exec(ctx, "CREATE TABLE "+ident+" (LIKE signals INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "WITH m AS (DELETE FROM signals_default WHERE ts >= $1 AND ts < $2 RETURNING *) INSERT INTO "+ident+" SELECT * FROM m", from, to)
		if err != nil {
			return err
		}
		moved = tag.RowsAffected()
		_, err = tx.Exec(ctx, fmt.Sprintf("ALTER TABLE signals ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
			ident, from.Format(time.RFC3339), to.Format(time.RFC3339)))
		return err
	})
	if err != nil {
		return fmt.Errorf("creating partition %s: %w", name, err)
	}
	p.Log.Info("signals partition created", "partition", name, "from", from, "to", to, "rows_moved_from_default", moved)
	return nil
}

// emptyDefault moves the rows of signals_default into partitions of their
// period (created for them; old ones are then dropped by retention).
func (p *Partitioner) emptyDefault(ctx context.Context, c *pgx.Conn, now time.Time) error {
	rows, err := c.Query(ctx, "SELECT DISTINCT date_trunc('month', ts AT TIME ZONE 'UTC') FROM signals_default")
	if err != nil {
		return fmt.Errorf("reading signals_default: %w", err)
	}
	var months []time.Time
	for rows.Next() {
		var m time.Time
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return fmt.Errorf("reading signals_default: %w", err)
		}
		months = append(months, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading signals_default: %w", err)
	}
	if len(months) == 0 {
		return nil
	}
	parts, err := partitions(ctx, c)
	if err != nil {
		return err
	}
	for _, m := range months {
		from := PeriodStart(time.Date(m.Year(), m.Month(), 1, 0, 0, 0, 0, time.UTC), p.Months)
		to := from.AddDate(0, p.Months, 0)
		if overlaps(parts, from, to) {
			// A partition of another length covers part of it; its rows
			// were routed there. Nothing to create.
			continue
		}
		if err := p.create(ctx, c, from, to); err != nil {
			return err
		}
		parts = append(parts, partRange{name: PartitionName(from), from: from, to: to})
	}
	return nil
}

// retain drops expired signals partitions and deletes expired findings
// and alerts in bounded batches.
func (p *Partitioner) retain(ctx context.Context, c *pgx.Conn, now time.Time) error {
	var errs []error
	if p.SignalsMaxAge > 0 {
		cut := now.Add(-p.SignalsMaxAge)
		parts, err := partitions(ctx, c)
		if err != nil {
			return err
		}
		for _, r := range parts {
			if r.to.After(cut) {
				continue
			}
			ident := pgx.Identifier{r.name}.Sanitize()
			if _, err := c.Exec(ctx, "ALTER TABLE signals DETACH PARTITION "+ident); err != nil {
				errs = append(errs, fmt.Errorf("detaching %s: %w", r.name, err))
				continue
			}
			if _, err := c.Exec(ctx, "DROP TABLE "+ident); err != nil {
				errs = append(errs, fmt.Errorf("dropping %s: %w", r.name, err))
				continue
			}
			p.Log.Info("signals partition dropped (retention)", "partition", r.name, "to", r.to, "cutoff", cut)
		}
	}
	if p.FindingsMaxAge > 0 {
		if err := p.deleteBatches(ctx, c, "findings",
			"DELETE FROM findings WHERE id IN (SELECT id FROM findings WHERE created < $1 LIMIT $2)", now.Add(-p.FindingsMaxAge)); err != nil {
			errs = append(errs, err)
		}
	}
	if p.AlertsMaxAge > 0 {
		if err := p.deleteBatches(ctx, c, "alerts", `
WITH old AS (SELECT id FROM alerts WHERE state = 'cleared' AND cleared < $1 LIMIT $2),
ev AS (DELETE FROM alert_events WHERE alert_id IN (SELECT id FROM old))
DELETE FROM alerts WHERE id IN (SELECT id FROM old)`, now.Add(-p.AlertsMaxAge)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteBatches runs q (cutoff $1, batch size $2) until a batch deletes
// fewer rows than the batch size; each batch is its own statement, so no
// long lock is held.
func (p *Partitioner) deleteBatches(ctx context.Context, c *pgx.Conn, table, q string, cut time.Time) error {
	var total int64
	for {
		tag, err := c.Exec(ctx, q, cut, p.BatchRows)
		if err != nil {
			return fmt.Errorf("retention of %s: %w", table, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(p.BatchRows) {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("retention of %s: %w", table, ctx.Err())
		}
	}
	if total > 0 {
		p.Log.Info("rows deleted (retention)", "table", table, "rows", total, "cutoff", cut)
	}
	return nil
}
