package checklang_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/plugins/checklang"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

func checkSrc(failIf string) string {
	return "check \"hostile.x\" {\n  dimension = \"validity\"\n  fail_if = \"" + failIf + "\"\n}\n"
}

// TestHostileExpressions: every hostile or broken input is refused at load
// with an error naming file, line and column and saying what is wrong.
func TestHostileExpressions(t *testing.T) {
	deep := strings.Repeat("(", 200) + "speed" + strings.Repeat(")", 200) + " > 1"
	nots := strings.Repeat("not ", 100) + "speed > 1"
	negs := strings.Repeat("-", 100) + "speed > 1"
	long := strings.Repeat("speed + ", 400) + "speed > 1"
	wide := strings.Repeat("speed + ", 200) + "speed > 1"
	calls := strings.Repeat("abs(", 50) + "speed" + strings.Repeat(")", 50) + " > 1"
	cases := []struct {
		name, expr, want string
		col              int // 0: do not check
	}{
		{"deep nesting", deep, "nested more than 32 deep", 0},
		{"deep not", nots, "nested more than 32 deep", 0},
		{"deep minus", negs, "nested more than 32 deep", 0},
		{"deep calls", calls, "nested more than 32 deep", 0},
		{"very long", long, "at most 2048 are allowed", 0},
		{"too many nodes", wide, "more than 256 operators and operands", 0},
		{"huge literal", "speed > 1e400", `bad number "1e400"`, 22},
		{"literal out of range", "speed > 1e20", "out of range", 22},
		{"long literal", "speed > " + strings.Repeat("1", 40), "longer than 32 characters", 22},
		{"division by zero", "speed / 0 > 1", "division by zero", 20},
		{"division by constant zero", "speed / (2 - 2) > 1", "division by zero", 20},
		{"unknown field", "speed > 200 and sped < 3", `unknown field "sped"`, 30},
		{"unknown function", "foo(speed) > 1", `unknown function "foo"`, 14},
		{"arity", "between(speed, 1) ", "between takes 3 arguments, got 2", 14},
		{"number as condition", "speed", "expression is a number, want a condition", 14},
		{"condition as number", "(speed > 1) + 1 > 0", "the left operand of + must be a number", 21},
		{"and of numbers", "speed and lat", "must be a condition", 14},
		{"chained comparison", "1 < speed < 3", "comparisons do not chain", 24},
		{"c operators", "speed > 1 && lat > 2", `write and`, 24},
		{"assignment", "speed = 1", `write == to compare`, 20},
		{"empty", "   ", "empty expression", 14},
		{"unclosed", "(speed > 1", "missing )", 24},
		{"trailing", "speed > 1 2", `unexpected "2"`, 24},
		{"bad character", "speed > 1 $", "unexpected character", 24},
		{"function as field", "distance_m > 1", "distance_m is a function", 14},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checklang.CompileFile("hostile.check.hcl", []byte(checkSrc(tc.expr)))
			if err == nil {
				t.Fatal("compiled")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "hostile.check.hcl:3:") || !strings.Contains(msg, "fail_if: ") {
				t.Fatalf("error %q, want hostile.check.hcl:3:…: fail_if: …%s", msg, tc.want)
			}
			if tc.col > 0 && !strings.HasPrefix(msg, "hostile.check.hcl:3:"+itoa(tc.col)+": ") {
				t.Fatalf("error %q, want column %d", msg, tc.col)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestBadCheckFiles: mistakes in the check block itself.
func TestBadCheckFiles(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"hcl syntax", "check \"a\" {\n  dimension = \n}\n", "bad.check.hcl:2:"},
		{"unknown key", "check \"a\" {\n  dimension = \"validity\"\n  fial_if = \"speed > 1\"\n}\n", `bad.check.hcl:3:3: Unsupported argument`},
		{"missing fail_if", "check \"a\" {\n  dimension = \"validity\"\n}\n", `Missing required argument`},
		{"bad dimension", "check \"a\" {\n  dimension = \"speed\"\n  fail_if = \"speed > 1\"\n}\n", `bad.check.hcl:2:15: dimension "speed" must be one of validity`},
		{"bad name", "check \"Speed Limit\" {\n  dimension = \"validity\"\n  fail_if = \"speed > 1\"\n}\n", `bad.check.hcl:1:7: check name "Speed Limit"`},
		{"two checks", "check \"a\" {\n  dimension = \"validity\"\n  fail_if = \"speed > 1\"\n}\ncheck \"b\" {\n  dimension = \"validity\"\n  fail_if = \"speed > 1\"\n}\n", "exactly one check block, found 2"},
		{"no check", "# nothing\n", "exactly one check block, found 0"},
		{"bad attr", "check \"a\" {\n  dimension = \"validity\"\n  attrs = [\"speed\"]\n  fail_if = \"speed > 1\"\n}\n", `attribute name "speed" is a field`},
		{"placeholder", "check \"a\" {\n  dimension = \"validity\"\n  fail_if = \"speed > 1\"\n  reason = \"{sped} too fast\"\n}\n", `placeholder {sped} names no field`},
		{"test field", "check \"a\" {\n  dimension = \"validity\"\n  fail_if = \"speed > 1\"\n  test \"t\" {\n    in = { lat = 1 }\n    want = \"pass\"\n  }\n}\n", `bad.check.hcl:5:10: in: the check does not read "lat"`},
		{"test want", "check \"a\" {\n  dimension = \"validity\"\n  fail_if = \"speed > 1\"\n  test \"t\" {\n    want = \"warn\"\n  }\n}\n", `want warn, but the check has no warn_if`},
		{"heredoc position", "check \"a\" {\n  dimension = \"validity\"\n  fail_if = <<-E\n    speed > x\n  E\n}\n", `bad.check.hcl:3:13: fail_if: unknown field "x" (canonical fields`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checklang.CompileFile("bad.check.hcl", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestHostileRuntime: the limits of the language keep the biggest check it
// accepts a small module that evaluates a large batch at once; runtime
// division by zero is IEEE (±Inf, or NaN = missing), never a trap.
func TestHostileRuntime(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	big := strings.Repeat("abs(distance_m() / dt_s() - speed / (fuel - fuel)) + ", 20) + "speed > 1"
	m, err := checklang.CompileFile("big.check.hcl", []byte(checkSrc(big)))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Wasm) > 64<<10 {
		t.Fatalf("module is %d bytes", len(m.Wasm))
	}
	r := load(t, h, m.Wasm)
	in := randBatch(newRand(), 65536)
	v, err := r.Check(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != len(in) {
		t.Fatalf("%d verdicts for %d signals", len(v), len(in))
	}
	// x / 0 is +Inf: a comparison with it is an answer, not a trap.
	m, err = checklang.CompileFile("div.check.hcl", []byte(checkSrc("speed / (speed - speed) > 1e15")))
	if err != nil {
		t.Fatal(err)
	}
	r = load(t, h, m.Wasm)
	in = randBatch(newRand(), 100)
	for i := range in {
		in[i].Signal.Speed = float64(i + 1)
	}
	v, err = r.Check(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if v[i] != (wasmrule.Verdict{Status: wasmrule.StatusFail, Reason: 1}) {
			t.Fatalf("signal %d: %v, want fail (x/0 = +Inf)", i, v[i])
		}
	}
}

// TestPlaceholderFields: a field named only in a reason is still requested
// from the host, so the finding's text can show it.
func TestPlaceholderFields(t *testing.T) {
	src := "check \"p.x\" {\n dimension = \"validity\"\n fail_if = \"speed > 1\"\n reason = \"{speed} km/h at {lat},{lon}\"\n}\n"
	cs, err := checklang.ParseFile("p.check.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cs[0].Fields(), ","); got != "lat,lon,speed" {
		t.Fatalf("fields %s", got)
	}
	if _, err := checklang.CompileFile("p.check.hcl", []byte(strings.Replace(src, "{lat}", "{now}", 1))); err == nil {
		t.Fatal("{now} accepted as a placeholder")
	}
}
