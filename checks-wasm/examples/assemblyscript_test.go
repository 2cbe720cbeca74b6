package examples_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

// randomEngine is a value of an engine column: absent, NaN, a bound or
// just past one, zero, or anything in a wide range.
func randomEngine(r *rand.Rand, bounds ...float64) float64 {
	switch k := r.IntN(10); {
	case k == 0:
		return math.NaN()
	case k <= 3:
		b := bounds[r.IntN(len(bounds))]
		return b + []float64{0, 1e-9, -1e-9, 0.5, -0.5}[r.IntN(5)]
	case k == 4:
		return 0
	case k == 5:
		return math.Inf(1 - 2*r.IntN(2))
	default:
		return (r.Float64()*2 - 0.5) * bounds[len(bounds)-1] * 1.5
	}
}

// The AssemblyScript example (built on checks-wasm/sdk-as) and the
// built-in Go rule obd.plausibility it ports give the same verdict on
// every signal of random batches, both through the real host: absent and
// NaN values, infinities, values at and around every bound, and ignition
// attributes that are missing, numbers, booleans or text.
func TestAssemblyScriptSDKMatchesGo(t *testing.T) {
	ctx := context.Background()
	asWasm, err := os.ReadFile(buildAS(t))
	if err != nil {
		t.Fatal(err)
	}
	goWasm := wasmfixture.Rule(t, "obd.plausibility")
	h, err := wasmrule.NewHost(wasmrule.Config{BatchSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	as, err := h.Compile(ctx, asWasm)
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close(ctx)
	gr, err := h.Compile(ctx, goWasm)
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close(ctx)
	if as.Name() != "example.obd_plausibility" || as.TestCount() != 7 {
		t.Fatalf("loaded %s with %d self-tests", as.Name(), as.TestCount())
	}
	am, gm := as.Meta(), gr.Meta()
	if am.Dimension != gm.Dimension || am.Severity != gm.Severity || len(am.Reasons) != len(gm.Reasons) {
		t.Fatalf("metadata differs: %+v vs %+v", am, gm)
	}
	for code, text := range gm.Reasons {
		if am.Reasons[code] != text {
			t.Errorf("reason %d: %q, Go %q", code, am.Reasons[code], text)
		}
	}
	if err := as.SelfTest(ctx, nil); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 21))
	seen := map[wasmrule.Status]int{}
	reasons := map[uint16]int{}
	ignitions := []any{nil, 0, 1, 0.0, 2.5, true, false, "0", "1", "off", math.NaN()}
	for round := 0; round < 40; round++ {
		n := 1 + r.IntN(700) // several guest calls per batch past 256
		in := make([]wasmrule.Input, n)
		now := time.Unix(1767225600+int64(r.IntN(3)), 0)
		for i := range in {
			s := signal.New("d", now.Add(-time.Duration(i)*time.Second))
			if r.IntN(4) > 0 {
				s.RPM = randomEngine(r, 0, 10000)
			}
			if r.IntN(4) > 0 {
				s.Coolant = randomEngine(r, -40, 150)
			}
			if r.IntN(4) > 0 {
				s.Voltage = randomEngine(r, 6, 32)
			}
			if ig := ignitions[r.IntN(len(ignitions))]; ig != nil {
				s.Attrs = map[string]any{"ignition": ig}
			}
			in[i] = wasmrule.Input{Signal: s, Now: now}
		}
		got, err := as.Check(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := gr.Check(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n || len(want) != n {
			t.Fatalf("%d and %d verdicts for %d signals", len(got), len(want), n)
		}
		for i := range got {
			if got[i] != want[i] {
				s := in[i].Signal
				t.Fatalf("seed %d round %d signal %d (rpm %v coolant %v voltage %v attrs %v): AssemblyScript %+v, Go %+v",
					seed, round, i, s.RPM, s.Coolant, s.Voltage, s.Attrs, got[i], want[i])
			}
			seen[got[i].Status]++
			reasons[got[i].Reason]++
		}
	}
	// The batches must have exercised every outcome, or the comparison
	// proves little.
	for _, st := range []wasmrule.Status{wasmrule.StatusPass, wasmrule.StatusWarn, wasmrule.StatusFail, wasmrule.StatusNotApplicable} {
		if seen[st] == 0 {
			t.Errorf("no %v verdict in the random batches: %v", st, seen)
		}
	}
	for code := uint16(1); code <= 4; code++ {
		if reasons[code] == 0 {
			t.Errorf("reason %d never came out: %v", code, reasons)
		}
	}
	t.Logf("verdicts %v, reasons %v", seen, reasons)
}
