package wasmrule

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

func TestRunTest(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "speed.wasm")
	writeFile(t, wasm, speedRange(t))
	input := strings.Join([]string{
		`{"frame":1,"device_id":"a","ts":"2026-01-01T00:00:00Z","speed":50,"protocol":"osmand"}`,
		`{"frame":2,"error":"decoding osmand frame: checksum mismatch"}`,
		``,
		`{"frame":3,"device_id":"a","ts":"2026-01-01T00:00:01Z","speed":350}`,
		`not json`,
		`{"frame":4,"device_id":"b","ts":"2026-01-01T00:00:01Z"}`,
		`{"frame":5,"device_id":"b","ts":"2026-01-01T00:00:02Z","speed":-4,"attrs":{"io1":1}}`,
	}, "\n")
	var out, summary bytes.Buffer
	err := RunTest(context.Background(), wasm, strings.NewReader(input), &out, TestOptions{BatchSize: 2, Summary: &summary, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`{"line":1,"status":"pass","reason":0,"text":""}`,
		`{"line":2,"status":"skipped","reason":0,"text":"frame 2 not decoded: decoding osmand frame: checksum mismatch"}`,
		`{"line":4,"status":"fail","reason":2,"text":"speed above 300 km/h"}`,
		`{"line":5,"status":"skipped","reason":0,"text":"not a JSON object: invalid character 'o' in literal null (expecting 'u')"}`,
		`{"line":6,"status":"not_applicable","reason":0,"text":""}`,
		`{"line":7,"status":"fail","reason":1,"text":"speed below 0 km/h"}`,
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if got := summary.String(); got != "example.speed_range 1.0.0: fail=2 not_applicable=1 pass=1 skipped=2\n" {
		t.Errorf("summary %q", got)
	}

	// A failing sibling test file makes the run fail after the output.
	writeFile(t, filepath.Join(dir, "speed"+TestsSuffix), []byte(`{"name":"bad","in":{"speed":1},"want":"fail","reason":1}`))
	out.Reset()
	err = RunTest(context.Background(), wasm, strings.NewReader(input), &out, TestOptions{Now: t0})
	if err == nil || !strings.Contains(err.Error(), `"bad": want fail reason 1, got pass`) || out.String() != want {
		t.Errorf("failing self-test: err %v, output %q", err, out.String())
	}
}

func TestRunTestNotEvaluated(t *testing.T) {
	wasm := filepath.Join(t.TempDir(), "hostile.wasm")
	writeFile(t, wasm, wat2wasm(t, hostileSrc(t, nil)))
	input := `{"device_id":"a","ts":"2026-01-01T00:00:00Z","speed":-3}` + "\n" +
		`{"device_id":"a","ts":"2026-01-01T00:00:01Z","speed":-3}` + "\n" +
		`{"device_id":"a","ts":"2026-01-01T00:00:02Z","speed":7}` + "\n"
	var out bytes.Buffer
	err := RunTest(context.Background(), wasm, strings.NewReader(input), &out, TestOptions{BatchSize: 2, Now: t0})
	if KindOf(err) != KindTrap {
		t.Fatalf("err %v, want a trap", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"status":"not_evaluated"`) ||
		!strings.Contains(lines[1], `"status":"not_evaluated"`) || lines[2] != `{"line":3,"status":"pass","reason":0,"text":""}` {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestLinkByDeviceTime(t *testing.T) {
	at := func(dev string, sec int) signal.Signal {
		return signal.New(dev, t0.Add(time.Duration(sec)*time.Second))
	}
	// Teltonika sends a frame's records newest first.
	sigs := []signal.Signal{at("a", 5), at("a", 3), at("b", 1), at("a", 4), at("a", 4)}
	in := make([]Input, len(sigs))
	linkByDeviceTime(sigs, in)
	prevSec := func(i int) int {
		if in[i].Prev == nil {
			return -1
		}
		return int(in[i].Prev.TS.Sub(t0) / time.Second)
	}
	// a: 3 (idx1) → 4 (idx3) → 4 (idx4) → 5 (idx0)
	want := []int{4, -1, -1, 3, 4}
	for i, w := range want {
		if prevSec(i) != w {
			t.Errorf("signal %d: prev at %d s, want %d", i, prevSec(i), w)
		}
	}
	if in[4].Prev != &sigs[3] {
		t.Error("equal times do not keep the input order")
	}
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "speed.wasm")
	writeFile(t, wasm, speedRange(t))
	var out bytes.Buffer
	if err := Inspect(context.Background(), wasm, &out); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"name": "example.speed_range"`, "fc_check(i32, i32) -> (i32)", "memory (memory)",
		"imports:      (none)", "self-test:    5 of 5 cases pass", "compile:", "300.1 fails -> fail 2"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("inspect output lacks %q:\n%s", s, out.String())
		}
	}
	bad := filepath.Join(dir, "bad.wasm")
	writeFile(t, bad, wat2wasm(t, hostileSrc(t, map[string]string{"ABI": "3"})))
	out.Reset()
	err := Inspect(context.Background(), bad, &out)
	if KindOf(err) != KindInvalid || !strings.Contains(out.String(), "status:       refused") {
		t.Errorf("inspect of a bad module: %v\n%s", err, out.String())
	}
}
