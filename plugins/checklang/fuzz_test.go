package checklang_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetcore/fleetcore/plugins/checklang"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

// fuzzAgainstInterpreter loads a compiled check in the host (it must be a
// valid ABI module) and compares it with the interpreter on a small batch.
func fuzzAgainstInterpreter(t *testing.T, h *wasmrule.Host, c *checklang.Check) {
	m, err := c.Compile()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := h.Compile(ctx, m.Wasm)
	if err != nil {
		t.Fatalf("generated module refused: %v", err)
	}
	defer r.Close(ctx)
	in := randBatch(rand.New(rand.NewPCG(uint64(len(m.Wasm)), 9)), 16)
	v, err := r.Check(ctx, in)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for i := range in {
		fields, attrs := fieldsOf(in[i])
		st, reason := c.Eval(fields, attrs, float64(in[i].Now.UnixMilli()))
		if v[i] != (wasmrule.Verdict{Status: wasmrule.Status(st), Reason: reason}) {
			t.Fatalf("signal %d: module %v, interpreter %d/%d", i, v[i], st, reason)
		}
	}
}

// FuzzExpression: any fail_if text is refused with an error or compiles to
// a valid module that agrees with the interpreter; never a panic.
func FuzzExpression(f *testing.F) {
	for _, s := range []string{"speed > 200", "not between(lat, -90, 90) or abs(lon) > 180",
		"dt_s() > 0 and distance_m() / dt_s() * 3.6 > 300", "is_missing(fuel) and ignition == 1",
		"((((speed))))+-1 != max(rpm, min(fuel, 0)) / 3", "age_s() > 3600", "speed / 0 > 1", "1e999 > speed"} {
		f.Add(s)
	}
	h := newHost(f)
	f.Fuzz(func(t *testing.T, expr string) {
		src := "check \"fuzz.x\" {\n dimension = \"validity\"\n attrs = [\"ignition\"]\n fail_if = <<-EXPR\n" + expr + "\nEXPR\n}\n"
		cs, err := checklang.ParseFile("fuzz.check.hcl", []byte(src))
		if err != nil {
			return
		}
		fuzzAgainstInterpreter(t, h, cs[0])
	})
}

// FuzzCheckFile: any check file is refused with an error or compiles;
// never a panic. (Module validity under wazero is FuzzExpression's job:
// compiling every mutated file there makes this target too slow to find
// anything in the 5 s of CI.)
func FuzzCheckFile(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.check.hcl")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		m, err := checklang.CompileFile("fuzz.check.hcl", src)
		if err != nil {
			return
		}
		if !json.Valid(m.Meta) || !bytes.HasPrefix(m.Wasm, []byte("\x00asm\x01\x00\x00\x00")) {
			t.Fatalf("bad module: meta %q", m.Meta)
		}
	})
}
