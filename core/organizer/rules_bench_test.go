package organizer_test

import (
	"context"
	"testing"

	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

// BenchmarkIntegrationRuleRunner measures signals/s through the whole rule
// path (frontier, lease, fetch with the previous signal by device time,
// WASM evaluation, findings, rule_stats, watermark) for a rule without and
// with prev_* fields, at the default batch size, on one connection.
func BenchmarkIntegrationRuleRunner(b *testing.B) {
	ctx := context.Background()
	url, st := database(b)
	const n = 20000
	sigs, _ := failing(n, 0)
	for i := 0; i < n; i += 2000 {
		write(b, st, sigs[i:i+2000]...)
	}
	h := newHost(b, wasmrule.Config{PoolSize: 1})
	for _, name := range []string{"gps.range", "gps.teleport"} {
		b.Run(name, func(b *testing.B) {
			rule := compileRule(b, h, ruleWasm(b, name, ""))
			pool := rulesPool(b, url, 2)
			r := organizer.NewRuleRunner(pool, staticRules{rule}, organizer.RuleConfig{Backfill: true, MaxBatchesPerRun: 1 << 20}, nil)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for _, q := range []string{"DELETE FROM rule_watermarks", "DELETE FROM findings", "DELETE FROM rule_stats"} {
					if _, err := pool.Exec(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				res, err := r.RunRule(ctx, rule)
				if err != nil || res.Evaluated != n {
					b.Fatalf("%+v, %v", res, err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "signals/s")
		})
	}
}
