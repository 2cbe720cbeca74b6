package rules_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/checks-wasm/rules"
	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

// benchInputs is a plausible stream of one device's signals, mostly good
// with some bad values, each linked to its predecessor.
func benchInputs(n int) []wasmrule.Input {
	rng := rand.New(rand.NewPCG(1, 2))
	sigs := make([]signal.Signal, n)
	lat, lon, odo := 45.0, 7.0, 10000.0
	for i := range sigs {
		s := signal.New("bench", now.Add(time.Duration(i)*time.Second))
		lat += (rng.Float64() - 0.5) * 0.001
		lon += (rng.Float64() - 0.5) * 0.001
		odo += rng.Float64() * 0.03
		s.Lat, s.Lon, s.Odometer = lat, lon, odo
		s.Sats, s.HDOP = float64(3+rng.IntN(10)), 0.5+rng.Float64()*8
		s.RPM, s.Coolant, s.Voltage = rng.Float64()*4000, 60+rng.Float64()*40, 11+rng.Float64()*4
		s.SetAttr("ignition", rng.IntN(10) > 0)
		if rng.IntN(50) == 0 {
			s.Lat = 91 // an occasional bad fix
		}
		sigs[i] = s
	}
	return wasmrule.Chain(sigs, now)
}

// BenchmarkRules measures signals/s through the host (wasm) and the same
// logic called natively on the same inputs (native: conversion to
// sdk.Signal plus the check function), at batch sizes 1, 64 and 1024.
//
//	go test -run '^$' -bench Rules -benchtime 200ms ./checks-wasm/rules
func BenchmarkRules(b *testing.B) {
	all := benchInputs(1024)
	ctx := context.Background()
	for _, br := range rules.All() {
		r := load(b, br.Meta.Name)
		for _, n := range []int{1, 64, 1024} {
			in := all[:n]
			b.Run(fmt.Sprintf("%s/wasm/batch=%d", br.Meta.Name, n), func(b *testing.B) {
				for b.Loop() {
					if _, err := r.Check(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "signals/s")
			})
			b.Run(fmt.Sprintf("%s/native/batch=%d", br.Meta.Name, n), func(b *testing.B) {
				out := make([]sdk.Verdict, n)
				for b.Loop() {
					for i := range in {
						out[i] = br.Check(toSDK(in[i]))
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "signals/s")
			})
		}
	}
}
