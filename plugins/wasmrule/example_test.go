package wasmrule_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

// Example loads the WAT example rule and checks two signals.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	wasmPath := filepath.Join(dir, "speed.wasm")
	if out, err := exec.Command("wat2wasm", "../../checks-wasm/examples/wat/speed_range.wat", "-o", wasmPath).CombinedOutput(); err != nil {
		fmt.Println("wat2wasm (install wabt):", err, string(out))
		return
	}
	wasm, _ := os.ReadFile(wasmPath)

	ctx := context.Background()
	host, _ := wasmrule.NewHost(wasmrule.Config{})
	defer host.Close(ctx)
	rule, err := host.Compile(ctx, wasm)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rule.Close(ctx)
	if err := rule.SelfTest(ctx, nil); err != nil {
		fmt.Println(err)
		return
	}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := signal.New("357073", now), signal.New("357073", now.Add(time.Second))
	a.Speed, b.Speed = 88, 412
	verdicts, err := rule.Check(ctx, wasmrule.Chain([]signal.Signal{a, b}, now))
	if err != nil {
		fmt.Println("not evaluated:", err)
		return
	}
	m := rule.Meta()
	for i, v := range verdicts {
		fmt.Printf("%s %s signal %d: %s %q\n", m.Name, m.Dimension, i, v.Status, m.ReasonText(v.Reason))
	}
	// Output:
	// example.speed_range validity signal 0: pass ""
	// example.speed_range validity signal 1: fail "speed above 300 km/h"
}
