package checklang_test

import (
	"context"
	"os"
	"testing"

	"github.com/fleetcore/fleetcore/plugins/checklang"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

func TestSmoke(t *testing.T) {
	src, _ := os.ReadFile("testdata/speed.limit.check.hcl")
	m, err := checklang.CompileFile("testdata/speed.limit.check.hcl", src)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(len(m.Wasm), string(m.Meta))
	h, err := wasmrule.NewHost(wasmrule.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Compile(context.Background(), m.Wasm)
	if err != nil {
		t.Log(m.WAT())
		t.Fatal(err)
	}
	if err := r.SelfTest(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}
