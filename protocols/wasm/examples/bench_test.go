package examples_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/fleetcore/fleetcore/benchmarks/loadgen"
	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/internal/wasmmeter"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
)

// The issue-13 per-frame benchmarks of the Go SDK ports against their
// native decoders, in one run:
//
//	go test -run x -bench PortRatio -benchtime 20000x ./protocols/wasm/examples
//	go test -run x -bench PortIdle -benchtime 1x ./protocols/wasm/examples
//
// BenchmarkPortRatio reports x_native (WASM time per frame over native),
// both ns/frame and frames/s; BenchmarkPortIdle the heap bytes per idle,
// logged-in connection at 10,000 connections (x_native). The WAT guest's
// figures are plugins/wasmdecoder's BenchmarkRatio and BenchmarkIdleSession.

// benchPort is one port with the traffic of one connection: what it sends
// once (its login, nil when none) and the frame it repeats.
type benchPort struct {
	port
	hello []byte
	frame []byte
	recs  int // signals the frame decodes to
}

func benchPorts(b *testing.B) []benchPort {
	tc, err := loadgen.CodecFor("teltonika")
	if err != nil {
		b.Fatal(err)
	}
	const imei = "356307042441013"
	recs := make([]loadgen.Record, 4)
	t0 := time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC)
	for i := range recs {
		recs[i] = loadgen.Record{TS: t0.Add(time.Duration(i) * time.Second), Lat: 54.68 + float64(i)/1e4, Lon: 25.27,
			Alt: 120, Speed: 42, Heading: 90, Sats: 9, Odo: 1234.5, Volt: 12.6}
	}
	return []benchPort{
		{port: ports[0], hello: tc.Hello(imei, 0), frame: tc.Encode(nil, imei, 1, recs, false), recs: len(recs)},
		{port: ports[1], frame: []byte("*HQ,4970105243,V1,104000,A,2235.1777,N,11357.8913,E,000.27,235,130721,FFFFFBFF,460,11,d18e105,7752,6#"), recs: 1},
	}
}

// open makes a TCP session of d that has sent p's login.
func (p benchPort) open(b *testing.B, d plugins.Decoder) plugins.Session {
	s := newSession(d, plugins.TCP)
	if p.hello != nil {
		if _, err := s.Decode(p.hello, recv); err != nil {
			b.Fatalf("%s login: %v", p.protocol, err)
		}
	}
	return s
}

// frames frames and decodes p's frame n times on s, as a connection does.
func (p benchPort) frames(b *testing.B, s plugins.Session, n int) {
	for range n {
		k, err := s.Frame(p.frame)
		if err != nil || k != len(p.frame) {
			b.Fatalf("%s: Frame = %d, %v (want %d)", p.protocol, k, err, len(p.frame))
		}
		res, err := s.Decode(p.frame, recv)
		if err != nil || len(res.Signals) != p.recs {
			b.Fatalf("%s: Decode: %d signals, %v (want %d)", p.protocol, len(res.Signals), err, p.recs)
		}
	}
}

// BenchmarkPortRatio runs each port and its native decoder in the same
// run, interleaved in rounds, so that the ratio survives a machine whose
// speed varies (two cores shared with other work).
func BenchmarkPortRatio(b *testing.B) {
	for _, p := range benchPorts(b) {
		b.Run(p.protocol, func(b *testing.B) {
			wasm, native := p.open(b, loadPort(b, p.pkg)), p.open(b, p.native)
			p.frames(b, wasm, 16) // warm the pool
			const round = 128
			var tw, tn time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i += round {
				t0 := time.Now()
				p.frames(b, wasm, round)
				t1 := time.Now()
				p.frames(b, native, round)
				tw, tn = tw+t1.Sub(t0), tn+time.Since(t1)
			}
			n := float64(b.N+round-1) / round * round
			b.ReportMetric(float64(tw)/float64(tn), "x_native")
			b.ReportMetric(float64(tw.Nanoseconds())/n, "wasm_ns/frame")
			b.ReportMetric(float64(tn.Nanoseconds())/n, "native_ns/frame")
			b.ReportMetric(n/tw.Seconds(), "wasm_frames/s")
			b.ReportMetric(n/tn.Seconds(), "native_frames/s")
		})
	}
}

// BenchmarkPortIdle: heap bytes per idle, logged-in TCP connection, 10,000
// of them, with each port and with its native decoder.
func BenchmarkPortIdle(b *testing.B) {
	const conns = 10000
	for _, p := range benchPorts(b) {
		b.Run(p.protocol, func(b *testing.B) {
			m := loadPort(b, p.pkg)
			p.open(b, m) // the pool's instance exists before measuring
			measure := func(d plugins.Decoder) float64 {
				sessions := make([]plugins.Session, conns)
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for i := range sessions {
					s := p.open(b, d)
					p.frames(b, s, 1)
					sessions[i] = s
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(sessions)
				return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / conns
			}
			var w, n float64
			for range b.N {
				w, n = measure(m), measure(p.native)
			}
			b.ReportMetric(w, "wasm_B/conn")
			b.ReportMetric(n, "native_B/conn")
			b.ReportMetric(w/n, "x_native")
		})
	}
}

// BenchmarkPortTermination shows what bounding a call costs a Go guest:
// the Teltonika port's fc_decode of the benchmark frame called straight
// through wazero with WithCloseOnContextDone (checks=on: wazero leaves the
// guest for a Go call at every loop back-edge and starts a goroutine per
// call; what the host used before internal/wasmmeter), instrumented by
// internal/wasmmeter with the meter started and stopped around each call
// as the host does (metered), and unbounded (checks=off). The host adds
// its own input encoding and output parsing on top (BenchmarkPortRatio).
func BenchmarkPortTermination(b *testing.B) {
	p := benchPorts(b)[0]
	m := loadPort(b, p.pkg)
	s, ok := p.open(b, m).(*wasmdecoder.Session)
	if !ok {
		b.Fatal("not a *wasmdecoder.Session")
	}
	in := wasmdecoder.AppendInput(nil, wasmdecoder.Input{Transport: plugins.TCP, RecvMs: recv.UnixMilli(), MaxFrame: 65536,
		Options: []byte(`{"extended":false}`), State: s.State(), Data: p.frame})
	wasm := wasmfixture.Go(b, p.pkg, nil)
	metered, err := wasmmeter.Instrument(wasm, wasmmeter.Units(10*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	var outs [3][]byte
	for i, mode := range []string{"checks=on", "metered", "checks=off"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(mode == "checks=on"))
			defer rt.Close(ctx)
			wasi_snapshot_preview1.MustInstantiate(ctx, rt)
			bin := wasm
			if mode == "metered" {
				bin = metered
			}
			mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
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
			res, err := mod.ExportedFunction("fc_alloc").Call(ctx, uint64(len(in)))
			if err != nil || res[0] == 0 {
				b.Fatalf("fc_alloc: %v %v", res, err)
			}
			ptr := uint32(res[0])
			mod.Memory().Write(ptr, in)
			dec := mod.ExportedFunction("fc_decode")
			stack := make([]uint64, 2)
			b.ResetTimer()
			for range b.N {
				stack[0], stack[1] = uint64(ptr), uint64(len(in))
				if meter != nil {
					meter.Start(ctx, wasmmeter.Units(50*time.Millisecond), 500*time.Millisecond)
				}
				err := dec.CallWithStack(ctx, stack)
				if meter != nil {
					meter.Stop()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			out, ok := mod.Memory().Read(uint32(stack[0]>>32), uint32(stack[0]))
			if !ok || len(out) < 16 {
				b.Fatalf("fc_decode output %d bytes", len(out))
			}
			outs[i] = bytes.Clone(out)
		})
	}
	for i := 1; i < len(outs); i++ {
		if outs[0] != nil && outs[i] != nil && !bytes.Equal(outs[0], outs[i]) {
			b.Fatal("fc_decode output differs with and without the checks or the meter")
		}
	}
}
