package checklang_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/plugins/checklang"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

var exprFields = []string{"ts", "recv", "lat", "lon", "alt", "speed", "heading", "sats", "hdop", "rpm",
	"coolant", "fuel", "voltage", "odometer", "engine_load", "throttle", "prev_ts", "prev_lat", "prev_lon",
	"prev_odometer", "now", "ignition"}

// randNum and randCond write random expressions of the language.
func randNum(rng *rand.Rand, depth int) string {
	if depth <= 0 || rng.IntN(4) == 0 {
		switch rng.IntN(6) {
		case 0:
			return fmt.Sprintf("%g", math.Round(rng.Float64()*400-100))
		case 1:
			return []string{"distance_m()", "dt_s()", "age_s()"}[rng.IntN(3)]
		default:
			return exprFields[rng.IntN(len(exprFields))]
		}
	}
	a, b := randNum(rng, depth-1), randNum(rng, depth-1)
	switch rng.IntN(8) {
	case 0:
		return "-" + a
	case 1:
		return "abs(" + a + ")"
	case 2:
		return "min(" + a + ", " + b + ")"
	case 3:
		return "max(" + a + ", " + b + ")"
	}
	return "(" + a + " " + []string{"+", "-", "*", "/"}[rng.IntN(4)] + " " + b + ")"
}

func randCond(rng *rand.Rand, depth int) string {
	if depth <= 0 || rng.IntN(3) == 0 {
		switch rng.IntN(6) {
		case 0:
			return "is_missing(" + randNum(rng, 1) + ")"
		case 1:
			return "between(" + randNum(rng, 1) + ", " + randNum(rng, 0) + ", " + randNum(rng, 0) + ")"
		}
		op := []string{"<", "<=", ">", ">=", "==", "!="}[rng.IntN(6)]
		return randNum(rng, 2) + " " + op + " " + randNum(rng, 2)
	}
	switch rng.IntN(3) {
	case 0:
		return "not (" + randCond(rng, depth-1) + ")"
	case 1:
		return "(" + randCond(rng, depth-1) + " and " + randCond(rng, depth-1) + ")"
	}
	return "(" + randCond(rng, depth-1) + " or " + randCond(rng, depth-1) + ")"
}

// TestRandomExpressions compiles random expressions (every operator and
// function, NaN everywhere) and checks the generated code against the
// reference interpreter signal by signal.
func TestRandomExpressions(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	rng := rand.New(rand.NewPCG(21, 21))
	compiled, total := 0, map[wasmrule.Status]int{}
	for compiled < 150 {
		when, fail, warn := randCond(rng, 2), randCond(rng, 3), randCond(rng, 3)
		src := fmt.Sprintf("check \"rand.x\" {\n dimension = \"validity\"\n attrs = [\"ignition\"]\n when = %q\n fail_if = %q\n warn_if = %q\n}\n", when, fail, warn)
		cs, err := checklang.ParseFile("rand.check.hcl", []byte(src))
		if err != nil {
			if strings.Contains(err.Error(), "division by zero") || strings.Contains(err.Error(), "more than") {
				continue // constant zero divisors and oversized trees are refused by design
			}
			t.Fatalf("%s\n%v", src, err)
		}
		m, err := cs[0].Compile()
		if err != nil {
			t.Fatal(err)
		}
		r, err := h.Compile(ctx, m.Wasm)
		if err != nil {
			t.Fatalf("%s\nmodule refused: %v", src, err)
		}
		in := randBatch(rng, 64)
		v, err := r.Check(ctx, in)
		_ = r.Close(ctx)
		if err != nil {
			t.Fatalf("%s\n%v", src, err)
		}
		for i := range in {
			fields, attrs := fieldsOf(in[i])
			st, reason := cs[0].Eval(fields, attrs, float64(in[i].Now.UnixMilli()))
			want := wasmrule.Verdict{Status: wasmrule.Status(st), Reason: reason}
			if v[i] != want {
				t.Fatalf("%s\nsignal %d: module %v, interpreter %v\nfields %v attrs %v", src, i, v[i], want, fields, attrs)
			}
			total[want.Status]++
		}
		compiled++
	}
	t.Logf("verdicts over %d random checks: %v", compiled, total)
	for st := range wasmrule.Status(4) {
		if total[st] == 0 {
			t.Errorf("no verdict with status %d", st)
		}
	}
}

// TestDistanceAccuracy: distance_m() of the generated code (its own sin and
// asin polynomials) against math.Sin/Asin, to 1e-9 relative over random
// positions from centimetres to thousands of km, and to 1 m at antipodes.
func TestDistanceAccuracy(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for k := range 60 {
		lat1, lon1 := rng.Float64()*180-90, rng.Float64()*360-180
		scale := math.Pow(10, float64(rng.IntN(8))-6) // 1e-6 .. 10 degrees
		lat2 := math.Max(-90, math.Min(90, lat1+(rng.Float64()-0.5)*scale*10))
		lon2 := math.Max(-180, math.Min(180, lon1+(rng.Float64()-0.5)*scale*10))
		if k%10 == 0 {
			lat2, lon2 = -lat1, lon1+180 // antipode
			if lon2 > 180 {
				lon2 -= 360
			}
		}
		want := checklang.Haversine(lat1, lon1, lat2, lon2)
		tol := 1e-9*want + 1e-9
		if k%10 == 0 {
			// Near antipodes the haversine itself is ill-conditioned (asin
			// at 1: an ulp of a is ~0.1 m); any two implementations differ
			// by that much.
			tol = 1
		}
		src := fmt.Sprintf("check \"dist.x\" {\n dimension = \"validity\"\n fail_if = \"abs(distance_m() - %.17g) > %.17g\"\n}\n", want, tol)
		m, err := checklang.CompileFile("dist.check.hcl", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		r := load(t, h, m.Wasm)
		in := randBatch(rng, 1)
		s := &in[0].Signal
		s.Lat, s.Lon = lat2, lon2
		prev := *s
		prev.Lat, prev.Lon = lat1, lon1
		in[0].Prev = &prev
		v, err := r.Check(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if v[0].Status != wasmrule.StatusPass {
			t.Fatalf("distance (%v,%v)-(%v,%v): generated code differs from %v m by more than %v", lat1, lon1, lat2, lon2, want, tol)
		}
	}
}
