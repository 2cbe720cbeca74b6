package sdk_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

func speeds(vs ...float64) []wasmrule.Input {
	in := make([]wasmrule.Input, len(vs))
	for i, v := range vs {
		s := signal.New("d", time.Unix(int64(i), 0))
		s.Speed = v
		in[i] = wasmrule.Input{Signal: s}
	}
	return in
}

// TestGoGuestContained: a Go guest's infinite loop, memory exhaustion and
// panic are each reported as not evaluated with the right kind (the panic
// message reaches the error), and the rule keeps working afterwards.
func TestGoGuestContained(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go WASM guest and runs it to its limits: skipped under -short")
	}
	wasm := wasmfixture.Go(t, "checks-wasm/sdk/testdata/hostile", nil)
	ctx := context.Background()
	cases := []struct {
		name   string
		mode   float64
		budget time.Duration
		kind   wasmrule.Kind
		msg    string
	}{
		{"infinite loop", -1, time.Second, wasmrule.KindTimeout, "longer than"},
		// Generous budget: the bomb must end on the memory limit, not the clock.
		{"allocation bomb", -2, time.Minute, wasmrule.KindMemory, "fatal error: out of memory"},
		{"panic", -3, time.Second, wasmrule.KindTrap, "panic: rule bug: speed -3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := wasmrule.NewHost(wasmrule.Config{MemoryLimitPages: 512, Budget: tc.budget, PoolSize: 1, MaxFailures: 100,
				CacheDir: filepath.Join(os.TempDir(), "fleetcore-wazero-test-cache")})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close(ctx)
			r, err := h.Compile(ctx, wasm)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close(ctx)
			_, err = r.Check(ctx, speeds(tc.mode, 1))
			if wasmrule.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v (kind %v), want kind %v mentioning %q", err, wasmrule.KindOf(err), tc.kind, tc.msg)
			}
			v, err := r.Check(ctx, speeds(1, 2))
			if err != nil || len(v) != 2 || v[0] != (wasmrule.Verdict{}) {
				t.Fatalf("after %s: %v %v", tc.name, v, err)
			}
		})
	}
}
