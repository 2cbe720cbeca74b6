package rules

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

// DeviceCounts is how a rule judged one device's signals in a backtest.
type DeviceCounts struct {
	DeviceID                    string
	Pass, Warn, Fail, NotApplic int64
}

// BacktestResult is what a rule said over a stretch of stored history.
type BacktestResult struct {
	Rule, Version string
	Signals       int64          // signals evaluated
	Devices       []DeviceCounts // by device ID
	// Counts are the same verdicts as hourly statistics (what rule_stats
	// would hold), the input of integrity.Scorer.WhatIf.
	Counts map[string]integrity.RuleCounts
}

// backtestBatch is the signals per fetch and guest call of a backtest.
const backtestBatch = 4096

// Backtest evaluates rule over the stored signals whose device time is in
// [from, to), in id order, with the same inputs the runner gives it (the
// same fetch: prev_* by device time, declared attrs, the receive second as
// the host's clock), in one read-only transaction. It writes nothing: no
// findings, statistics or watermarks. A batch the rule cannot evaluate is
// an error.
func Backtest(ctx context.Context, pool *pgxpool.Pool, rule *wasmrule.Rule, from, to time.Time) (BacktestResult, error) {
	m := rule.Meta()
	res := BacktestResult{Rule: m.Name, Version: m.Version, Counts: map[string]integrity.RuleCounts{}}
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return res, fmt.Errorf("backtest: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('max_parallel_workers_per_gather', '0', true)`); err != nil {
		return res, fmt.Errorf("backtest: %w", err)
	}
	var lo, hi *int64
	if err := tx.QueryRow(ctx, `SELECT min(id), max(id) FROM signals WHERE ts >= $1 AND ts < $2`, from, to).Scan(&lo, &hi); err != nil {
		return res, fmt.Errorf("backtest: finding the signals: %w", err)
	}
	if lo == nil {
		return res, nil
	}
	plan := planFetch([]*groupRule{{meta: m}})
	devs := map[string]*DeviceCounts{}
	after := *lo - 1
	for after < *hi {
		b, err := plan.fetch(ctx, tx, after, *hi, backtestBatch)
		if err != nil {
			return res, fmt.Errorf("backtest: %w", err)
		}
		if len(b.ids) == 0 {
			break
		}
		after = b.ids[len(b.ids)-1]
		var sel []int
		var in []wasmrule.Input
		for i := range b.inputs {
			if ts := b.inputs[i].Signal.TS; !ts.Before(from) && ts.Before(to) {
				sel = append(sel, i)
				in = append(in, b.inputs[i])
			}
		}
		if len(in) == 0 {
			continue
		}
		vs, err := rule.Check(ctx, in)
		if err == nil && len(vs) != len(in) {
			err = errors.New("fewer verdicts than signals")
		}
		if err != nil {
			return res, fmt.Errorf("backtest: evaluating %s (signal ids %d–%d): %w", m.Name, b.ids[sel[0]], after, err)
		}
		for k, v := range vs {
			i := sel[k]
			dh := b.groups[b.group[i]]
			d := devs[dh.dev]
			if d == nil {
				d = &DeviceCounts{DeviceID: dh.dev}
				devs[dh.dev] = d
				res.Counts[dh.dev] = integrity.RuleCounts{}
			}
			c := res.Counts[dh.dev][dh.hour]
			c.Check, c.Version, c.Dimension = m.Name, m.Version, m.Dimension
			switch v.Status {
			case wasmrule.StatusPass:
				d.Pass++
				c.Applicable++
				c.Passed++
			case wasmrule.StatusWarn:
				d.Warn++
				c.Applicable++
				c.Warned++
			case wasmrule.StatusFail:
				d.Fail++
				c.Applicable++
				c.Failed++
			default:
				d.NotApplic++
			}
			res.Counts[dh.dev][dh.hour] = c
			res.Signals++
		}
	}
	for _, d := range devs {
		res.Devices = append(res.Devices, *d)
	}
	sort.Slice(res.Devices, func(i, j int) bool { return res.Devices[i].DeviceID < res.Devices[j].DeviceID })
	return res, nil
}
