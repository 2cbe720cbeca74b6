package examples_test

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/wasmdecoder"
	"github.com/fleetcore/fleetcore/protocols/gt06"
)

// Two captures of the corpus (traccar-frames.jsonl): a login and a GPS+LBS
// 0x22 location.
const (
	gt06LoginHex    = "78780d0103534190360660610003c3df0d0a"
	gt06LocationHex = "787822221106160a1016c60278019407c7783800040001940504700046fc01030100065f570d0a"
)

func gt06Loop(b *testing.B, s plugins.Session, frame []byte, n int) {
	recv := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range n {
		k, err := s.Frame(frame)
		if err != nil || k != len(frame) {
			b.Fatalf("Frame = %d, %v", k, err)
		}
		res, err := s.Decode(frame, recv)
		if err != nil || len(res.Signals) != 1 || len(res.Ack) == 0 {
			b.Fatalf("Decode: %d signals, ack %x, %v", len(res.Signals), res.Ack, err)
		}
	}
}

// BenchmarkASRatio runs gt06_as (AssemblyScript, through the WASM host)
// and native gt06 in the same run, interleaved in rounds, on a logged-in
// connection decoding one location frame per call (Frame + Decode), and
// reports the port's per-frame time as a multiple of the native one
// (x_native; the target is ≤ 3).
func BenchmarkASRatio(b *testing.B) {
	m := loadAS(b, asPorts[0].entry)
	login, _ := hex.DecodeString(gt06LoginHex)
	frame, _ := hex.DecodeString(gt06LocationHex)
	wasm, native := newSession(m, plugins.TCP), newSession(&gt06.Decoder{}, plugins.TCP)
	for _, s := range []plugins.Session{wasm, native} {
		if _, err := s.Decode(login, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	const round = 256
	var tw, tn time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i += round {
		t0 := time.Now()
		gt06Loop(b, wasm, frame, round)
		t1 := time.Now()
		gt06Loop(b, native, frame, round)
		tw, tn = tw+t1.Sub(t0), tn+time.Since(t1)
	}
	b.ReportMetric(float64(tw)/float64(tn), "x_native")
	b.ReportMetric(float64(tw.Nanoseconds())/float64(b.N), "wasm_ns/frame")
	b.ReportMetric(float64(tn.Nanoseconds())/float64(b.N), "native_ns/frame")
}

// BenchmarkASGuest is the guest's own share of BenchmarkASRatio: gt06_as's
// fc_decode of the location frame called straight through wazero (no
// host: no pooling, no output checks, no signals), next to the native
// session's Decode, interleaved in rounds (x_native).
func BenchmarkASGuest(b *testing.B) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, wasmfixture.AS(b, asPorts[0].entry))
	if err != nil {
		b.Fatal(err)
	}
	frame, _ := hex.DecodeString(gt06LocationHex)
	login, _ := hex.DecodeString(gt06LoginHex)
	// The state the login leaves: tz minutes (0) and the IMEI.
	in := wasmdecoder.AppendInput(nil, wasmdecoder.Input{Transport: plugins.TCP, RecvMs: 1767225600000, MaxFrame: 65536,
		Options: []byte(`{"device_time":"declared","model":""}`), State: append([]byte{0, 0}, "353419036066061"...), Data: frame})
	alloc, dec := mod.ExportedFunction("fc_alloc"), mod.ExportedFunction("fc_decode")
	res, err := alloc.Call(ctx, uint64(len(in)))
	if err != nil || res[0] == 0 {
		b.Fatal("fc_alloc", err)
	}
	ptr := uint32(res[0])
	mod.Memory().Write(ptr, in)
	native := newSession(&gt06.Decoder{}, plugins.TCP)
	if _, err := native.Decode(login, time.Now()); err != nil {
		b.Fatal(err)
	}
	stack := make([]uint64, 2)
	recv := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const round = 256
	var tw, tn time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i += round {
		t0 := time.Now()
		for range round {
			stack[0], stack[1] = api.EncodeU32(ptr), api.EncodeU32(uint32(len(in)))
			if err := dec.CallWithStack(ctx, stack); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for range round {
			if _, err := native.Decode(frame, recv); err != nil {
				b.Fatal(err)
			}
		}
		tw, tn = tw+t1.Sub(t0), tn+time.Since(t1)
	}
	out, ok := mod.Memory().Read(uint32(stack[0]>>32), uint32(stack[0]))
	if !ok || string(out[:4]) != "FCR1" || out[4] != 0 || out[12] != 1 {
		b.Fatalf("fc_decode output % x", out[:min(len(out), 48)])
	}
	b.ReportMetric(float64(tw)/float64(tn), "x_native")
	b.ReportMetric(float64(tw.Nanoseconds())/float64(b.N), "guest_ns/frame")
	b.ReportMetric(float64(tn.Nanoseconds())/float64(b.N), "native_ns/frame")
}
