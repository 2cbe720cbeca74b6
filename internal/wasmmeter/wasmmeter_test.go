package wasmmeter

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
)

// instance instruments and instantiates a module without
// WithCloseOnContextDone (the point of the package).
func instance(t *testing.T, wasm []byte) (api.Module, *Meter) { return instanceB(t, wasm) }

func instanceB(t testing.TB, wasm []byte) (api.Module, *Meter) {
	t.Helper()
	metered, err := Instrument(wasm, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { _ = rt.Close(ctx) })
	mod, err := rt.Instantiate(ctx, metered)
	if err != nil {
		t.Fatalf("instantiating the instrumented module: %v", err)
	}
	m, err := New(mod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return mod, m
}

const loops = `(module
  (func (export "spin") (loop $l (br $l)))
  (func $rec (export "rec") (call $rec))
  (func (export "count") (param $n i32) (result i32)
    (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $i))
  (func (export "trap") (unreachable)))`

func TestUnitsAreExact(t *testing.T) {
	mod, m := instance(t, wasmfixture.WAT(t, loops))
	ctx := context.Background()
	for _, n := range []uint64{1, 10, 1000} {
		m.Start(ctx, 1<<30, 0)
		res, err := mod.ExportedFunction("count").Call(ctx, n)
		u := m.Stop()
		if err != nil || res[0] != n {
			t.Fatalf("count(%d) = %v, %v", n, res, err)
		}
		// One unit at the function's entry, one per iteration.
		if u.Units != int64(n)+1 || u.Out() {
			t.Errorf("count(%d): usage %+v, want %d units and not out", n, u, n+1)
		}
	}
}

func TestRunawayCallsStop(t *testing.T) {
	mod, m := instance(t, wasmfixture.WAT(t, loops))
	ctx := context.Background()
	for _, fn := range []string{"spin", "rec"} {
		t.Run(fn, func(t *testing.T) {
			for range 2 { // the same instance again: the same units, the same end
				m.Start(ctx, 10000, 0)
				_, err := mod.ExportedFunction(fn).Call(ctx)
				u := m.Stop()
				if err == nil || !u.Exhausted || u.Units != 10000 {
					t.Fatalf("%s: err %v, usage %+v: want a trap after exactly 10000 units", fn, err, u)
				}
			}
		})
	}
	// A trap of the guest's own is not the meter's.
	m.Start(ctx, 100000, 0)
	_, err := mod.ExportedFunction("trap").Call(ctx)
	if u := m.Stop(); err == nil || u.Out() {
		t.Errorf("trap: err %v, usage %+v: want the guest's trap, not out of units", err, u)
	}
}

func TestBackstopAndContext(t *testing.T) {
	mod, m := instance(t, wasmfixture.WAT(t, loops))
	spin := mod.ExportedFunction("spin")
	start := time.Now()
	m.Start(context.Background(), math.MaxInt64, 50*time.Millisecond)
	_, err := spin.Call(context.Background())
	u := m.Stop()
	if err == nil || !u.Stopped || u.Exhausted {
		t.Fatalf("backstop: err %v, usage %+v", err, u)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the 50 ms backstop stopped the loop after %v", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	m.Start(ctx, math.MaxInt64, 0)
	_, err = spin.Call(context.Background())
	if u := m.Stop(); err == nil || !u.Stopped {
		t.Fatalf("canceled context: err %v, usage %+v", err, u)
	}

	// After a stopped call the next one gets its full units again.
	m.Start(context.Background(), 1<<30, time.Hour)
	res, err := mod.ExportedFunction("count").Call(context.Background(), 5)
	if u := m.Stop(); err != nil || res[0] != 5 || u.Out() || u.Units != 6 {
		t.Fatalf("after the stop: %v, %v, %+v", res, err, u)
	}
}

// TestInstrumentWalksWasm2 runs a module using every immediate form of
// WebAssembly 2.0 that a decoder might (SIMD, bulk memory, reference
// types, multi-value, br_table, typed select, call_indirect): a mistake in
// the walk would break validation or the results.
func TestInstrumentWalksWasm2(t *testing.T) {
	src := `(module
  (type $ii (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (table 2 funcref)
  (elem (i32.const 0) $double $inc)
  (global $g (mut i64) (i64.const -9223372036854775808))
  (data $d "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10")
  (func $double (type $ii) (i32.mul (local.get 0) (i32.const 2)))
  (func $inc (type $ii) (i32.add (local.get 0) (i32.const 1)))
  (func $pair (param i32) (result i32 i32) (local.get 0) (i32.add (local.get 0) (i32.const 100)))
  (func (export "run") (param $x i32) (result i32)
    (local $v v128) (local $acc i32)
    (memory.init $d (i32.const 64) (i32.const 0) (i32.const 16))
    (data.drop $d)
    (memory.copy (i32.const 128) (i32.const 64) (i32.const 16))
    (memory.fill (i32.const 256) (i32.const 7) (i32.const 8))
    (local.set $v (v128.load offset=128 align=1 (i32.const 0)))
    (local.set $v (i8x16.shuffle 15 14 13 12 11 10 9 8 7 6 5 4 3 2 1 0 (local.get $v) (local.get $v)))
    (local.set $v (i32x4.replace_lane 1 (local.get $v) (i32.const 1000)))
    (local.set $v (v128.load32_lane 2 (i32.const 256) (local.get $v)))
    (v128.store offset=512 (i32.const 0) (i32x4.add (local.get $v) (v128.const i32x4 1 2 3 4)))
    (local.set $acc (i32.add (i32x4.extract_lane 1 (v128.load offset=512 (i32.const 0)))
                             (i32x4.extract_lane 2 (v128.load offset=512 (i32.const 0)))))
    (global.set $g (i64.add (global.get $g) (i64.const 1)))
    (local.set $acc (i32.add (local.get $acc) (call_indirect (type $ii) (local.get $x) (i32.const 0))))
    (local.set $acc (i32.add (local.get $acc) (i32.trunc_sat_f64_s (f64.const 2.5))))
    (local.set $acc (i32.add (local.get $acc) (i32.extend8_s (i32.const 0xff))))
    (local.set $acc (i32.add (local.get $acc) (select (result i32) (i32.const 10) (i32.const 20) (local.get $x))))
    (local.set $acc (i32.add (local.get $acc) (i32.trunc_f32_s (f32.const 3.75))))
    (if (ref.is_null (ref.func $inc)) (then (unreachable)))
    (local.set $acc (i32.add (local.get $acc) (table.size 0)))
    (block $b2 (block $b1 (block $b0
      (br_table $b0 $b1 $b2 (i32.and (local.get $x) (i32.const 3))))
      (local.set $acc (i32.add (local.get $acc) (i32.const 1000))))
      (local.set $acc (i32.add (local.get $acc) (i32.const 2000))))
    (call $pair (local.get $acc))
    (i32.add))
  (elem declare func $inc))`
	mod, m := instance(t, wasmfixture.WAT(t, src))
	m.Start(context.Background(), 1<<20, 0)
	res, err := mod.ExportedFunction("run").Call(context.Background(), 1)
	m.Stop()
	if err != nil {
		t.Fatal(err)
	}
	// lane 1 = 1000+2, lane 2 = 0x07070707+3, call_indirect 2, trunc_sat 2,
	// extend8_s -1, select 10, trunc 3, table.size 2, br_table(1) 2000;
	// then $pair: acc + acc+100.
	acc := int32(1002+0x07070707+3) + 2 + 2 - 1 + 10 + 3 + 2 + 2000
	if want := 2*acc + 100; int32(res[0]) != want {
		t.Errorf("run(1) = %d, want %d", int32(res[0]), want)
	}
}

func TestInstrumentRefuses(t *testing.T) {
	// A function body with return_call (tail calls, not WebAssembly 2.0).
	tail := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0, // type: () -> ()
		3, 2, 1, 0, // one function of type 0
		10, 6, 1, 4, 0, 0x12, 0, 0x0b} // body: return_call 0
	// A body naming global 0 of a module without globals.
	global := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0,
		3, 2, 1, 0,
		10, 7, 1, 5, 0, 0x23, 0, 0x1a, 0x0b} // global.get 0, drop
	cases := []struct {
		name string
		wasm []byte
		want string
	}{
		{"not wasm", []byte("(module)"), "not a WebAssembly 1.0 binary"},
		{"tail call", tail, "opcode 0x12 is not WebAssembly 2.0"},
		{"foreign global", global, "global index 0"},
		{"reserved export", wasmfixture.WAT(t, `(module (global (export "fc_meter_limit") i32 (i32.const 0)))`), `exports "fc_meter_limit"`},
		{"truncated", tail[:len(tail)-2], "unexpected end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Instrument(tc.wasm, 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Instrument: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestMeterNeedsInstrumentation: New refuses a module Instrument did not
// produce.
func TestMeterNeedsInstrumentation(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, wasmfixture.WAT(t, loops))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(mod); err == nil || !strings.Contains(err.Error(), "not instrumented") {
		t.Fatalf("New: %v", err)
	}
}
