package wasmfixture

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

func TestAssembleOnce(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("wat2wasm is required in CI (make rules installs wabt)")
		}
		t.Skip("wat2wasm not installed")
	}
	src := `(module (func (export "f") (result i32) i32.const 7))`
	a := WAT(t, src)
	if !bytes.HasPrefix(a, []byte("\x00asm")) {
		t.Fatalf("not a WebAssembly module: % x", a[:min(8, len(a))])
	}
	n := len(fixtures)
	if b := WAT(t, src); !bytes.Equal(a, b) || len(fixtures) != n {
		t.Error("the same text was assembled twice")
	}
	a[0] = 'X' // a test's copy is its own
	if b := WAT(t, src); b[0] != 0 {
		t.Error("a caller's change reached the cached module")
	}
	if c := WAT(t, `(module)`); bytes.Equal(a, c) {
		t.Error("different texts gave the same module")
	}
	if _, err := Assemble([]byte("(module (func (oops")); err == nil {
		t.Error("bad text assembled")
	}
}

func TestModuleRoot(t *testing.T) {
	r, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output(); err != nil || string(bytes.TrimSpace(out)) != r {
		t.Errorf("ModuleRoot = %s, go list -m says %s (%v)", r, out, err)
	}
}

func TestASBuild(t *testing.T) {
	const entry = "protocols/wasm/examples/gt06_as/assembly/index.ts"
	a := AS(t, entry)
	if !bytes.HasPrefix(a, []byte("\x00asm")) {
		t.Fatalf("not a WebAssembly module: % x", a[:min(8, len(a))])
	}
	n := len(fixtures)
	if b := AS(t, entry); !bytes.Equal(a, b) || len(fixtures) != n {
		t.Error("the same sources were compiled twice")
	}
	if _, err := ASBuild("protocols/wasm/examples/none_as/assembly/index.ts"); err == nil {
		t.Error("a missing entry compiled")
	}
}
