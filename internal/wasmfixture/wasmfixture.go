// Package wasmfixture builds the WebAssembly modules tests run through the
// rule host, in one place: Go guests (the built-in rules of
// checks-wasm/rules, or any main package) compiled for wasip1 exactly as
// `make rules` does, WebAssembly text assembled with wabt's wat2wasm, and
// AssemblyScript sources compiled with the example's asc.
//
// Each distinct fixture is built once per test binary (concurrent callers
// wait for the one build; each gets its own copy) in a temporary directory
// removed after the build, and the Go build cache makes a rebuild in the
// next test binary cheap. Without the go tool, wat2wasm or asc a fixture
// fails its test and says how to get the tool.
package wasmfixture

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// fixture is one build, done once.
type fixture struct {
	once sync.Once
	wasm []byte
	err  error
}

var (
	mu       sync.Mutex
	fixtures = map[string]*fixture{}
	rootOnce sync.Once
	root     string
	rootErr  error
)

// once runs build for key the first time and returns its result every time.
func once(key string, build func(out string) error) ([]byte, error) {
	mu.Lock()
	f := fixtures[key]
	if f == nil {
		f = &fixture{}
		fixtures[key] = f
	}
	mu.Unlock()
	f.once.Do(func() {
		// Each build gets its own directory, removed once the module is
		// read: fixtures live in memory, nothing is left on disk.
		d, err := os.MkdirTemp("", "fleetcore-wasmfixture-")
		if err != nil {
			f.err = fmt.Errorf("making a build directory: %w", err)
			return
		}
		defer os.RemoveAll(d)
		out := filepath.Join(d, "fixture.wasm")
		if f.err = build(out); f.err == nil {
			f.wasm, f.err = os.ReadFile(out)
		}
	})
	// A copy, so that a test may corrupt its module without touching
	// anyone else's.
	return bytes.Clone(f.wasm), f.err
}

// ModuleRoot is the directory of fleetcore's go.mod, found upwards from
// the working directory (a test's package directory).
func ModuleRoot() (string, error) {
	rootOnce.Do(func() {
		d, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				root = d
				return
			}
			up := filepath.Dir(d)
			if up == d {
				rootErr = errors.New("finding the module root: no go.mod above the working directory")
				return
			}
			d = up
		}
	})
	return root, rootErr
}

// GoBuild builds the main package at pkg (a path relative to the module
// root, e.g. "checks-wasm/rules/gps.range") for wasip1 as a reactor
// (-buildmode=c-shared -trimpath, as `make rules` does). overlay replaces
// files of the build (absolute source path → new contents), as
// `go build -overlay` does; nil builds the sources as they are.
func GoBuild(pkg string, overlay map[string][]byte) ([]byte, error) {
	key := "go:" + pkg
	paths := make([]string, 0, len(overlay))
	for p := range overlay {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		sum := sha256.Sum256(overlay[p])
		key += "|" + p + "=" + hex.EncodeToString(sum[:])
	}
	return once(key, func(out string) error {
		goBin, err := exec.LookPath("go")
		if err != nil {
			return fmt.Errorf("finding the go tool (it builds the Go guests): %w", err)
		}
		r, err := ModuleRoot()
		if err != nil {
			return err
		}
		args := []string{"build", "-buildmode=c-shared", "-trimpath", "-o", out}
		if len(overlay) > 0 {
			replace := map[string]string{}
			for i, p := range paths {
				f := fmt.Sprintf("%s.overlay%d%s", out, i, filepath.Ext(p))
				if err := os.WriteFile(f, overlay[p], 0o644); err != nil {
					return fmt.Errorf("writing an overlay file: %w", err)
				}
				replace[p] = f
			}
			ov, err := json.Marshal(map[string]map[string]string{"Replace": replace})
			if err != nil {
				return fmt.Errorf("encoding the overlay: %w", err)
			}
			if err := os.WriteFile(out+".overlay.json", ov, 0o644); err != nil {
				return fmt.Errorf("writing the overlay: %w", err)
			}
			args = append(args, "-overlay", out+".overlay.json")
		}
		cmd := exec.Command(goBin, append(args, "./"+filepath.ToSlash(pkg))...)
		cmd.Dir = r
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s for wasip1: %w\n%s", pkg, err, msg)
		}
		return nil
	})
}

// Go is GoBuild for a test: a failed build fails it.
func Go(t testing.TB, pkg string, overlay map[string][]byte) []byte {
	t.Helper()
	b, err := GoBuild(pkg, overlay)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Rule is the built-in rule checks-wasm/rules/<name>, built for wasip1.
func Rule(t testing.TB, name string) []byte {
	t.Helper()
	return Go(t, "checks-wasm/rules/"+name, nil)
}

// Assemble assembles WebAssembly text with wabt's wat2wasm.
func Assemble(src []byte) ([]byte, error) {
	sum := sha256.Sum256(src)
	return once("wat:"+hex.EncodeToString(sum[:]), func(out string) error {
		bin, err := exec.LookPath("wat2wasm")
		if err != nil {
			return fmt.Errorf("wat2wasm not found: install wabt (apt-get install -y wabt, or `make rules-tools`): %w", err)
		}
		in := out + ".wat"
		if err := os.WriteFile(in, src, 0o644); err != nil {
			return fmt.Errorf("writing the module text: %w", err)
		}
		if msg, err := exec.Command(bin, in, "-o", out).CombinedOutput(); err != nil {
			return fmt.Errorf("wat2wasm: %w\n%s", err, msg)
		}
		return nil
	})
}

// WAT is Assemble for a test: a failure fails it.
func WAT(t testing.TB, src string) []byte {
	t.Helper()
	b, err := Assemble([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WATFile assembles the WebAssembly text file at path (relative to the
// test's package directory, or absolute).
func WATFile(t testing.TB, path string) []byte {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return WAT(t, string(src))
}

// ASCompilerDir is the npm project (relative to the module root) whose
// AssemblyScript compiler builds every AssemblyScript guest: the
// example's, installed by `make rules-tools` (npm ci).
const ASCompilerDir = "checks-wasm/examples/assemblyscript"

// ASBuild compiles the AssemblyScript source at src (a path relative to
// the module root) with the example's compiler and the options of its
// build script (--optimize --runtime stub --use abort=), as `make rules`
// builds the example.
func ASBuild(src string) ([]byte, error) {
	return once("as:"+src, func(out string) error {
		r, err := ModuleRoot()
		if err != nil {
			return err
		}
		asc := filepath.Join(r, ASCompilerDir, "node_modules", ".bin", "asc")
		if _, err := os.Stat(asc); err != nil {
			return fmt.Errorf("AssemblyScript compiler missing: run `make rules-tools` (npm ci in %s): %w", ASCompilerDir, err)
		}
		cmd := exec.Command(asc, filepath.FromSlash(src), "--outFile", out, "--optimize", "--runtime", "stub", "--use", "abort=")
		cmd.Dir = r
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("asc %s: %w\n%s", src, err, msg)
		}
		return nil
	})
}

// AS is ASBuild for a test: a failed build fails it.
func AS(t testing.TB, src string) []byte {
	t.Helper()
	b, err := ASBuild(src)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
