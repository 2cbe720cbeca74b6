package examples_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins/checklang"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

var fence = regexp.MustCompile("(?ms)^```(\\w+)\\n(.*?)^```")

// readmeBlock returns the first fenced block of checks-wasm/README.md in
// lang that contains marker.
func readmeBlock(t *testing.T, lang, marker string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range fence.FindAllSubmatch(b, -1) {
		if string(m[1]) == lang && strings.Contains(string(m[2]), marker) {
			return m[2]
		}
	}
	t.Fatalf("checks-wasm/README.md has no %s block with %q", lang, marker)
	return nil
}

// selfTested loads a rule module through the rule host as the server
// does (compile, metadata, self-tests) and checks its name.
func selfTested(t *testing.T, wasm []byte, name string, tests int) {
	t.Helper()
	ctx := context.Background()
	h, err := wasmrule.NewHost(wasmrule.Config{BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	r, err := h.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if r.Meta().Name != name || r.TestCount() != tests {
		t.Fatalf("rule %q with %d self-tests, want %q with %d", r.Meta().Name, r.TestCount(), name, tests)
	}
	if err := r.SelfTest(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// The guide's examples are code that works: the one-line check, the Go
// rule and the AssemblyScript rule of checks-wasm/README.md, exactly as
// written there, compile and pass their own self-tests.
func TestReadmeExamples(t *testing.T) {
	t.Run("check", func(t *testing.T) {
		src := readmeBlock(t, "hcl", `check "speed.limit"`)
		m, err := checklang.CompileFile("speed.limit.check.hcl", src)
		if err != nil {
			t.Fatal(err)
		}
		selfTested(t, m.Wasm, "speed.limit", 1)
	})
	t.Run("go", func(t *testing.T) {
		src := readmeBlock(t, "go", "sdk.Register(")
		root, err := wasmfixture.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		// Built in place of a built-in rule's main.go, as the README's
		// `go build` of its own folder would.
		main := filepath.Join(root, "checks-wasm", "rules", "gps.range", "main.go")
		selfTested(t, wasmfixture.Go(t, "checks-wasm/rules/gps.range", map[string][]byte{main: src}), "speed.limit", 3)
	})
	t.Run("assemblyscript", func(t *testing.T) {
		src := readmeBlock(t, "ts", "register(")
		// Its imports are relative to the example's assembly folder.
		entry := "checks-wasm/examples/assemblyscript/assembly/readme_snippet.ts"
		root, err := wasmfixture.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, filepath.FromSlash(entry))
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
		selfTested(t, wasmfixture.AS(t, entry), "speed.limit", 3)
	})
}
