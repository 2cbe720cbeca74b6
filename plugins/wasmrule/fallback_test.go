package wasmrule

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestDirFallback: a missing folder, then an empty one, serves the
// fallback's rules (named label/FILE); once the folder holds a rule file
// that file is the rule set (the fallback's rule is closed); when the
// folder is empty again the fallback serves again. Without a fallback a
// missing folder is still an error.
func TestDirFallback(t *testing.T) {
	ctx := context.Background()
	logs := &syncBuffer{}
	h := newTestHost(t, Config{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})})
	folder := filepath.Join(t.TempDir(), "rules")
	if err := NewDir(h, folder, time.Hour).Scan(ctx); err == nil {
		t.Fatal("a missing folder without a fallback scanned without error")
	}
	fb := fstest.MapFS{"speed.wasm": {Data: speedRangeVersion(t, "0.9.0")}, "README.md": {Data: []byte("not a rule")}}
	d := NewDir(h, folder, time.Hour).WithFallback(fb, "built-in")
	defer d.Close(ctx)
	want := func(file, version string, fallback bool) *Rule {
		t.Helper()
		if err := d.Scan(ctx); err != nil {
			t.Fatal(err)
		}
		st := d.Status()
		if len(st) != 1 || st[0].File != file || st[0].Version != version || st[0].Status != "live" || d.UsingFallback() != fallback {
			t.Fatalf("status %+v (fallback %v), want %s %s live (fallback %v)", st, d.UsingFallback(), file, version, fallback)
		}
		return d.Rule("example.speed_range")
	}
	builtin := want("built-in/speed.wasm", "0.9.0", true) // folder missing
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(folder, "notes.txt"), []byte("no rule"))
	if r := want("built-in/speed.wasm", "0.9.0", true); r != builtin { // empty of rules: unchanged
		t.Fatal("the fallback rule was reloaded by a scan that changed nothing")
	}
	writeFile(t, filepath.Join(folder, "mine.wasm"), speedRangeVersion(t, "1.0.0"))
	want("mine.wasm", "1.0.0", false)
	if _, err := builtin.Check(ctx, speeds(1)); KindOf(err) != KindClosed {
		t.Errorf("the fallback rule still serves after the folder got a rule: %v", err)
	}
	if err := os.Remove(filepath.Join(folder, "mine.wasm")); err != nil {
		t.Fatal(err)
	}
	want("built-in/speed.wasm", "0.9.0", true)
	out := logs.String()
	for _, w := range []string{"serving the built-in rules", "rule folder has rule files"} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
}

// TestDirScanCompilesInParallel: many changed files are compiled in one
// scan, every one goes live, and when two files have the same rule name
// the first by file name wins whatever order they compiled in.
func TestDirScanCompilesInParallel(t *testing.T) {
	ctx := context.Background()
	h := newTestHost(t, Config{})
	folder := t.TempDir()
	for _, v := range []string{"1.0.1", "1.0.2", "1.0.3", "1.0.4"} {
		writeFile(t, filepath.Join(folder, "v"+v+".wasm"), speedRangeVersion(t, v))
	}
	d := NewDir(h, folder, time.Hour)
	defer d.Close(ctx)
	if err := d.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if r := d.Rule("example.speed_range"); r == nil || r.Version() != "1.0.1" {
		t.Fatalf("live %v, want the first file's version 1.0.1; %+v", r, d.Status())
	}
	refused := 0
	for _, s := range d.Status() {
		if s.Status == "refused" && strings.Contains(s.Refused, "already served by v1.0.1.wasm") {
			refused++
		}
	}
	if refused != 3 {
		t.Fatalf("want the 3 later files refused for the name clash: %+v", d.Status())
	}
}
