package rules

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

const (
	ensureWatermarksSQL = `INSERT INTO rule_watermarks (rule, rule_version, start_id, last_id)
		SELECT u.rule, u.rule_version, $3, $3 FROM unnest($1::text[], $2::text[]) AS u(rule, rule_version)
		ON CONFLICT (rule, rule_version) DO NOTHING`
	// Per rule transaction: a hung organizer (not a dead one: its
	// connection closes) must not hold the lease forever; and rule commits
	// do not wait for their WAL flush, so they never compete with ingest
	// for fsyncs. A crash can lose the last few rule commits, findings and
	// watermark together (commits stay atomic and ordered), and those
	// batches are evaluated again: still exactly once. No parallel workers:
	// a batch is small, worker startup costs more than it saves, and rules
	// must not take more cores from ingest than their own connection.
	txSettingsSQL = `SELECT set_config('idle_in_transaction_session_timeout', '600000', true),
		set_config('synchronous_commit', 'off', true),
		set_config('max_parallel_workers_per_gather', '0', true)`
	// The lease: while this transaction holds a rule version's row, other
	// organizers skip that rule version.
	leaseSQL = `SELECT rule, rule_version, last_id FROM rule_watermarks
		WHERE (rule, rule_version) IN (SELECT * FROM unnest($1::text[], $2::text[]))
		FOR UPDATE SKIP LOCKED`
	advanceSQL = `UPDATE rule_watermarks w SET last_id = u.last_id, evaluated = w.evaluated + u.e,
		sampled_out = w.sampled_out + u.s, batches = w.batches + 1, updated = now(), updated_by = $6
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS u(rule, rule_version, last_id, e, s)
		WHERE w.rule = u.rule AND w.rule_version = u.rule_version`
	insertFindingsSQL = `INSERT INTO findings (signal_id, device_id, ts, rule, rule_version, dimension,
		severity, status, reason, reason_text, shadow)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
			$7::text[], $8::text[], $9::int[], $10::text[], $11::bool[])
		ON CONFLICT (signal_id, rule, rule_version) DO NOTHING`
	upsertStatsSQL = `INSERT INTO rule_stats (device_id, hour, rule, rule_version, dimension,
		evaluated, passed, warned, failed, not_applicable, shadow)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
			$6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bool[])
		ON CONFLICT (device_id, hour, rule, rule_version) DO UPDATE SET
			shadow = EXCLUDED.shadow,
			evaluated = rule_stats.evaluated + EXCLUDED.evaluated,
			passed = rule_stats.passed + EXCLUDED.passed,
			warned = rule_stats.warned + EXCLUDED.warned,
			failed = rule_stats.failed + EXCLUDED.failed,
			not_applicable = rule_stats.not_applicable + EXCLUDED.not_applicable`
	// The first stored id above a watermark, up to the frontier (an index
	// lookup whatever the table's statistics say).
	// Shadow mode: a rule version whose mode changed gets its stored
	// findings and statistics re-marked, in one transaction with the
	// watermark's mode, so they always follow the mode in the config.
	remarkSQL = `WITH w AS (UPDATE rule_watermarks SET shadow = $3 WHERE rule = $1 AND rule_version = $2
			AND shadow <> $3 RETURNING 1),
		f AS (UPDATE findings SET shadow = $3 WHERE rule = $1 AND rule_version = $2 AND shadow <> $3
			AND EXISTS (SELECT 1 FROM w))
		UPDATE rule_stats SET shadow = $3 WHERE rule = $1 AND rule_version = $2 AND shadow <> $3
			AND EXISTS (SELECT 1 FROM w)`
	firstIDSQL     = `SELECT min(id) FROM signals WHERE id > $1 AND id <= $2`
	insertErrorSQL = `INSERT INTO rule_errors (rule, rule_version, first_id, last_id, signals, kind, message, node)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
)

// numberCols are the numeric signal columns, in the order of numberFields.
var numberCols = []string{"lat", "lon", "alt", "speed", "heading", "sats", "hdop",
	"rpm", "coolant", "fuel", "voltage", "odometer", "engine_load", "throttle"}

func numberFields(s *signal.Signal) []*float64 {
	return []*float64{&s.Lat, &s.Lon, &s.Alt, &s.Speed, &s.Heading, &s.Sats, &s.HDOP,
		&s.RPM, &s.Coolant, &s.Fuel, &s.Voltage, &s.Odometer, &s.EngineLoad, &s.Throttle}
}

// fetchPlan is the batch query of a group of rules: the attrs column only
// when a rule declares attrs, the previous signal by device time only when
// a rule reads prev_* fields, and the sample hash only when a rule samples.
type fetchPlan struct {
	sql    string
	attrs  bool
	prev   bool
	sample bool
	// keys are the attrs the group declares, when few enough to be picked
	// out in the query (then only they are sent and decoded).
	keys []string
}

// maxPickedAttrs bounds the attrs picked out one by one in the fetch
// (jsonb_build_object takes at most 100 arguments); a group declaring more
// reads the whole attrs column.
const maxPickedAttrs = 32

const prevMask = 1<<signal.FieldPrevTS | 1<<signal.FieldPrevLat | 1<<signal.FieldPrevLon | 1<<signal.FieldPrevOdometer

// sampleHash is the deterministic hash of the random-sample mode: a signal
// is in a 1-in-N sample when sampleHash % N = 0.
const sampleHash = "(hashint8(id) & 2147483647)"

func planFetch(rules []*groupRule) fetchPlan {
	var p fetchPlan
	for _, g := range rules {
		p.attrs = p.attrs || len(g.meta.Attrs) > 0
		p.prev = p.prev || g.meta.Mask()&prevMask != 0
		p.sample = p.sample || g.sample > 1
		for _, a := range g.meta.Attrs {
			if !slices.Contains(p.keys, a) {
				p.keys = append(p.keys, a)
			}
		}
	}
	cols := "id, device_id, ts, recv, " + strings.Join(numberCols, ", ")
	switch {
	case !p.attrs:
	case len(p.keys) <= maxPickedAttrs:
		// Only the declared attrs ($4, by position): decoding every
		// signal's whole attrs object was a sixth of the runner's CPU. A
		// missing key comes back as JSON null, which the host reads as
		// absent (NaN) too.
		var b strings.Builder
		b.WriteString("jsonb_build_object(")
		for i := range p.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "($4::text[])[%d], attrs->(($4::text[])[%d])", i+1, i+1)
		}
		b.WriteString(") AS attrs")
		cols += ", " + b.String()
	default:
		p.keys = nil
		cols += ", attrs"
	}
	if p.sample {
		cols += ", " + sampleHash + " AS sample_hash"
	}
	// The id range is bounded on both sides (see groupBatch): with
	// statistics that lag ingest (a young table; autovacuum has not analyzed
	// it yet) the planner takes "id > $1 ORDER BY id LIMIT $3" for a few
	// thousand rows and, for a larger LIMIT, sorts every row above $1.
	inner := "SELECT " + cols + " FROM signals WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"
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
	hashes []int64
	inputs []wasmrule.Input
	// group[i] indexes groups: the (device, hour of device time) of
	// inputs[i], the key of its rule_stats row.
	group  []int32
	groups []devHour
}

type devHour struct {
	dev  string
	hour time.Time
}

func (p *fetchPlan) fetch(ctx context.Context, tx pgx.Tx, after, upTo int64, limit int) (fetched, error) {
	var out fetched
	args := []any{after, upTo, limit}
	if p.keys != nil {
		args = append(args, p.keys)
	}
	rows, err := tx.Query(ctx, p.sql, args...)
	if err != nil {
		return out, fmt.Errorf("querying signals: %w", err)
	}
	defer rows.Close()
	nums := make([]*float64, len(numberCols))
	var prevNums [3]*float64
	groupOf := map[devHour]int32{}
	dest := make([]any, 0, 26)
	for rows.Next() {
		var (
			id, hash  int64
			s         = signal.New("", time.Time{})
			attrs     map[string]any
			prevTS    *time.Time
			recv, ts  time.Time
			prevInput *signal.Signal
		)
		dest = append(dest[:0], &id, &s.DeviceID, &ts, &recv)
		for i := range nums {
			nums[i] = nil
			dest = append(dest, &nums[i])
		}
		if p.attrs {
			dest = append(dest, &attrs)
		}
		if p.sample {
			dest = append(dest, &hash)
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
			prevInput = &ps
		}
		out.ids = append(out.ids, id)
		out.hashes = append(out.hashes, hash)
		dh := devHour{s.DeviceID, s.TS.Truncate(time.Hour)}
		gi, ok := groupOf[dh]
		if !ok {
			gi = int32(len(out.groups))
			groupOf[dh] = gi
			out.groups = append(out.groups, dh)
		}
		out.group = append(out.group, gi)
		// The host's clock for a signal is its receive time (to the
		// second): a backlog evaluated hours later is judged as it would
		// have been live, verdicts replay exactly, and signals received in
		// the same second share one fc_check call.
		out.inputs = append(out.inputs, wasmrule.Input{Signal: s, Prev: prevInput, Now: s.Recv.Truncate(time.Second)})
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

// checker evaluates a batch, one verdict per input; on an error the
// verdicts are those of a prefix (see wasmrule.Rule.Check, the one in
// service; the evaluate tests use their own).
type checker interface {
	Check(ctx context.Context, batch []wasmrule.Input) ([]wasmrule.Verdict, error)
}

// groupRule is one rule of a group run and what the run did for it.
type groupRule struct {
	check  checker // the rule in service
	meta   wasmrule.Meta
	sample int
	shadow bool // shadow mode: findings and statistics stored marked shadow
	res    RunResult
	// stopped: nothing more for this rule in this run (caught up, leased
	// by another organizer, failed, or replaced).
	stopped bool
}

// runGroup evaluates rules together: every batch is fetched once, from the
// lowest watermark among them, and each rule evaluates the signals above
// its own watermark, so a rule that lags (a new version, a backlog) catches
// up with the others and then moves with them. Findings, statistics and
// watermark advances of all rules commit in one transaction per batch.
//
// behind reports that a batch of the run was full: the group had more than
// a batch waiting, so it should run again at once rather than after its
// interval.
func (r *Runner) runGroup(ctx context.Context, rules []*wasmrule.Rule) (res []RunResult, behind bool, err error) {
	g := make([]*groupRule, len(rules))
	names, versions := make([]string, len(rules)), make([]string, len(rules))
	for i, rule := range rules {
		m := rule.Meta()
		g[i] = &groupRule{check: rule, meta: m, sample: r.sampleEvery(m.Name), shadow: r.conf().Shadow[m.Name]}
		names[i], versions[i] = m.Name, m.Version
	}
	results := func() []RunResult {
		out := make([]RunResult, len(g))
		for i, x := range g {
			out[i] = x.res
		}
		return out
	}
	if len(g) == 0 {
		return nil, false, nil
	}
	bound, err := r.fr.Safe(ctx)
	for _, x := range g {
		x.res.Frontier = bound
	}
	if err != nil {
		return results(), false, err
	}
	start := int64(0)
	if !r.conf().Backfill {
		start = bound
	}
	if _, err := r.pool.Exec(ctx, ensureWatermarksSQL, names, versions, start); err != nil {
		return results(), false, fmt.Errorf("creating rule watermarks: %w", err)
	}
	for _, x := range g {
		if _, err := r.pool.Exec(ctx, remarkSQL, x.meta.Name, x.meta.Version, x.shadow); err != nil {
			return results(), false, fmt.Errorf("marking the mode of %s: %w", x.meta.Name, err)
		}
	}
	plan := planFetch(g)
	for b := 0; b < r.conf().MaxBatchesPerRun; b++ {
		more, full, err := r.groupBatch(ctx, g, &plan, bound)
		behind = behind || full
		if err != nil {
			return results(), behind, err
		}
		if !more {
			break
		}
	}
	for _, x := range g {
		x.res.More = !x.res.Leased && !x.stopped && x.res.Watermark < bound
	}
	return results(), behind, nil
}

// batchLimit is the size of the next batch for a group whose lowest
// watermark is minWM: BatchSize when nearly caught up, growing with the
// backlog (in ids, an upper bound on signals) up to MaxBatchSize.
func (r *Runner) batchLimit(minWM, bound int64) int {
	return int(min(max(bound-minWM, int64(r.conf().BatchSize)), int64(r.conf().MaxBatchSize)))
}

// One batch of a group goes through five steps, each its own function:
//
//	lease    take the watermark rows of the group's rules (FOR UPDATE SKIP LOCKED)
//	fetch    read the signals above the lowest watermark, up to the frontier
//	evaluate run each rule over its part of the batch and turn the verdicts
//	         into findings, per-(device, hour) statistics, watermark advances
//	         and rule errors (pure but for the rules themselves: no database)
//	write    store all of that and commit, in the lease's transaction
//	account  add what was committed to each rule's RunResult
//
// groupBatch strings them together in one transaction. It reports whether
// any rule has more to do and whether the batch was full.
func (r *Runner) groupBatch(ctx context.Context, g []*groupRule, plan *fetchPlan, bound int64) (more, full bool, err error) {
	if !slices.ContainsFunc(g, func(x *groupRule) bool { return !x.stopped }) {
		return false, false, nil
	}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return false, false, fmt.Errorf("beginning rule batch: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, txSettingsSQL); err != nil {
		return false, false, fmt.Errorf("configuring rule transaction: %w", err)
	}
	active, minWM, err := lease(ctx, tx, g, bound)
	if err != nil || len(active) == 0 {
		return false, false, err
	}
	batch, end, full, err := r.fetchBatch(ctx, tx, plan, minWM, bound)
	if err != nil {
		return false, false, err
	}
	ev, err := evaluate(ctx, active, &batch, end)
	if err != nil {
		return false, false, err
	}
	if err := r.write(ctx, tx, &ev.w, active[0].meta.Name, end); err != nil {
		return false, false, err
	}
	return r.account(ev.outs, active, bound), full, nil
}

// leasedRule is a rule of a batch whose watermark row the batch's
// transaction holds, with the watermark it read.
type leasedRule struct {
	*groupRule
	wm int64
}

// lease locks the watermark rows of the rules of g that are not stopped
// and returns those with signals to evaluate below bound, by name, and the
// lowest of their watermarks. A rule whose row another organizer holds is
// marked Leased and stopped; a rule at the frontier is stopped.
func lease(ctx context.Context, tx pgx.Tx, g []*groupRule, bound int64) ([]leasedRule, int64, error) {
	var names, versions []string
	byKey := map[[2]string]*groupRule{}
	for _, x := range g {
		if !x.stopped {
			names, versions = append(names, x.meta.Name), append(versions, x.meta.Version)
			byKey[[2]string{x.meta.Name, x.meta.Version}] = x
		}
	}
	rows, err := tx.Query(ctx, leaseSQL, names, versions)
	if err != nil {
		return nil, 0, fmt.Errorf("leasing rule watermarks: %w", err)
	}
	leased := map[*groupRule]int64{}
	for rows.Next() {
		var name, ver string
		var wm int64
		if err := rows.Scan(&name, &ver, &wm); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("leasing rule watermarks: %w", err)
		}
		if x := byKey[[2]string{name, ver}]; x != nil {
			leased[x] = wm
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("leasing rule watermarks: %w", err)
	}
	var active []leasedRule
	minWM := int64(math.MaxInt64)
	for _, x := range byKey {
		wm, ok := leased[x]
		if !ok {
			x.res.Leased, x.stopped = true, true // another organizer is evaluating it
			continue
		}
		x.res.Watermark = wm
		if wm >= bound {
			x.stopped = true
			continue
		}
		active = append(active, leasedRule{x, wm})
		minWM = min(minWM, wm)
	}
	sort.Slice(active, func(i, j int) bool { return active[i].meta.Name < active[j].meta.Name })
	return active, minWM, nil
}

// fetchBatch reads the batch above minWM: ids in (minWM, upTo], from the
// first stored id above the lowest watermark, a range of at most twice the
// batch size (ids burnt by failed writes leave gaps), so the query touches
// few rows whatever plan it gets, and a long gap (retention, a failed bulk
// load) costs one index lookup. end is the last id the batch has seen
// every signal up to: upTo, or the last id of a full batch.
func (r *Runner) fetchBatch(ctx context.Context, tx pgx.Tx, plan *fetchPlan, minWM, bound int64) (batch fetched, end int64, full bool, err error) {
	limit := r.batchLimit(minWM, bound)
	upTo := bound
	var first *int64
	if err := tx.QueryRow(ctx, firstIDSQL, minWM, bound).Scan(&first); err != nil {
		return batch, 0, false, fmt.Errorf("finding the next signal: %w", err)
	}
	if first != nil {
		upTo = min(bound, *first-1+2*int64(limit))
		if batch, err = plan.fetch(ctx, tx, minWM, upTo, limit); err != nil {
			return batch, 0, false, fmt.Errorf("fetching rule batch: %w", err)
		}
	}
	if len(batch.ids) == limit {
		return batch, batch.ids[len(batch.ids)-1], true, nil
	}
	return batch, upTo, false, nil
}

// ruleOutcome is what evaluate decided for one rule of a batch.
type ruleOutcome struct {
	x *groupRule
	// closed: the rule was replaced or removed while running; nothing is
	// written for it and it stops for this run.
	closed     bool
	newWM      int64 // the watermark after the batch
	n          int   // signals evaluated
	findings   int   // warn and fail verdicts
	fails      int   // fail verdicts
	failed     int   // signals not evaluated (from firstFailed on)
	sampledOut int64 // signals in (wm, newWM] the sample left out
	// cerr is why signals were not evaluated (trap, timeout, …).
	cerr        error
	firstFailed int64
}

// batchEval is what evaluate decided for one batch: an outcome per rule
// and the rows that write stores.
type batchEval struct {
	outs []ruleOutcome
	w    batchWrite
}

// evaluate runs each active rule over the signals of b above its own
// watermark (those of its sample, in sample mode) and turns the verdicts
// into findings, statistics per (device, hour of device time), watermark
// advances up to end, and rule errors. It touches no database: given the
// fetched batch and the rules, it is a function of their verdicts.
//
// A rule that could not evaluate part of its signals (trap, timeout,
// memory, a bad verdict: wasmrule.NotEvaluated) keeps the verdicts of the
// prefix it evaluated, advances to the last of them, and records the rest
// as not evaluated (a rule error, retried next run), never as failing. A
// rule closed while running is left for the next run. Any other error (the
// context ended, a broken host) is returned, and nothing of the batch is
// written.
func evaluate(ctx context.Context, active []leasedRule, b *fetched, end int64) (batchEval, error) {
	var ev batchEval
	for _, x := range active {
		wm := x.wm
		if end <= wm {
			continue // ahead of this batch
		}
		i0 := sort.Search(len(b.ids), func(i int) bool { return b.ids[i] > wm })
		var sel []int
		for i := i0; i < len(b.ids); i++ {
			if x.sample <= 1 || b.hashes[i]%int64(x.sample) == 0 {
				sel = append(sel, i)
			}
		}
		var in []wasmrule.Input
		if x.sample <= 1 {
			in = b.inputs[i0:] // every signal from i0 on: sel[k] == i0+k
		} else {
			in = make([]wasmrule.Input, len(sel))
			for k, i := range sel {
				in[k] = b.inputs[i]
			}
		}
		var verdicts []wasmrule.Verdict
		var cerr error
		if len(in) > 0 {
			verdicts, cerr = x.check.Check(ctx, in)
		}
		if cerr != nil {
			kind := wasmrule.KindOf(cerr)
			switch {
			case kind == wasmrule.KindClosed && ctx.Err() == nil:
				// Replaced or removed while running: the next run uses
				// whatever is in service then.
				ev.outs = append(ev.outs, ruleOutcome{x: x.groupRule, closed: true})
				continue
			case ctx.Err() != nil || !wasmrule.NotEvaluated(cerr) || kind == wasmrule.KindCanceled:
				return batchEval{}, fmt.Errorf("evaluating %s: %w", x.meta.Name, cerr)
			}
		}
		o := ruleOutcome{x: x.groupRule, n: len(verdicts), newWM: end, cerr: cerr}
		if cerr != nil && o.n >= len(sel) {
			cerr, o.cerr = nil, nil // every signal has a verdict after all
		}
		if cerr != nil {
			o.newWM = wm
			if o.n > 0 {
				o.newWM = b.ids[sel[o.n-1]]
			}
			o.failed = len(sel) - o.n
			o.firstFailed = b.ids[sel[o.n]]
		}
		// Signals in (wm, newWM] that the sample left out.
		inRange := sort.Search(len(b.ids), func(i int) bool { return b.ids[i] > o.newWM }) - i0
		o.sampledOut = int64(max(inRange-o.n, 0))
		o.findings, o.fails = ev.w.add(&x.meta, x.shadow, b, sel[:o.n], verdicts)
		if o.newWM > wm {
			ev.w.advance(x.meta.Name, x.meta.Version, o.newWM, int64(o.n), o.sampledOut)
		}
		if cerr != nil {
			ev.w.errs = append(ev.w.errs, ruleError{rule: x.meta.Name, version: x.meta.Version,
				first: o.firstFailed, last: b.ids[sel[len(sel)-1]], signals: o.failed,
				kind: wasmrule.KindOf(cerr).String(), message: cerr.Error()})
		}
		ev.outs = append(ev.outs, o)
	}
	return ev, nil
}

// write stores what evaluate decided and commits the batch's transaction
// (findings, statistics, watermark advances and rule errors together).
func (r *Runner) write(ctx context.Context, tx pgx.Tx, w *batchWrite, firstRule string, end int64) error {
	if err := w.flush(ctx, tx, r.conf().NodeID); err != nil {
		return err
	}
	if r.beforeCommit != nil {
		r.beforeCommit(ctx, firstRule, end)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing rule batch: %w", err)
	}
	return nil
}

// account adds the committed outcomes to each rule's RunResult, stops the
// rules that are done for this run (caught up, closed, or with signals not
// evaluated: those are retried next run) and reports whether any active
// rule has more to do.
func (r *Runner) account(outs []ruleOutcome, active []leasedRule, bound int64) (more bool) {
	for _, o := range outs {
		x := o.x
		if o.closed {
			x.stopped = true
			continue
		}
		if o.cerr != nil {
			x.stopped = true
			r.log.Warn("rule batch not evaluated; it is retried on the next run", "rule", x.meta.Name,
				"version", x.meta.Version, "first_id", o.firstFailed, "signals", o.failed, "error", o.cerr)
		}
		if o.newWM > x.res.Watermark || o.n > 0 {
			x.res.Batches++
		}
		x.res.Evaluated += o.n
		x.res.Findings += o.findings
		x.res.Fails += o.fails
		x.res.SampledOut += int(o.sampledOut)
		x.res.Failed += o.failed
		x.res.Watermark = max(x.res.Watermark, o.newWM)
		if x.res.Watermark >= bound {
			x.stopped = true
		}
	}
	for _, x := range active {
		if !x.stopped {
			more = true
		}
	}
	return more
}

type statKey struct {
	rule, version, dev string
	hour               time.Time
}

type statRow struct {
	dim           string
	shadow        bool
	e, p, w, f, n int64
}

// ruleStats are one rule's counts in a batch, indexed like fetched.groups.
type ruleStats struct {
	meta   *wasmrule.Meta
	shadow bool
	rows   []statRow
}

// batchWrite gathers the findings, statistics and watermark advances of
// one batch for all rules, written with one statement each.
type batchWrite struct {
	fIDs                               []int64
	fDevs, fRules, fVers, fDims, fSevs []string
	fStat, fText                       []string
	fTS                                []time.Time
	fReason                            []int32
	fShadow                            []bool
	groups                             []devHour
	stats                              []ruleStats
	wRules, wVers                      []string
	wLast, wEval, wSampled             []int64
	errs                               []ruleError
}

// ruleError is a range of signals one rule did not evaluate, a row of
// rule_errors.
type ruleError struct {
	rule, version string
	first, last   int64
	signals       int
	kind, message string
}

// add records the verdicts of one rule on the signals sel of b (vs[k] is
// the verdict on b.inputs[sel[k]]) and returns how many are findings
// (warn or fail) and how many of them fail.
func (w *batchWrite) add(meta *wasmrule.Meta, shadow bool, b *fetched, sel []int, vs []wasmrule.Verdict) (findings, fails int) {
	w.groups = b.groups
	w.stats = append(w.stats, ruleStats{meta: meta, shadow: shadow, rows: make([]statRow, len(b.groups))})
	rows := w.stats[len(w.stats)-1].rows
	for k, v := range vs {
		i := sel[k]
		row := &rows[b.group[i]]
		row.e++
		switch v.Status {
		case wasmrule.StatusPass:
			row.p++
			continue
		case wasmrule.StatusNotApplicable:
			row.n++
			continue
		case wasmrule.StatusWarn:
			row.w++
		case wasmrule.StatusFail:
			row.f++
			fails++
		}
		findings++
		s := &b.inputs[i].Signal
		w.fIDs = append(w.fIDs, b.ids[i])
		w.fDevs = append(w.fDevs, s.DeviceID)
		w.fTS = append(w.fTS, s.TS)
		w.fRules, w.fVers = append(w.fRules, meta.Name), append(w.fVers, meta.Version)
		w.fDims, w.fSevs = append(w.fDims, meta.Dimension), append(w.fSevs, meta.Severity)
		w.fStat = append(w.fStat, v.Status.String())
		w.fReason = append(w.fReason, int32(v.Reason))
		w.fText = append(w.fText, meta.Reason(v.Reason, &b.inputs[i]))
		w.fShadow = append(w.fShadow, shadow)
	}
	return findings, fails
}

func (w *batchWrite) advance(rule, version string, last, evaluated, sampledOut int64) {
	w.wRules, w.wVers = append(w.wRules, rule), append(w.wVers, version)
	w.wLast, w.wEval, w.wSampled = append(w.wLast, last), append(w.wEval, evaluated), append(w.wSampled, sampledOut)
}

func (w *batchWrite) flush(ctx context.Context, tx pgx.Tx, node string) error {
	if len(w.fIDs) > 0 {
		if _, err := tx.Exec(ctx, insertFindingsSQL, w.fIDs, w.fDevs, w.fTS, w.fRules, w.fVers, w.fDims,
			w.fSevs, w.fStat, w.fReason, w.fText, w.fShadow); err != nil {
			return fmt.Errorf("storing findings: %w", err)
		}
	}
	type keyed struct {
		k   statKey
		row *statRow
	}
	var all []keyed
	for _, rs := range w.stats {
		for g := range rs.rows {
			if row := &rs.rows[g]; row.e > 0 {
				row.dim, row.shadow = rs.meta.Dimension, rs.shadow
				all = append(all, keyed{statKey{rs.meta.Name, rs.meta.Version, w.groups[g].dev, w.groups[g].hour}, row})
			}
		}
	}
	if len(all) > 0 {
		// A fixed order keeps concurrent upserts from deadlocking.
		sort.Slice(all, func(i, j int) bool {
			a, b := all[i].k, all[j].k
			if a.rule != b.rule {
				return a.rule < b.rule
			}
			if a.version != b.version {
				return a.version < b.version
			}
			if a.dev != b.dev {
				return a.dev < b.dev
			}
			return a.hour.Before(b.hour)
		})
		n := len(all)
		devs, rules, vers, dims := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		hours := make([]time.Time, n)
		e, p, wa, f, na := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		sh := make([]bool, n)
		for i, x := range all {
			k, row := x.k, x.row
			devs[i], hours[i], rules[i], vers[i], dims[i], sh[i] = k.dev, k.hour, k.rule, k.version, row.dim, row.shadow
			e[i], p[i], wa[i], f[i], na[i] = row.e, row.p, row.w, row.f, row.n
		}
		if _, err := tx.Exec(ctx, upsertStatsSQL, devs, hours, rules, vers, dims, e, p, wa, f, na, sh); err != nil {
			return fmt.Errorf("adding rule statistics: %w", err)
		}
	}
	if len(w.wRules) > 0 {
		if _, err := tx.Exec(ctx, advanceSQL, w.wRules, w.wVers, w.wLast, w.wEval, w.wSampled, node); err != nil {
			return fmt.Errorf("advancing rule watermarks: %w", err)
		}
	}
	for _, e := range w.errs {
		if _, err := tx.Exec(ctx, insertErrorSQL, e.rule, e.version, e.first, e.last, e.signals, e.kind, e.message, node); err != nil {
			return fmt.Errorf("recording rule error: %w", err)
		}
	}
	return nil
}
