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

// ASFlags are the AssemblyScript compiler flags of every decoder guest, the
// same in `make decoders` (mk/decoders_as.mk): optimised, the stub runtime
// (nothing is freed: the SDK allocates nothing per call), no bounds
// assertions, no abort import.
var ASFlags = []string{"-O3", "--runtime", "stub", "--noAssert", "--use", "abort="}

// ASSDK is the AssemblyScript SDK's folder, relative to the module root:
// its package.json pins the compiler the examples are built with.
const ASSDK = "protocols/wasm/sdk-as"

var npmMu sync.Mutex

// ASCompiler returns the path of the SDK's AssemblyScript compiler,
// installing it with `npm ci` (package-lock.json) when it is missing, as
// `make decoders` does.
func ASCompiler() (string, error) {
	r, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(r, filepath.FromSlash(ASSDK))
	asc := filepath.Join(dir, "node_modules", ".bin", "asc")
	npmMu.Lock()
	defer npmMu.Unlock()
	if _, err := os.Stat(asc); err == nil {
		return asc, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm not found: the AssemblyScript guests need Node.js and npm (apt-get install -y nodejs npm): %w", err)
	}
	// Test binaries run in parallel processes: each installs into a
	// directory of its own and renames its node_modules into place, so
	// two installs never write the same folder; the loser's copy is
	// dropped.
	tmp, err := os.MkdirTemp(dir, ".npm-ci-")
	if err != nil {
		return "", fmt.Errorf("installing the AssemblyScript compiler: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", fmt.Errorf("installing the AssemblyScript compiler: %w", err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			return "", fmt.Errorf("installing the AssemblyScript compiler: %w", err)
		}
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = tmp
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("installing the AssemblyScript compiler (npm ci for %s): %w\n%s", ASSDK, err, msg)
	}
	if err := os.Rename(filepath.Join(tmp, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
		if _, serr := os.Stat(asc); serr != nil {
			return "", fmt.Errorf("installing the AssemblyScript compiler: %w", err)
		}
	}
	return asc, nil
}

// ASBuild compiles the AssemblyScript entry file (relative to the module
// root, e.g. "protocols/wasm/examples/gt06_as/assembly/index.ts") with
// ASFlags. The fixture is keyed by the contents of the entry's folder and
// of the SDK, so an edited source is rebuilt.
func ASBuild(entry string) ([]byte, error) {
	r, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, dir := range []string{filepath.Dir(filepath.Join(r, filepath.FromSlash(entry))), filepath.Join(r, filepath.FromSlash(ASSDK), "assembly")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.ts"))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(h, "%s %d\n", f, len(b))
			h.Write(b)
		}
	}
	return once("as:"+entry+"|"+hex.EncodeToString(h.Sum(nil)), func(out string) error {
		asc, err := ASCompiler()
		if err != nil {
			return err
		}
		args := append([]string{filepath.Join(r, filepath.FromSlash(entry)), "--outFile", out}, ASFlags...)
		cmd := exec.Command(asc, args...)
		cmd.Dir = filepath.Join(r, filepath.FromSlash(ASSDK))
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("asc %s: %w\n%s", entry, err, msg)
		}
		return nil
	})
}

// AS is ASBuild for a test: a failed build fails it.
func AS(t testing.TB, entry string) []byte {
	t.Helper()
	b, err := ASBuild(entry)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
