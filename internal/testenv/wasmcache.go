package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// WasmCache is a compile cache folder for WebAssembly rules and decoders
// that the tests of every package share, and that outlives the run:
// wazero keys its entries by the module's bytes and its own version, so a
// hit is always the same machine code, and only the first test of the
// first run pays for compiling the built-in rules (under -race, on two
// busy cores, that alone took minutes). A test that is about a cold cache
// uses a t.TempDir() of its own instead.
func WasmCache(t testing.TB) string {
	t.Helper()
	// The folder core/rules' tests use too.
	dir := filepath.Join(os.TempDir(), "fleetcore-test-wasm-cache-"+strconv.Itoa(os.Getuid()))
	if d, err := os.UserCacheDir(); err == nil {
		dir = filepath.Join(d, "fleetcore", "test-wasm-cache")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("wasm compile cache: %v", err)
	}
	return dir
}
