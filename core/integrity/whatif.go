package integrity

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// RuleCounts are one rule's counts for one device, by hour of device time
// (the rule_stats rows of a shadow rule, or what a backtest evaluated).
type RuleCounts map[time.Time]CheckCounts

// Impact is how a rule would move a device's score: the score as stored
// now (without the rule) and as it would be with the rule counting.
type Impact struct {
	DeviceID    string `json:"device_id"`
	BeforeCenti int64  `json:"score_before_centi"`
	AfterCenti  int64  `json:"score_after_centi"`
	DeltaCenti  int64  `json:"delta_centi"` // after − before; negative: the rule costs points
	Applicable  int64  `json:"applicable"`  // signals the rule judged in the scored windows
	Warned      int64  `json:"warned"`
	Failed      int64  `json:"failed"`
}

// WhatIf scores each device of counts twice over its stored windows: as
// the scorer does (shadow rules left out) and with rule counting as
// counts says, in place of any stored statistics of a rule of that name.
// It reads the stored windows and writes nothing. Devices come back
// sorted by the size of the change, largest first, then by ID.
func (s *Scorer) WhatIf(ctx context.Context, rule string, counts map[string]RuleCounts) ([]Impact, error) {
	devs := make([]string, 0, len(counts))
	for d := range counts {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	out := make([]Impact, 0, len(devs))
	for _, dev := range devs {
		ws, err := s.loadWindows(ctx, dev)
		if err != nil {
			return nil, fmt.Errorf("what-if score of %s: %w", dev, err)
		}
		if len(ws) == 0 {
			continue // not scored yet: no windows to compare
		}
		before := Compute(s.Params(), dev, ws)
		imp := Impact{DeviceID: dev, BeforeCenti: before.ScoreCenti}
		with := make([]Window, len(ws))
		for i, w := range ws {
			rs := make([]CheckCounts, 0, len(w.Rules)+1)
			for _, c := range w.Rules {
				if c.Check != rule {
					rs = append(rs, c)
				}
			}
			if c, ok := counts[dev][w.Stats.Hour]; ok {
				c.Check = rule
				rs = append(rs, c)
				imp.Applicable += c.Applicable
				imp.Warned += c.Warned
				imp.Failed += c.Failed
			}
			with[i] = Window{Stats: w.Stats, Rules: rs}
		}
		imp.AfterCenti = Compute(s.Params(), dev, with).ScoreCenti
		imp.DeltaCenti = imp.AfterCenti - imp.BeforeCenti
		out = append(out, imp)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := abs64(out[i].DeltaCenti), abs64(out[j].DeltaCenti)
		if a != b {
			return a > b
		}
		return out[i].DeviceID < out[j].DeviceID
	})
	return out, nil
}

// ShadowImpact is what the shadow rule would change: its stored shadow
// statistics (rule_stats rows marked shadow) counted in every device's
// score, against the score without them.
func (s *Scorer) ShadowImpact(ctx context.Context, rule string) ([]Impact, error) {
	rows, err := s.pool.Query(ctx, `SELECT device_id, hour, max(rule_version), min(dimension),
		sum(evaluated - not_applicable)::bigint, sum(passed)::bigint, sum(warned)::bigint, sum(failed)::bigint
		FROM rule_stats WHERE rule = $1 AND shadow GROUP BY 1, 2`, rule)
	if err != nil {
		return nil, fmt.Errorf("reading shadow statistics of %s: %w", rule, err)
	}
	defer rows.Close()
	counts := map[string]RuleCounts{}
	for rows.Next() {
		var dev string
		var h time.Time
		var c CheckCounts
		if err := rows.Scan(&dev, &h, &c.Version, &c.Dimension, &c.Applicable, &c.Passed, &c.Warned, &c.Failed); err != nil {
			return nil, fmt.Errorf("reading shadow statistics of %s: %w", rule, err)
		}
		if counts[dev] == nil {
			counts[dev] = RuleCounts{}
		}
		counts[dev][h.UTC()] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading shadow statistics of %s: %w", rule, err)
	}
	rows.Close()
	return s.WhatIf(ctx, rule, counts)
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
