package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runStdin runs the command line in-process with stdin read from in and
// returns its exit code and what it printed.
func runStdin(t *testing.T, in string, args ...string) (int, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(in); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	return runCaptured(t, args...)
}

const (
	jsonlGood = `{"device_id":"sim-0001","ts":"2026-11-25T10:00:00Z","lat":52.52,"lon":13.405}`
	jsonlBad  = `{"device_id":"sim-0001","ts":"not a time"}`
)

// TestDecode holds the exit codes of `fleetcore decode` (0 all decoded, 1
// any line rejected or none held a frame, 2 usage), that the end of the
// input ends a line protocol's last line, and that errors say "framing"
// once.
func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		in       string
		code     int
		has      []string
		lacks    []string
		outLines int // JSON lines printed; -1: not checked
	}{
		{name: "last_line_without_line_end", args: []string{"-protocol", "jsonl"}, in: jsonlGood,
			code: 0, has: []string{`"device_id":"sim-0001"`}, lacks: []string{"error", "truncated"}, outLines: 1},
		{name: "escaped_line_end_still_frames", args: []string{"-protocol", "jsonl"}, in: jsonlGood + `\n` + "\n",
			code: 0, has: []string{`"device_id":"sim-0001"`}, lacks: []string{"error"}, outLines: 1},
		{name: "two_lines", args: []string{"-protocol", "jsonl"}, in: jsonlGood + "\n" + jsonlGood + "\n",
			code: 0, outLines: 2},
		{name: "some_rejected", args: []string{"-protocol", "jsonl"}, in: jsonlGood + "\n" + jsonlBad + "\n",
			code: 1, has: []string{`"frame":2,"error":`, "fleetcore: decode: 1 of 2 frames rejected"}, outLines: 2},
		{name: "all_rejected", args: []string{"-protocol", "jsonl"}, in: jsonlBad + "\n" + jsonlBad + "\n",
			code: 1, has: []string{"2 of 2 frames rejected"}, outLines: 2},
		{name: "bad_hex", args: []string{"-protocol", "gt06", "-hex"}, in: "zz\n",
			code: 1, has: []string{"decoding hex"}, outLines: 1},
		{name: "no_frame", args: []string{"-protocol", "jsonl"}, in: "# only a comment\n\n",
			code: 1, has: []string{"no frame in the input"}, outLines: 0},
		{name: "framing_said_once", args: []string{"-protocol", "gt06", "-hex"}, in: "deadbeef\n",
			code: 1, has: []string{`"error":"framing gt06 packet: malformed frame`}, lacks: []string{"framing: framing"}, outLines: 1},
		{name: "truncated_binary_frame", args: []string{"-protocol", "gt06", "-hex"}, in: "78780d01\n",
			code: 1, has: []string{`"error":"malformed frame: truncated frame (4 bytes left)"`}, lacks: []string{"framing:"}, outLines: 1},
		{name: "missing_protocol", args: nil, in: jsonlGood,
			code: 2, has: []string{"fleetcore: decode: -protocol or -wasm is required (known protocols: ", "jsonl"}, lacks: []string{`unknown protocol ""`}, outLines: -1},
		{name: "unknown_protocol", args: []string{"-protocol", "teltonka"}, in: jsonlGood,
			code: 2, has: []string{`unknown protocol "teltonka" (known: `}, outLines: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runStdin(t, tc.in, append([]string{"decode"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.code, out)
			}
			for _, s := range tc.has {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
			if tc.outLines >= 0 {
				if n := strings.Count(out, `{"frame":`); n != tc.outLines {
					t.Errorf("%d JSON lines, want %d:\n%s", n, tc.outLines, out)
				}
			}
		})
	}
}

// speedRule builds the example speed rule for the rules commands.
func speedRule(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatalf("wat2wasm not found: install wabt (apt-get install -y wabt, or `make rules-tools`): %v", err)
	}
	out := filepath.Join(t.TempDir(), "speed.wasm")
	if msg, err := exec.Command(bin, "../../checks-wasm/examples/wat/speed_range.wat", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, msg)
	}
	return out
}

// TestRulesTest holds the exit codes of `fleetcore rules test`: 0 when
// the rule judged every line (a fail verdict included), 1 when a line
// was skipped or none held a signal, 2 on usage.
func TestRulesTest(t *testing.T) {
	rule := speedRule(t)
	const (
		pass     = `{"frame":1,"device_id":"a","ts":"2026-01-01T00:00:00Z","speed":50}`
		fail     = `{"frame":2,"device_id":"a","ts":"2026-01-01T00:00:01Z","speed":350}`
		rejected = `{"frame":3,"error":"decoding osmand frame: checksum mismatch"}`
	)
	for _, tc := range []struct {
		name string
		args []string
		in   string
		code int
		has  string
	}{
		{"all_judged", []string{rule}, pass + "\n" + fail + "\n", 0, `"status":"fail"`},
		{"one_skipped", []string{rule}, pass + "\n" + rejected + "\n", 1, "rules test: 1 of 2 input lines skipped"},
		{"all_skipped", []string{rule}, rejected + "\nnot json\n", 1, "rules test: 2 of 2 input lines skipped"},
		{"empty_input", []string{rule}, "\n", 1, "rules test: no signal in the input"},
		{"no_rule", nil, pass, 2, "Usage: fleetcore rules test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"rules", "test", "-q", "-cache-dir", ""}, tc.args...)
			code, out := runStdin(t, tc.in, args...)
			if code != tc.code || !strings.Contains(out, tc.has) {
				t.Errorf("exit code %d (want %d), output (want %q):\n%s", code, tc.code, tc.has, out)
			}
		})
	}
}

// TestHelp holds the -h texts: no empty "Flags:" section, and the exit
// codes where a command's exit code judges its input.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		has   []string
		lacks []string
	}{
		{[]string{"rules", "inspect", "-h"}, []string{"Usage: fleetcore rules inspect RULE.wasm [-wat]", "-wat"}, nil},
		{[]string{"decode", "-h"}, []string{"Flags:", "-protocol", "Exit status: 0 when every input line"}, nil},
		{[]string{"rules", "test", "-h"}, []string{"Flags:", "-input", "Exit status: 0 when the rule judged"}, nil},
		{[]string{"rules", "backtest", "-h"}, []string{"Usage: fleetcore rules backtest RULE -from TIME -to TIME", "-config", "Exit status: 0 when the rule was evaluated"}, nil},
		{[]string{"rules", "-h"}, []string{"backtest RULE -from T -to T"}, nil},
		{[]string{"decode", "-h"}, []string{"-wasm", "-corpus", "-options", "-now", "the -wasm module did not load"}, nil},
		{[]string{"decoders", "-h"}, []string{"test DECODER.wasm [-input CAPTURE]", "inspect DECODER.wasm", "list -dir DIR"}, nil},
		{[]string{"decoders", "test", "-h"}, []string{"Flags:", "-input", "-corpus", "-options", "Exit status: 0 when the module loaded"}, nil},
		{[]string{"decoders", "inspect", "-h"}, []string{"Usage: fleetcore decoders inspect DECODER.wasm"}, []string{"Flags:"}},
		{[]string{"decoders", "list", "-h"}, []string{"-dir", "Exit status: 0 when every .wasm file"}, nil},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			code, out := runCaptured(t, tc.args...)
			if code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			for _, s := range tc.has {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}
}
