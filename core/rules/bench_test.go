package rules_test

import (
	"context"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/core/rules"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

// BenchmarkIntegrationRuleRunner measures signals/s through the whole rule
// path (frontier, lease, fetch with the previous signal by device time,
// WASM evaluation, findings, rule_stats, watermark) for a rule without and
// with prev_* fields and for a group of rules sharing each fetch, at the
// default batch size, on one connection.
func BenchmarkIntegrationRuleRunner(b *testing.B) {
	ctx := context.Background()
	url, st := database(b)
	const n = 20000
	sigs, _ := failing(n, 0)
	for i := 0; i < n; i += 2000 {
		write(b, st, sigs[i:i+2000]...)
	}
	h := newHost(b, wasmrule.Config{PoolSize: 1})
	for _, names := range [][]string{{"gps.range"}, {"gps.teleport"}, {"gps.range", "gps.teleport", "odometer.backwards"}} {
		b.Run(strings.Join(names, "+"), func(b *testing.B) {
			var rs []*wasmrule.Rule
			for _, name := range names {
				rs = append(rs, compileRule(b, h, ruleWasm(b, name, "")))
			}
			pool := rulesPool(b, url, 2)
			r := rules.New(pool, staticRules(rs), rules.Config{Backfill: true, MaxBatchesPerRun: 1 << 20}, nil)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for _, q := range []string{"DELETE FROM rule_watermarks", "DELETE FROM findings", "DELETE FROM rule_stats"} {
					if _, err := pool.Exec(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				res, err := r.RunRules(ctx, rs)
				if err != nil {
					b.Fatal(err)
				}
				for _, x := range res {
					if x.Evaluated != n {
						b.Fatalf("%+v", res)
					}
				}
			}
			// Signals per second through every rule of the group.
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "signals/s")
			b.ReportMetric(float64(n*b.N*len(rs))/b.Elapsed().Seconds(), "evaluations/s")
		})
	}
}
