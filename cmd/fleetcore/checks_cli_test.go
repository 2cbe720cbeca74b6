package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesOnCheckFile: `rules inspect -wat` and `rules test` take a
// declarative check; a broken check exits 1 naming file, line and column.
func TestRulesOnCheckFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "speed.limit.check.hcl")
	src := "check \"speed.limit\" {\n  dimension = \"validity\"\n  fail_if   = \"speed > 200\"\n  warn_if   = \"speed > 160\"\n}\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runCaptured(t, "rules", "inspect", p, "-wat")
	if code != 0 || !strings.Contains(out, "declarative check") || !strings.Contains(out, "(func $fc_check") {
		t.Fatalf("inspect: exit %d\n%s", code, out)
	}
	in := filepath.Join(dir, "signals.jsonl")
	lines := `{"device_id":"a","ts":"2026-01-01T00:00:00Z","speed":250}` + "\n" +
		`{"device_id":"a","ts":"2026-01-01T00:00:01Z","speed":170}` + "\n" +
		`{"device_id":"a","ts":"2026-01-01T00:00:02Z","speed":20}` + "\n"
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = runCaptured(t, "rules", "test", p, "-input", in, "-cache-dir", "")
	if code != 0 || strings.Count(out, `"status":"fail"`) != 1 || strings.Count(out, `"status":"warn"`) != 1 || strings.Count(out, `"status":"pass"`) != 1 {
		t.Fatalf("test: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(src, "speed > 200", "speed >> 200", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = runCaptured(t, "rules", "inspect", p)
	if code != 1 || !strings.Contains(out, "speed.limit.check.hcl:3:") {
		t.Fatalf("broken check: exit %d\n%s", code, out)
	}
}
