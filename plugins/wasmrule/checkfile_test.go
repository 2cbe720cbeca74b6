package wasmrule

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func speedCheck(limit, version string) []byte {
	return []byte(`check "speed.limit" {
  version   = "` + version + `"
  dimension = "validity"
  fail_if   = "speed > ` + limit + `"
  reason    = "speed over ` + limit + ` km/h"
}
`)
}

// TestDirCheckFiles: a .check.hcl in the rules folder is compiled, goes
// live next to .wasm rules, is replaced when it changes, runs its sibling
// tests file, and a broken version is refused (with file, line and column)
// while the previous one keeps running.
func TestDirCheckFiles(t *testing.T) {
	ctx := context.Background()
	logs := &syncBuffer{}
	h := newTestHost(t, Config{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})})
	dir := t.TempDir()
	d := NewDir(h, dir, time.Hour)
	defer d.Close(ctx)
	scan := func() {
		t.Helper()
		if err := d.Scan(ctx); err != nil {
			t.Fatal(err)
		}
	}
	verdict := func(speed float64) Verdict {
		t.Helper()
		r := d.Rule("speed.limit")
		if r == nil {
			t.Fatalf("no live speed.limit: %+v", d.Status())
		}
		v, err := r.Check(ctx, speeds(speed))
		if err != nil {
			t.Fatal(err)
		}
		return v[0]
	}
	p := filepath.Join(dir, "speed.limit.check.hcl")
	writeFile(t, p, speedCheck("200", "1.0.0"))
	writeFile(t, filepath.Join(dir, "speed.wasm"), speedRange(t))
	scan()
	if len(d.Rules()) != 2 {
		t.Fatalf("want the check and the wasm rule live: %+v", d.Status())
	}
	if v := verdict(250); v != (Verdict{Status: StatusFail, Reason: 1}) {
		t.Fatalf("250 km/h: %v", v)
	}
	if v := verdict(150); v.Status != StatusPass {
		t.Fatalf("150 km/h: %v", v)
	}

	// Changed: the new limit goes live.
	writeFile(t, p, speedCheck("120", "1.1.0"))
	future := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(p, future, future)
	scan()
	if r := d.Rule("speed.limit"); r.Version() != "1.1.0" || verdict(150).Status != StatusFail {
		t.Fatalf("changed check not live: %+v", d.Status())
	}

	// Broken: refused with a position, 1.1.0 keeps running.
	writeFile(t, p, []byte("check \"speed.limit\" {\n  dimension = \"validity\"\n  fail_if = \"sped > 1\"\n}\n"))
	future = future.Add(2 * time.Second)
	_ = os.Chtimes(p, future, future)
	scan()
	var st RuleStatus
	for _, s := range d.Status() {
		if s.File == "speed.limit.check.hcl" {
			st = s
		}
	}
	if st.Status != "live" || st.Version != "1.1.0" || !strings.Contains(st.Refused, "speed.limit.check.hcl:3:14: fail_if: unknown field \"sped\"") {
		t.Fatalf("broken check: %+v", st)
	}
	if !strings.Contains(logs.String(), "previous version keeps running") {
		t.Fatalf("refusal not logged: %s", logs.String())
	}

	// A failing sibling tests file refuses the check.
	writeFile(t, p, speedCheck("200", "1.2.0"))
	writeFile(t, filepath.Join(dir, "speed.limit"+TestsSuffix), []byte(`{"name":"slow","in":{"speed":250},"want":"pass"}`+"\n"))
	future = future.Add(2 * time.Second)
	_ = os.Chtimes(p, future, future)
	scan()
	if r := d.Rule("speed.limit"); r.Version() != "1.1.0" {
		t.Fatalf("check with a failing tests file went live: %+v", d.Status())
	}

	// Removed.
	_ = os.Remove(p)
	scan()
	if d.Rule("speed.limit") != nil {
		t.Fatal("removed check still live")
	}
}

// TestToolsOnCheckFiles: Test and Inspect take a check file.
func TestToolsOnCheckFiles(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "speed.limit.check.hcl")
	writeFile(t, p, speedCheck("200", "1.0.0"))
	var out bytes.Buffer
	if err := InspectWith(ctx, p, &out, InspectOptions{WAT: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"source:       declarative check", "imports:      (none)", `"name": "speed.limit"`, "(func $fc_check", "f64.gt"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("inspect output lacks %q:\n%s", want, out.String())
		}
	}
	in := `{"device_id":"a","ts":"2026-01-01T00:00:00Z","speed":250}` + "\n" + `{"device_id":"a","ts":"2026-01-01T00:00:01Z","speed":20}` + "\n"
	out.Reset()
	sum, err := Test(ctx, p, strings.NewReader(in), &out, TestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum["fail"] != 1 || sum["pass"] != 1 {
		t.Fatalf("summary %v, output %s", sum, out.String())
	}
	writeFile(t, p, []byte("check \"a\" {\n  dimension = \"validity\"\n  fail_if = \"speed >\"\n}\n"))
	if err := Inspect(ctx, p, &out); err == nil || !strings.Contains(err.Error(), "speed.limit.check.hcl:3:") {
		t.Fatalf("inspect of a broken check: %v", err)
	}
}

// TestDirAddModule: a rule that is not a file (a check of the config)
// stays live across scans and wins its name over a file of the folder.
func TestDirAddModule(t *testing.T) {
	ctx := context.Background()
	h := newTestHost(t, Config{})
	dir := t.TempDir()
	d := NewDir(h, dir, time.Hour)
	defer d.Close(ctx)
	wasm, err := ModuleBytes("x"+CheckSuffix, speedCheck("100", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddModule(ctx, "fleet.hcl: check speed.limit", wasm); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "speed.limit.check.hcl"), speedCheck("200", "2.0.0"))
	if err := d.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	r := d.Rule("speed.limit")
	if r == nil || r.Version() != "1.0.0" {
		t.Fatalf("config check not live: %+v", d.Status())
	}
	var refused string
	for _, s := range d.Status() {
		if s.File == "speed.limit.check.hcl" {
			refused = s.Refused
		}
	}
	if !strings.Contains(refused, "already served by fleet.hcl: check speed.limit") {
		t.Fatalf("file not refused for the name clash: %q", refused)
	}
	if err := d.AddModule(ctx, "fleet.hcl: check speed.limit", wasm); err == nil {
		t.Fatal("same source added twice")
	}
	bad, _ := ModuleBytes("x"+CheckSuffix, []byte("check \"other.x\" {\n dimension = \"validity\"\n fail_if = \"speed > 1\"\n test \"t\" {\n  in = { speed = 5 }\n  want = \"pass\"\n }\n}\n"))
	if err := d.AddModule(ctx, "fleet.hcl: check other.x", bad); err == nil || d.Rule("other.x") != nil {
		t.Fatalf("a check failing its self-test went live: %v", err)
	}
}

// TestReasonPlaceholders: {field} and {attr} placeholders of a reason are
// filled with the values the rule saw; unknown names and other braces stay.
func TestReasonPlaceholders(t *testing.T) {
	m, err := ParseMeta([]byte(`{"name":"r.x","version":"1.0.0","dimension":"validity","severity":"info",` +
		`"fields":["ts","speed","prev_lat"],"attrs":["ignition"],"reasons":{"1":"speed {speed} at {ts}, prev {prev_lat}, ign {ignition}, {rpm} {x} {"}}`))
	if err != nil {
		t.Fatal(err)
	}
	in := speeds(250.5)[0]
	in.Signal.SetAttr("ignition", true)
	got := m.Reason(1, &in)
	want := "speed 250.5 at " + in.Signal.TS.Format(time.RFC3339Nano) + ", prev missing, ign 1, {rpm} {x} {"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if m.Reason(0, &in) != "" {
		t.Fatal("reason 0 has a text")
	}
}
