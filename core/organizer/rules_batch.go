package organizer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/core/signal"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

const (
	ensureWatermarkSQL = `INSERT INTO rule_watermarks (rule, rule_version, start_id, last_id)
		VALUES ($1, $2, $3, $3) ON CONFLICT (rule, rule_version) DO NOTHING`
	// Per rule transaction: a hung organizer (not a dead one: its
	// connection closes) must not hold the lease forever; and rule commits
	// do not wait for their WAL flush, so they never compete with ingest
	// for fsyncs. A crash can lose the last few rule commits, findings and
	// watermark together (commits stay atomic and ordered), and those
	// batches are evaluated again: still exactly once.
	txSettingsSQL = `SELECT set_config('idle_in_transaction_session_timeout', '600000', true),
		set_config('synchronous_commit', 'off', true)`
	// The lease: while this transaction holds the row, other organizers
	// skip the rule version.
	leaseSQL = `SELECT last_id FROM rule_watermarks WHERE rule = $1 AND rule_version = $2
		FOR UPDATE SKIP LOCKED`
	advanceSQL = `UPDATE rule_watermarks SET last_id = $3, evaluated = evaluated + $4,
		sampled_out = sampled_out + $5, batches = batches + 1, updated = now(), updated_by = $6
		WHERE rule = $1 AND rule_version = $2`
	insertFindingsSQL = `INSERT INTO findings (signal_id, device_id, ts, rule, rule_version, dimension,
		severity, status, reason, reason_text)
		SELECT u.signal_id, u.device_id, u.ts, $4, $5, $6, $7, u.status, u.reason, u.reason_text
		FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $8::text[], $9::int[], $10::text[])
			AS u(signal_id, device_id, ts, status, reason, reason_text)
		ON CONFLICT (signal_id, rule, rule_version) DO NOTHING`
	upsertStatsSQL = `INSERT INTO rule_stats (device_id, hour, rule, rule_version, dimension,
		evaluated, passed, warned, failed, not_applicable)
		SELECT u.device_id, u.hour, $3, $4, $5, u.e, u.p, u.w, u.f, u.n
		FROM unnest($1::text[], $2::timestamptz[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
			AS u(device_id, hour, e, p, w, f, n)
		ON CONFLICT (device_id, hour, rule, rule_version) DO UPDATE SET
			evaluated = rule_stats.evaluated + EXCLUDED.evaluated,
			passed = rule_stats.passed + EXCLUDED.passed,
			warned = rule_stats.warned + EXCLUDED.warned,
			failed = rule_stats.failed + EXCLUDED.failed,
			not_applicable = rule_stats.not_applicable + EXCLUDED.not_applicable`
	insertErrorSQL = `INSERT INTO rule_errors (rule, rule_version, first_id, last_id, signals, kind, message, node)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	countRangeSQL = `SELECT count(*) FROM signals WHERE id > $1 AND id <= $2`
)

// sampleCond selects the deterministic sample of ids for 1-in-N mode.
const sampleCond = ` AND (hashint8(id) & 2147483647) % $4 = 0`

// numberCols are the numeric signal columns, in the order of numberFields.
var numberCols = []string{"lat", "lon", "alt", "speed", "heading", "sats", "hdop",
	"rpm", "coolant", "fuel", "voltage", "odometer", "engine_load", "throttle"}

func numberFields(s *signal.Signal) []*float64 {
	return []*float64{&s.Lat, &s.Lon, &s.Alt, &s.Speed, &s.Heading, &s.Sats, &s.HDOP,
		&s.RPM, &s.Coolant, &s.Fuel, &s.Voltage, &s.Odometer, &s.EngineLoad, &s.Throttle}
}

// fetchPlan is the batch query of one rule: only the attrs column when the
// rule declares attrs, and the previous signal by device time only when it
// reads prev_* fields.
type fetchPlan struct {
	sql    string
	attrs  bool
	prev   bool
	sample int
}

const prevMask = 1<<signal.FieldPrevTS | 1<<signal.FieldPrevLat | 1<<signal.FieldPrevLon | 1<<signal.FieldPrevOdometer

func planFetch(m *wasmrule.Meta, sample int) fetchPlan {
	p := fetchPlan{attrs: len(m.Attrs) > 0, prev: m.Mask()&prevMask != 0, sample: sample}
	cols := "id, device_id, ts, recv, " + strings.Join(numberCols, ", ")
	if p.attrs {
		cols += ", attrs"
	}
	inner := "SELECT " + cols + " FROM signals WHERE id > $1 AND id <= $2"
	if sample > 1 {
		inner += sampleCond
	}
	inner += " ORDER BY id LIMIT $3"
	if !p.prev {
		p.sql = inner
		return p
	}
	// The previous signal of the same device by device time; records with
	// the same device time are ordered by id, so a duplicate sees its twin.
	p.sql = `SELECT s.*, p.ts, p.lat, p.lon, p.odometer FROM (` + inner + `) s
		LEFT JOIN LATERAL (
			SELECT q.ts, q.lat, q.lon, q.odometer FROM signals q
			WHERE q.device_id = s.device_id AND q.ts <= s.ts AND (q.ts < s.ts OR q.id < s.id)
			ORDER BY q.ts DESC, q.id DESC LIMIT 1) p ON true
		ORDER BY s.id`
	return p
}

type fetched struct {
	ids    []int64
	inputs []wasmrule.Input
}

func (p *fetchPlan) fetch(ctx context.Context, tx pgx.Tx, after, upTo int64, limit int) (fetched, error) {
	var out fetched
	args := []any{after, upTo, limit}
	if p.sample > 1 {
		args = append(args, p.sample)
	}
	rows, err := tx.Query(ctx, p.sql, args...)
	if err != nil {
		return out, fmt.Errorf("querying signals: %w", err)
	}
	defer rows.Close()
	nums := make([]*float64, len(numberCols))
	var prevNums [3]*float64
	for rows.Next() {
		var (
			id      int64
			s       = signal.New("", time.Time{})
			attrs   map[string]any
			prevTS  *time.Time
			recv    time.Time
			ts      time.Time
			dest    = make([]any, 0, 24)
			prevSig *signal.Signal
		)
		dest = append(dest, &id, &s.DeviceID, &ts, &recv)
		for i := range nums {
			nums[i] = nil
			dest = append(dest, &nums[i])
		}
		if p.attrs {
			dest = append(dest, &attrs)
		}
		if p.prev {
			prevNums = [3]*float64{}
			dest = append(dest, &prevTS, &prevNums[0], &prevNums[1], &prevNums[2])
		}
		if err := rows.Scan(dest...); err != nil {
			return out, fmt.Errorf("reading signal: %w", err)
		}
		s.TS, s.Recv = ts.UTC(), recv.UTC()
		for i, f := range numberFields(&s) {
			if nums[i] != nil {
				*f = *nums[i]
			}
		}
		s.Attrs = attrs
		if prevTS != nil {
			ps := signal.New(s.DeviceID, *prevTS)
			ps.Lat, ps.Lon, ps.Odometer = orNaN(prevNums[0]), orNaN(prevNums[1]), orNaN(prevNums[2])
			prevSig = &ps
		}
		out.ids = append(out.ids, id)
		// The host's clock for a signal is its receive time (to the
		// second): a backlog evaluated hours later is judged as it would
		// have been live, verdicts replay exactly, and signals received in
		// the same second share one fc_check call.
		out.inputs = append(out.inputs, wasmrule.Input{Signal: s, Prev: prevSig, Now: s.Recv.Truncate(time.Second)})
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("reading signals: %w", err)
	}
	return out, nil
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func (r *RuleRunner) runRule(ctx context.Context, rule *wasmrule.Rule) (RunResult, error) {
	meta := rule.Meta()
	var res RunResult
	bound, err := r.fr.Safe(ctx)
	res.Frontier = bound
	if err != nil {
		return res, err
	}
	start := int64(0)
	if !r.cfg.Backfill {
		start = bound
	}
	if _, err := r.pool.Exec(ctx, ensureWatermarkSQL, meta.Name, meta.Version, start); err != nil {
		return res, fmt.Errorf("creating watermark of %s %s: %w", meta.Name, meta.Version, err)
	}
	plan := planFetch(&meta, r.sampleEvery(meta.Name))
	for b := 0; b < r.cfg.MaxBatchesPerRun; b++ {
		done, err := r.batch(ctx, rule, &meta, &plan, bound, &res)
		if err != nil || done {
			return res, err
		}
	}
	res.More = res.Watermark < bound
	return res, nil
}

// batch evaluates one batch in one transaction. done reports that the run
// should stop (caught up, leased elsewhere, or the rule failed).
func (r *RuleRunner) batch(ctx context.Context, rule *wasmrule.Rule, meta *wasmrule.Meta, plan *fetchPlan, bound int64, res *RunResult) (done bool, err error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return true, fmt.Errorf("beginning rule batch: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, txSettingsSQL); err != nil {
		return true, fmt.Errorf("configuring rule transaction: %w", err)
	}
	var wm int64
	if err := tx.QueryRow(ctx, leaseSQL, meta.Name, meta.Version).Scan(&wm); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			res.Leased = true // another organizer is evaluating this rule version
			return true, nil
		}
		return true, fmt.Errorf("leasing watermark of %s %s: %w", meta.Name, meta.Version, err)
	}
	res.Watermark = wm
	if wm >= bound {
		return true, nil
	}
	batch, err := plan.fetch(ctx, tx, wm, bound, r.cfg.BatchSize)
	if err != nil {
		return true, fmt.Errorf("fetching batch for %s: %w", meta.Name, err)
	}
	var verdicts []wasmrule.Verdict
	var cerr error
	if len(batch.inputs) > 0 {
		verdicts, cerr = rule.Check(ctx, batch.inputs)
		if cerr != nil && (ctx.Err() != nil || !wasmrule.NotEvaluated(cerr) ||
			wasmrule.KindOf(cerr) == wasmrule.KindCanceled || wasmrule.KindOf(cerr) == wasmrule.KindClosed) {
			if wasmrule.KindOf(cerr) == wasmrule.KindClosed && ctx.Err() == nil {
				// Replaced or removed while running: the next run uses
				// whatever is in service then.
				return true, nil
			}
			return true, fmt.Errorf("evaluating %s: %w", meta.Name, cerr)
		}
	}
	n := len(verdicts)
	newWM := wm
	switch {
	case cerr != nil:
		if n > 0 {
			newWM = batch.ids[n-1]
		}
	case len(batch.ids) < r.cfg.BatchSize:
		newWM = bound // every id up to the frontier has been seen
	default:
		newWM = batch.ids[len(batch.ids)-1]
	}
	nFindings, err := writeVerdicts(ctx, tx, meta, batch.ids[:n], batch.inputs[:n], verdicts)
	if err != nil {
		return true, err
	}
	sampledOut := int64(0)
	if plan.sample > 1 && newWM > wm {
		var inRange int64
		if err := tx.QueryRow(ctx, countRangeSQL, wm, newWM).Scan(&inRange); err != nil {
			return true, fmt.Errorf("counting sampled range: %w", err)
		}
		sampledOut = max(inRange-int64(n), 0)
	}
	if newWM > wm {
		if _, err := tx.Exec(ctx, advanceSQL, meta.Name, meta.Version, newWM, n, sampledOut, r.cfg.NodeID); err != nil {
			return true, fmt.Errorf("advancing watermark of %s: %w", meta.Name, err)
		}
	}
	failed := 0
	if cerr != nil {
		failed = len(batch.ids) - n
		kind := wasmrule.KindOf(cerr).String()
		if _, err := tx.Exec(ctx, insertErrorSQL, meta.Name, meta.Version, batch.ids[n], batch.ids[len(batch.ids)-1],
			failed, kind, cerr.Error(), r.cfg.NodeID); err != nil {
			return true, fmt.Errorf("recording rule error: %w", err)
		}
	}
	if r.beforeCommit != nil {
		r.beforeCommit(ctx, meta.Name, newWM)
	}
	if err := tx.Commit(ctx); err != nil {
		return true, fmt.Errorf("committing rule batch of %s: %w", meta.Name, err)
	}
	if cerr != nil {
		r.log.Warn("rule batch not evaluated; it is retried on the next run", "rule", meta.Name,
			"version", meta.Version, "first_id", batch.ids[n], "signals", failed, "error", cerr)
	}
	if newWM > wm || n > 0 {
		res.Batches++
	}
	res.Evaluated += n
	res.Findings += nFindings
	res.SampledOut += int(sampledOut)
	res.Failed += failed
	res.Watermark = newWM
	return cerr != nil || newWM >= bound, nil
}

type statKey struct {
	dev  string
	hour time.Time
}

type statRow struct{ e, p, w, f, n int64 }

// writeVerdicts stores the findings (warn and fail) and adds the counts to
// rule_stats.
func writeVerdicts(ctx context.Context, tx pgx.Tx, meta *wasmrule.Meta, ids []int64, in []wasmrule.Input, vs []wasmrule.Verdict) (int, error) {
	if len(vs) == 0 {
		return 0, nil
	}
	var (
		fIDs                []int64
		fDevs, fStat, fText []string
		fTS                 []time.Time
		fReason             []int32
	)
	stats := map[statKey]*statRow{}
	for i, v := range vs {
		s := &in[i].Signal
		k := statKey{s.DeviceID, s.TS.UTC().Truncate(time.Hour)}
		row := stats[k]
		if row == nil {
			row = &statRow{}
			stats[k] = row
		}
		row.e++
		switch v.Status {
		case wasmrule.StatusPass:
			row.p++
		case wasmrule.StatusNotApplicable:
			row.n++
		case wasmrule.StatusWarn, wasmrule.StatusFail:
			if v.Status == wasmrule.StatusWarn {
				row.w++
			} else {
				row.f++
			}
			fIDs = append(fIDs, ids[i])
			fDevs = append(fDevs, s.DeviceID)
			fTS = append(fTS, s.TS)
			fStat = append(fStat, v.Status.String())
			fReason = append(fReason, int32(v.Reason))
			fText = append(fText, meta.ReasonText(v.Reason))
		}
	}
	nFindings := 0
	if len(fIDs) > 0 {
		tag, err := tx.Exec(ctx, insertFindingsSQL, fIDs, fDevs, fTS, meta.Name, meta.Version, meta.Dimension,
			meta.Severity, fStat, fReason, fText)
		if err != nil {
			return 0, fmt.Errorf("storing findings of %s: %w", meta.Name, err)
		}
		nFindings = int(tag.RowsAffected())
	}
	keys := make([]statKey, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	// A fixed order keeps concurrent upserts from deadlocking.
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].dev != keys[j].dev {
			return keys[i].dev < keys[j].dev
		}
		return keys[i].hour.Before(keys[j].hour)
	})
	devs := make([]string, len(keys))
	hours := make([]time.Time, len(keys))
	var e, p, w, f, n []int64
	for i, k := range keys {
		row := stats[k]
		devs[i], hours[i] = k.dev, k.hour
		e, p, w, f, n = append(e, row.e), append(p, row.p), append(w, row.w), append(f, row.f), append(n, row.n)
	}
	if _, err := tx.Exec(ctx, upsertStatsSQL, devs, hours, meta.Name, meta.Version, meta.Dimension, e, p, w, f, n); err != nil {
		return 0, fmt.Errorf("adding rule statistics of %s: %w", meta.Name, err)
	}
	return nFindings, nil
}
