package builtinrules

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// TestFSMatchesTheBuild checks that the embedded rules are the rules `make
// rules` built (checks-wasm/build/rules), byte for byte, and that FS
// behaves as an fs.FS. Without a build (plain go test) it checks that FS
// is empty rather than failing: the binary then has no built-in rules.
func TestFSMatchesTheBuild(t *testing.T) {
	built, _ := filepath.Glob("../build/rules/*.wasm")
	names := Names()
	if len(built) == 0 && len(names) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI: no built rules; run make rules")
		}
		t.Log("no rules built (make rules): FS is empty")
		return
	}
	if len(names) != len(built) {
		t.Fatalf("embedded %v, built %v: run make rules", names, built)
	}
	fsys := FS()
	for _, p := range built {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.ReadFile(fsys, filepath.Base(p))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: embedded copy differs from the build: run make rules", filepath.Base(p))
		}
		fi, err := fs.Stat(fsys, filepath.Base(p))
		if err != nil || fi.Size() != int64(len(want)) {
			t.Errorf("%s: stat %v, %v; want size %d", filepath.Base(p), fi, err, len(want))
		}
	}
	if err := fstest.TestFS(fsys, names...); err != nil {
		t.Error(err)
	}
}
