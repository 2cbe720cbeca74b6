package examples_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

func buildWAT(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatalf("wat2wasm not found: install wabt (apt-get install -y wabt, or `make rules-tools`)")
	}
	out := filepath.Join(t.TempDir(), "example.speed_range.wasm")
	if msg, err := exec.Command(bin, "wat/speed_range.wat", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, msg)
	}
	return out
}

// buildAS runs the package's build script with the output redirected.
func buildAS(t *testing.T) string {
	t.Helper()
	dir := "assemblyscript"
	asc := filepath.Join(dir, "node_modules", ".bin", "asc")
	if _, err := os.Stat(asc); err != nil {
		if testing.Short() {
			t.Skipf("AssemblyScript compiler missing (%v): skipped under -short", err)
		}
		t.Fatalf("AssemblyScript compiler missing (%v): run `make rules` (npm ci in checks-wasm/examples/assemblyscript)", err)
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	args := strings.Fields(pkg.Scripts["build"])
	if len(args) < 2 || args[0] != "asc" {
		t.Fatalf("unexpected build script %q", pkg.Scripts["build"])
	}
	out, err := filepath.Abs(filepath.Join(t.TempDir(), "example.obd_plausibility.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range args {
		if args[i] == "--outFile" && i+1 < len(args) {
			args[i+1] = out
		}
	}
	cmd := exec.Command(filepath.Join("node_modules", ".bin", "asc"), args[1:]...)
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("asc: %v\n%s", err, msg)
	}
	return out
}

func TestExamples(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name  string
		build func(*testing.T) string
		rule  string
		field signal.Field
		vals  []float64
		want  []wasmrule.Verdict
	}{
		{"wat", buildWAT, "example.speed_range", signal.FieldSpeed,
			[]float64{0, 120, 300, 300.1, -0.5, nan},
			[]wasmrule.Verdict{{}, {}, {}, {Status: wasmrule.StatusFail, Reason: 2}, {Status: wasmrule.StatusFail, Reason: 1}, {Status: wasmrule.StatusNotApplicable}}},
	}
	ctx := context.Background()
	h, err := wasmrule.NewHost(wasmrule.Config{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.build(t)
			wasm, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := h.Compile(ctx, wasm)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close(ctx)
			if r.Name() != tc.rule || r.TestCount() < 4 {
				t.Fatalf("loaded %s with %d tests", r.Name(), r.TestCount())
			}
			if err := r.SelfTest(ctx, nil); err != nil {
				t.Fatal(err)
			}
			in := make([]wasmrule.Input, len(tc.vals))
			for i, v := range tc.vals {
				s := signal.New("d", time.Unix(int64(i), 0))
				s.SetNumber(tc.field, v)
				in[i] = wasmrule.Input{Signal: s}
			}
			// Twice: the second run reuses the instance and its buffer.
			for round := 0; round < 2; round++ {
				got, err := r.Check(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("value %v: got %+v, want %+v", tc.vals[i], got[i], tc.want[i])
					}
				}
			}
			var out strings.Builder
			if err := wasmrule.Inspect(ctx, path, &out); err != nil || !strings.Contains(out.String(), "imports:      (none)") {
				t.Errorf("inspect: %v\n%s", err, out.String())
			}
		})
	}
}
