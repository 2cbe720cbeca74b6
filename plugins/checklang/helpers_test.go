package checklang_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins/checklang"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

var refTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newHost(t testing.TB) *wasmrule.Host {
	t.Helper()
	h, err := wasmrule.NewHost(wasmrule.Config{MaxFailures: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

// load compiles module bytes in the host (validating them with wazero) and
// runs their self-tests.
func load(t testing.TB, h *wasmrule.Host, wasm []byte) *wasmrule.Rule {
	t.Helper()
	ctx := context.Background()
	r, err := h.Compile(ctx, wasm)
	if err != nil {
		t.Fatalf("compiling module: %v", err)
	}
	t.Cleanup(func() { _ = r.Close(ctx) })
	if err := r.SelfTest(ctx, nil); err != nil {
		t.Fatalf("self-test: %v", err)
	}
	return r
}

// compileFile compiles a testdata check file.
func compileFile(t testing.TB, path string) (*checklang.Check, *checklang.Module) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := checklang.ParseFile(path, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("%s: %d checks", path, len(cs))
	}
	m, err := cs[0].Compile()
	if err != nil {
		t.Fatal(err)
	}
	return cs[0], m
}

// randValue is a value around the interesting thresholds, or an edge case:
// NaN (absent), ±0, ±Inf, huge.
func randValue(rng *rand.Rand, lo, hi float64) float64 {
	switch rng.IntN(12) {
	case 0:
		return math.NaN()
	case 1:
		return 0
	case 2:
		return math.Copysign(0, -1)
	case 3:
		return []float64{math.Inf(1), math.Inf(-1), 1e300, -1e300, 5e-324}[rng.IntN(5)]
	case 4:
		return math.Round(lo + rng.Float64()*(hi-lo)) // exact integers hit == and boundaries
	}
	return lo + rng.Float64()*(hi-lo)
}

// randBatch is n signals of a few devices with random, partly absent
// fields and attrs, chained to their predecessors (prev_*).
func randBatch(rng *rand.Rand, n int) []wasmrule.Input {
	sigs := make([]signal.Signal, n)
	for i := range sigs {
		var ts time.Time
		if rng.IntN(10) > 0 {
			ts = refTime.Add(time.Duration(i)*time.Second + time.Duration(rng.IntN(7200)-3600)*time.Second)
		}
		s := signal.New([]string{"a", "b", "c"}[rng.IntN(3)], ts)
		if rng.IntN(10) > 0 {
			s.Recv = ts.Add(time.Duration(rng.IntN(3)) * time.Second)
		}
		s.Lat = randValue(rng, -95, 95)
		s.Lon = randValue(rng, -190, 190)
		if rng.IntN(3) > 0 { // mostly plausible neighbours, for distance_m
			s.Lat, s.Lon = 45+rng.Float64()*0.5, 7+rng.Float64()*0.5
		}
		s.Alt = randValue(rng, -100, 3000)
		s.Speed = randValue(rng, 0, 260)
		s.Heading = randValue(rng, -400, 400)
		s.Sats = randValue(rng, 0, 20)
		s.HDOP = randValue(rng, 0, 20)
		s.RPM = randValue(rng, -100, 7000)
		s.Coolant = randValue(rng, -40, 130)
		s.Fuel = randValue(rng, 0, 100)
		s.Voltage = randValue(rng, 0, 30)
		s.Odometer = randValue(rng, 0, 2000)
		s.EngineLoad = randValue(rng, 0, 100)
		s.Throttle = randValue(rng, 0, 100)
		switch rng.IntN(4) {
		case 0: // absent
		case 1:
			s.SetAttr("ignition", rng.IntN(2) == 1)
		default:
			s.SetAttr("ignition", float64(rng.IntN(2)))
		}
		sigs[i] = s
	}
	in := wasmrule.Chain(sigs, refTime.Add(time.Duration(rng.IntN(7200))*time.Second))
	return in
}

// fieldsOf is what the host sends for an input, by canonical field name
// (times in Unix ms, absent = missing from the map), for Check.Eval.
func fieldsOf(in wasmrule.Input) (map[string]float64, []float64) {
	s := in.Signal
	m := map[string]float64{
		"lat": s.Lat, "lon": s.Lon, "alt": s.Alt, "speed": s.Speed, "heading": s.Heading,
		"sats": s.Sats, "hdop": s.HDOP, "rpm": s.RPM, "coolant": s.Coolant, "fuel": s.Fuel,
		"voltage": s.Voltage, "odometer": s.Odometer, "engine_load": s.EngineLoad, "throttle": s.Throttle,
	}
	if !s.TS.IsZero() {
		m["ts"] = float64(s.TS.UnixMilli())
	}
	if !s.Recv.IsZero() {
		m["recv"] = float64(s.Recv.UnixMilli())
	}
	if p := in.Prev; p != nil {
		if !p.TS.IsZero() {
			m["prev_ts"] = float64(p.TS.UnixMilli())
		}
		m["prev_lat"], m["prev_lon"], m["prev_odometer"] = p.Lat, p.Lon, p.Odometer
	}
	ign := math.NaN()
	switch v := s.Attrs["ignition"].(type) {
	case bool:
		ign = 0
		if v {
			ign = 1
		}
	case float64:
		ign = v
	}
	return m, []float64{ign}
}

func nowNanos() int64 { return time.Now().UnixNano() }

func newRand() *rand.Rand { return rand.New(rand.NewPCG(7, 7)) }
