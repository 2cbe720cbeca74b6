package wasmdecoder

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/fleetcore/fleetcore/internal/wasmmeter"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/acme"
)

// frameLoop frames and decodes one two-record ACME batch per iteration in
// a logged-in session: what a connection does per frame.
func frameLoop(b *testing.B, s plugins.Session, frame []byte, n int) {
	recv := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range n {
		k, err := s.Frame(frame)
		if err != nil || k != len(frame) {
			b.Fatalf("Frame = %d, %v", k, err)
		}
		res, err := s.Decode(frame, recv)
		if err != nil || len(res.Signals) != 2 {
			b.Fatalf("Decode: %d signals, %v", len(res.Signals), err)
		}
	}
}

func benchSessions(b *testing.B) (wasm, native plugins.Session, frame []byte) {
	m := load(b, newHost(b, Config{Budget: testBudget}), examplePath, exampleWasm(b))
	cfg := plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 65536}
	wasm, native = m.NewSession(cfg), (&acme.Decoder{}).NewSession(cfg)
	for _, s := range []plugins.Session{wasm, native} {
		if _, err := s.Decode(mustHex(b, helloHex), time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	return wasm, native, mustHex(b, batch1Hex)
}

// BenchmarkFrame: per-frame cost of the WAT example through the host and
// of the native Go decoder doing the same (Frame + Decode of a two-record
// batch), with allocations.
func BenchmarkFrame(b *testing.B) {
	wasm, native, frame := benchSessions(b)
	for _, c := range []struct {
		name string
		s    plugins.Session
	}{{"wasm", wasm}, {"native", native}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			frameLoop(b, c.s, frame, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// BenchmarkRatio runs both decoders in the same run, interleaved in
// rounds, and reports the WASM per-frame time as a multiple of the native
// one (x_native): the comparison survives a machine whose speed varies.
func BenchmarkRatio(b *testing.B) {
	wasm, native, frame := benchSessions(b)
	const round = 256
	var tw, tn time.Duration
	for i := 0; i < b.N; i += round {
		t0 := time.Now()
		frameLoop(b, wasm, frame, round)
		t1 := time.Now()
		frameLoop(b, native, frame, round)
		tw, tn = tw+t1.Sub(t0), tn+time.Since(t1)
	}
	b.ReportMetric(float64(tw)/float64(tn), "x_native")
	b.ReportMetric(float64(tw.Nanoseconds())/float64(b.N), "wasm_ns/frame")
	b.ReportMetric(float64(tn.Nanoseconds())/float64(b.N), "native_ns/frame")
}

// BenchmarkIdleSession: heap bytes per idle, logged-in connection (10,000
// of them) with the WASM decoder and with the native one.
func BenchmarkIdleSession(b *testing.B) {
	m := load(b, newHost(b, Config{Budget: testBudget}), examplePath, exampleWasm(b))
	hello := mustHex(b, helloHex)
	const conns = 10000
	measure := func(dec plugins.Decoder) float64 {
		sessions := make([]plugins.Session, conns)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range sessions {
			s := dec.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 65536})
			if _, err := s.Decode(hello, time.Now()); err != nil {
				b.Fatal(err)
			}
			sessions[i] = s
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(sessions)
		return float64(after.HeapAlloc-before.HeapAlloc) / conns
	}
	var w, n float64
	for range b.N {
		w, n = measure(m), measure(&acme.Decoder{})
	}
	b.ReportMetric(w, "wasm_B/conn")
	b.ReportMetric(n, "native_B/conn")
	b.ReportMetric(w/n, "x_native")
}

// BenchmarkTermination shows what bounding a call costs: the example's
// fc_decode called straight through wazero with WithCloseOnContextDone
// (checks=on: a Go call at every loop header and a goroutine per call,
// what the host used before internal/wasmmeter), instrumented and metered
// as the host does now (metered), and unbounded (checks=off).
func BenchmarkTermination(b *testing.B) {
	in := AppendInput(nil, Input{Transport: plugins.TCP, MaxFrame: 65536, Options: []byte(`{"ack":true}`),
		State: []byte("356307042441013"), Data: mustHex(b, batch1Hex)})
	wasm := exampleWasm(b)
	metered, err := wasmmeter.Instrument(wasm, wasmmeter.Units(InitBudget))
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"checks=on", "metered", "checks=off"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(mode == "checks=on"))
			defer rt.Close(ctx)
			bin := wasm
			if mode == "metered" {
				bin = metered
			}
			mod, err := rt.Instantiate(ctx, bin)
			if err != nil {
				b.Fatal(err)
			}
			var meter *wasmmeter.Meter
			if mode == "metered" {
				if meter, err = wasmmeter.New(mod); err != nil {
					b.Fatal(err)
				}
				defer meter.Close()
			}
			mod.Memory().Write(65536, in)
			dec := mod.ExportedFunction("fc_decode")
			stack := make([]uint64, 2)
			b.ResetTimer()
			for range b.N {
				stack[0], stack[1] = api.EncodeU32(65536), api.EncodeU32(uint32(len(in)))
				if meter != nil {
					meter.Start(ctx, wasmmeter.Units(DefaultBudget), DefaultBudget*wasmmeter.WallFactor)
				}
				err := dec.CallWithStack(ctx, stack)
				if meter != nil {
					meter.Stop()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
