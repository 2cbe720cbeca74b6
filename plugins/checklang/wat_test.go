package checklang_test

import (
	"bytes"
	"testing"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
)

// TestWATDump: the text `rules inspect -wat` prints is the module: wabt's
// wat2wasm assembles it to the same bytes the encoder emitted.
func TestWATDump(t *testing.T) {
	for _, eq := range equivalents {
		_, m := compileFile(t, eq.check)
		got := wasmfixture.WAT(t, m.WAT())
		if !bytes.Equal(got, m.Wasm) {
			t.Errorf("%s: wat2wasm of the dump is %d bytes, the module %d (first difference at %d)", eq.check, len(got), len(m.Wasm), firstDiff(got, m.Wasm))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
