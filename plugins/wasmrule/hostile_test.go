package wasmrule

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func newTestHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: hclog.DefaultOutput, Level: hclog.Warn, Name: t.Name()})
	}
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

func compile(t testing.TB, h *Host, wasm []byte) *Rule {
	t.Helper()
	r, err := h.Compile(context.Background(), wasm)
	if err != nil {
		t.Fatalf("compiling: %v", err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// TestHostileGuests runs every hostile behaviour and checks that it is
// reported as not evaluated with the right kind, never as a verdict, and
// that the next ordinary batch is evaluated correctly (the broken instance
// was replaced).
func TestHostileGuests(t *testing.T) {
	h := newTestHost(t, Config{Budget: time.Second, MemoryLimitPages: 64, PoolSize: 1, MaxFailures: 100})
	r := compile(t, h, wat2wasm(t, hostileSrc(t, nil)))
	cases := []struct {
		name string
		mode float64
		kind Kind
		msg  string
	}{
		{"infinite loop", -1, KindTimeout, "longer than"},
		{"memory bomb", -2, KindMemory, "memory at"},
		{"trap", -3, KindTrap, "unreachable"},
		{"status out of range", -4, KindBadVerdict, "status 7"},
		{"negative return", -5, KindBadReturn, "returned -1"},
		{"return above n", -6, KindBadReturn, "returned 4 for 3"},
		{"undeclared reason", -7, KindBadVerdict, "reason 9"},
		{"count mismatch", -8, KindBadReturn, "wrote 1 warn/fail"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := r.Stats()
			start := time.Now()
			v, err := r.Check(context.Background(), speeds(tc.mode, 1, 2))
			if err == nil {
				t.Fatalf("want an error, got verdicts %v", v)
			}
			if len(v) != 0 {
				t.Errorf("got %d verdicts with the error, want none", len(v))
			}
			if KindOf(err) != tc.kind || !NotEvaluated(err) {
				t.Fatalf("kind %v (not evaluated %v), want %v: %v", KindOf(err), NotEvaluated(err), tc.kind, err)
			}
			if !errors.Is(err, kindErrs[tc.kind]) {
				t.Errorf("errors.Is(%v, %v) = false", err, kindErrs[tc.kind])
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			if tc.kind == KindTimeout && time.Since(start) > 5*time.Second {
				t.Errorf("timeout took %v", time.Since(start))
			}
			after := r.Stats()
			if after.Failed != before.Failed+1 || after.Errors[tc.kind.String()] != before.Errors[tc.kind.String()]+1 {
				t.Errorf("stats not counted: before %+v after %+v", before, after)
			}
			// The next batch runs on a healthy instance.
			in := []float64{5, -3, math.NaN(), 0}
			got, err := r.Check(context.Background(), speeds(in...))
			if err != nil {
				t.Fatalf("ordinary batch after %s: %v", tc.name, err)
			}
			for i, v := range in {
				if want := wantSpeed(v, false); got[i] != want {
					t.Errorf("signal %d: got %+v, want %+v", i, got[i], want)
				}
			}
		})
	}
}

// TestRefusedModules checks that modules breaking the ABI are refused at
// load with KindInvalid and a clear reason.
func TestRefusedModules(t *testing.T) {
	h := newTestHost(t, Config{MemoryLimitPages: 64})
	cases := []struct {
		name string
		over map[string]string
		msg  string
	}{
		{"wrong ABI version", map[string]string{"ABI": "2"}, "fc_abi returned 2, want 1"},
		{"missing export", map[string]string{"CHECK": "fc_chek"}, "does not export fc_check"},
		{"foreign import", map[string]string{"IMPORT": `(import "env" "now" (func (result i64)))`}, "imports env.now"},
		{"memory above limit", map[string]string{"MEM": "100"}, "memory"},
		{"bad dimension", map[string]string{"META": strings.Replace(hostileMeta, "validity", "vibes", 1)}, `dimension "vibes"`},
		{"unknown field", map[string]string{"META": strings.Replace(hostileMeta, `"speed"`, `"velocity"`, 1)}, `field "velocity"`},
		{"bad severity", map[string]string{"META": strings.Replace(hostileMeta, `"info"`, `"fatal"`, 1)}, `severity "fatal"`},
		{"unknown key", map[string]string{"META": strings.Replace(hostileMeta, `"attrs"`, `"atrs"`, 1)}, `unknown field "atrs"`},
		{"meta outside memory", map[string]string{"META_PTR": "4000000"}, "outside memory"},
		{"truncated meta", map[string]string{"META_LEN": "20"}, "decoding metadata JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := h.Compile(context.Background(), wat2wasm(t, hostileSrc(t, tc.over)))
			if err == nil {
				r.Close(context.Background())
				t.Fatal("module was accepted")
			}
			if KindOf(err) != KindInvalid || !errors.Is(err, ErrInvalidModule) || NotEvaluated(err) {
				t.Errorf("kind %v, want invalid: %v", KindOf(err), err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
	t.Run("not wasm", func(t *testing.T) {
		if _, err := h.Compile(context.Background(), []byte("\x00asm garbage")); KindOf(err) != KindInvalid {
			t.Errorf("got %v, want an invalid-module error", err)
		}
	})
	t.Run("wrong signature", func(t *testing.T) {
		src := strings.Replace(hostileSrc(t, nil), `(func (export "fc_abi") (result i32)`, `(func (export "fc_abi") (result i64)`, 1)
		src = strings.Replace(src, `(i32.const 1))`, `(i64.const 1))`, 1)
		_, err := h.Compile(context.Background(), wat2wasm(t, src))
		if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "signature") {
			t.Errorf("got %v, want a signature error", err)
		}
	})
}

// TestDisableAfterFailures checks the consecutive-failure counter: a
// success resets it, MaxFailures in a row disable the rule with one alert,
// and a disabled rule refuses batches until enabled.
func TestDisableAfterFailures(t *testing.T) {
	var mu sync.Mutex
	var alerts []Alert
	h := newTestHost(t, Config{MaxFailures: 3, OnAlert: func(a Alert) {
		mu.Lock()
		alerts = append(alerts, a)
		mu.Unlock()
	}})
	r := compile(t, h, wat2wasm(t, hostileSrc(t, nil)))
	ctx := context.Background()
	trap := func() {
		t.Helper()
		if _, err := r.Check(ctx, speeds(-3)); KindOf(err) != KindTrap {
			t.Fatalf("want a trap, got %v", err)
		}
	}
	ok := func() {
		t.Helper()
		if _, err := r.Check(ctx, speeds(1)); err != nil {
			t.Fatalf("want success, got %v", err)
		}
	}
	trap()
	trap()
	ok() // resets the run
	trap()
	trap()
	if r.Disabled() || len(alerts) != 0 {
		t.Fatalf("disabled after 2 consecutive failures (alerts %v)", alerts)
	}
	trap()
	if !r.Disabled() {
		t.Fatal("not disabled after 3 consecutive failures")
	}
	mu.Lock()
	if len(alerts) != 1 || alerts[0].Rule != "test.hostile" || alerts[0].Failures != 3 || alerts[0].Kind != KindTrap ||
		!strings.Contains(alerts[0].Message, "unreachable") {
		t.Fatalf("alerts = %+v", alerts)
	}
	mu.Unlock()
	if _, err := r.Check(ctx, speeds(1)); KindOf(err) != KindDisabled || !errors.Is(err, ErrDisabled) {
		t.Fatalf("disabled rule: got %v", err)
	}
	st := r.Stats()
	if !st.Disabled || st.Failed != 5 || st.Errors["trap"] != 5 || st.Batches != 1 {
		t.Errorf("stats %+v", st)
	}
	r.Enable()
	ok()
	if len(alerts) != 1 {
		t.Errorf("alerts after enable: %d", len(alerts))
	}
}

// TestCanceledNotCounted: a caller's cancellation is not the rule's fault.
func TestCanceledNotCounted(t *testing.T) {
	h := newTestHost(t, Config{Budget: 10 * time.Second, MaxFailures: 1})
	r := compile(t, h, wat2wasm(t, hostileSrc(t, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := r.Check(ctx, speeds(-1)) // loops until the caller's deadline
	if KindOf(err) != KindCanceled {
		t.Fatalf("got %v, want canceled", err)
	}
	if r.Disabled() || r.Stats().Failed != 0 {
		t.Errorf("cancellation counted as a failure: %+v", r.Stats())
	}
	if _, err := r.Check(context.Background(), speeds(1)); err != nil {
		t.Errorf("after cancellation: %v", err)
	}
}
