package checklang_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

// equivalent is a declarative check and the same rule written by hand with
// the SDKs: Go (built for wasip1) and AssemblyScript (checks-wasm/sdk-as,
// built with asc), both by wasmfixture.
type equivalent struct {
	check string // testdata check file
	goPkg string // Go SDK rule, relative to the module root
	asSrc string // AssemblyScript SDK rule, relative to the module root; "" = none
}

var equivalents = []equivalent{
	{check: "testdata/speed.limit.check.hcl", goPkg: "plugins/checklang/testdata/go/speed_limit",
		asSrc: "plugins/checklang/testdata/as/speed_limit.ts"},
	{check: "testdata/equiv.motion.check.hcl", goPkg: "plugins/checklang/testdata/go/motion",
		asSrc: "plugins/checklang/testdata/as/motion.ts"},
}

// TestEquivalentVerdicts is the property test of the definition of done: on
// random batches (absent fields, NaN, ±Inf, ±0, exact thresholds, missing
// previous fixes and attrs) the compiled check, the hand-written Go and
// AssemblyScript rules (through the same host) and the language's
// reference interpreter give the same verdict for every signal.
func TestEquivalentVerdicts(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	for _, eq := range equivalents {
		t.Run(eq.check, func(t *testing.T) {
			c, m := compileFile(t, eq.check)
			impls := map[string]*wasmrule.Rule{
				"check": load(t, h, m.Wasm),
				"go":    load(t, h, wasmfixture.Go(t, eq.goPkg, nil)),
			}
			if eq.asSrc != "" {
				impls["assemblyscript"] = load(t, h, wasmfixture.AS(t, eq.asSrc))
			}
			rng := rand.New(rand.NewPCG(21, 1))
			counts := map[wasmrule.Status]int{}
			for batch := range 20 {
				in := randBatch(rng, 1+rng.IntN(700))
				got := map[string][]wasmrule.Verdict{}
				for name, r := range impls {
					v, err := r.Check(ctx, in)
					if err != nil {
						t.Fatalf("batch %d: %s: %v", batch, name, err)
					}
					got[name] = v
				}
				for i := range in {
					fields, attrs := fieldsOf(in[i])
					st, reason := c.Eval(fields, attrs, float64(in[i].Now.UnixMilli()))
					want := wasmrule.Verdict{Status: wasmrule.Status(st), Reason: reason}
					counts[want.Status]++
					for name, v := range got {
						if v[i] != want {
							t.Fatalf("batch %d signal %d: %s says %v, the interpreter %v\nfields %v attrs %v",
								batch, i, name, v[i], want, fields, attrs)
						}
					}
				}
			}
			t.Logf("verdicts: %v", counts)
			// The random batches must reach every verdict the check can give.
			for _, st := range []wasmrule.Status{0, 1, 2} {
				if counts[st] == 0 {
					t.Errorf("no signal got status %d: the generator misses a branch", st)
				}
			}
			if c.When != "" && counts[3] == 0 {
				t.Error("no signal was not applicable")
			}
		})
	}
}

// BenchmarkCheckVsGo measures each compiled check against its hand-written
// Go SDK and AssemblyScript SDK equivalents through the same host, batches
// of 1024, interleaved in one run, and reports the throughputs and the
// ratios:
//
//	go test -run '^$' -bench CheckVsGo -benchtime 2000x ./plugins/checklang
func BenchmarkCheckVsGo(b *testing.B) {
	ctx := context.Background()
	h := newHost(b)
	for _, eq := range equivalents {
		_, m := compileFile(b, eq.check)
		impls := []struct {
			name string
			r    *wasmrule.Rule
		}{
			{"check", load(b, h, m.Wasm)},
			{"go", load(b, h, wasmfixture.Go(b, eq.goPkg, nil))},
		}
		if eq.asSrc != "" {
			impls = append(impls, struct {
				name string
				r    *wasmrule.Rule
			}{"as", load(b, h, wasmfixture.AS(b, eq.asSrc))})
		}
		in := randBatch(rand.New(rand.NewPCG(1, 2)), 1024)
		b.Run(eq.check, func(b *testing.B) {
			elapsed := make([]float64, len(impls))
			for b.Loop() {
				for k, im := range impls {
					start := nowNanos()
					if _, err := im.r.Check(ctx, in); err != nil {
						b.Fatal(err)
					}
					elapsed[k] += float64(nowNanos() - start)
				}
			}
			for k, im := range impls {
				b.ReportMetric(float64(b.N*len(in))/(elapsed[k]/1e9), im.name+"_signals/s")
			}
			b.ReportMetric(elapsed[1]/elapsed[0], "check_speedup_vs_go")
			if len(impls) > 2 {
				b.ReportMetric(elapsed[2]/elapsed[0], "check_speedup_vs_as")
			}
		})
	}
}
