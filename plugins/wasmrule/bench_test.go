package wasmrule

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkCheckWAT measures the host's per-batch and per-signal cost with
// a guest that has no runtime of its own (the WAT example).
func BenchmarkCheckWAT(b *testing.B) {
	h, err := NewHost(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	r, err := h.Compile(context.Background(), speedRange(b))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(context.Background())
	all := make([]float64, 1024)
	for i := range all {
		all[i] = float64(i%400) - 50
	}
	in := speeds(all...)
	for _, n := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := r.Check(context.Background(), in[:n]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "signals/s")
		})
	}
}
