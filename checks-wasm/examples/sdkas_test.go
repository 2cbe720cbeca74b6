package examples_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

// buildSDKFixture compiles an AssemblyScript source of checks-wasm/sdk-as/testdata
// with the example's compiler and options (internal/wasmfixture).
func buildSDKFixture(t *testing.T, name string) []byte {
	t.Helper()
	buildAS(t) // the compiler is there (or the test fails saying how to get it)
	return wasmfixture.AS(t, "checks-wasm/sdk-as/testdata/"+name)
}

// The SDK's time columns, batch clock, attributes by index, undeclared
// fields and escaped metadata, through the host, against the same logic
// in Go over random batches.
func TestAssemblyScriptSDKTimeColumns(t *testing.T) {
	ctx := context.Background()
	h, err := wasmrule.NewHost(wasmrule.Config{BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	r, err := h.Compile(ctx, buildSDKFixture(t, "timing.ts"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	m := r.Meta()
	if m.Name != "sdktest.timing" || m.Version != "0.1.0-rc.1" || r.TestCount() != 6 ||
		m.Reasons[3] != "older than an hour at the \"host\" clock \\ tab\t" || len(m.Attrs) != 2 {
		t.Fatalf("metadata %+v, %d tests", m, r.TestCount())
	}
	if err := r.SelfTest(ctx, nil); err != nil {
		t.Fatal(err)
	}
	want := func(in wasmrule.Input) wasmrule.Verdict {
		s := in.Signal
		if s.TS.IsZero() {
			return wasmrule.Verdict{Status: wasmrule.StatusNotApplicable}
		}
		ts := s.TS.UnixMilli()
		switch {
		case in.Prev != nil && ts-in.Prev.TS.UnixMilli() < 0:
			return wasmrule.Verdict{Status: wasmrule.StatusFail, Reason: 1}
		case !s.Recv.IsZero() && s.Recv.UnixMilli()-ts > 60000:
			return wasmrule.Verdict{Status: wasmrule.StatusWarn, Reason: 2}
		case in.Now.UnixMilli()-ts > 3600000:
			return wasmrule.Verdict{Status: wasmrule.StatusFail, Reason: 3}
		case math.IsNaN(s.Speed) && s.Attrs["b"] == 1.0:
			return wasmrule.Verdict{Status: wasmrule.StatusWarn, Reason: 4}
		}
		return wasmrule.Verdict{}
	}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	base := time.Unix(1767225600, 0).UTC()
	seen := map[wasmrule.Verdict]int{}
	for round := 0; round < 30; round++ {
		n := 1 + rnd.IntN(300)
		now := base.Add(time.Duration(rnd.IntN(7200)) * time.Second)
		in := make([]wasmrule.Input, n)
		for i := range in {
			var s signal.Signal
			if rnd.IntN(8) == 0 {
				s = signal.New("d", time.Time{})
			} else {
				s = signal.New("d", base.Add(time.Duration(rnd.IntN(7200000))*time.Millisecond))
			}
			s.Recv = time.Time{}
			if rnd.IntN(2) == 0 {
				s.Recv = s.TS.Add(time.Duration(rnd.IntN(120000)) * time.Millisecond)
			}
			if rnd.IntN(3) > 0 {
				s.Speed = rnd.Float64() * 100
			}
			s.Attrs = map[string]any{"a": rnd.Float64()}
			if rnd.IntN(2) == 0 {
				s.Attrs["b"] = float64(rnd.IntN(2))
			}
			x := wasmrule.Input{Signal: s, Now: now}
			if rnd.IntN(2) == 0 && !s.TS.IsZero() {
				p := signal.New("d", s.TS.Add(time.Duration(rnd.IntN(20000)-10000)*time.Millisecond))
				x.Prev = &p
			}
			in[i] = x
		}
		got, err := r.Check(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range in {
			if w := want(in[i]); got[i] != w {
				t.Fatalf("round %d signal %d (%+v, prev %v, now %v): got %+v, want %+v", round, i, in[i].Signal, in[i].Prev, in[i].Now, got[i], w)
			}
			seen[got[i]]++
		}
	}
	if len(seen) != 6 {
		t.Errorf("verdicts seen %v: want all six (pass, n/a, reasons 1–4)", seen)
	}
}
