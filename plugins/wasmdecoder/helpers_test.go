package wasmdecoder

import (
	"context"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
)

// testBudget is the per-call budget of tests that are not about timeouts:
// the machine running them may be busy, and a correct call must not time
// out there.
const testBudget = 5 * time.Second

// examplePath is the WAT worked example of the ABI.
const examplePath = "../../protocols/wasm/examples/wat/acme.wat"

func exampleWasm(t testing.TB) []byte {
	t.Helper()
	return wasmfixture.WATFile(t, examplePath)
}

func newHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func load(t testing.TB, h *Host, name string, wasm []byte) *Module {
	t.Helper()
	m, err := h.Load(context.Background(), name, wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}
