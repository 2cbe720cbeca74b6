package wasmrule

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins/checklang"
	"github.com/fleetcore/fleetcore/signal"
)

// TestOptions tunes RunTest.
type TestOptions struct {
	// Now is the host clock for every line (zero: the time RunTest starts),
	// so that one run judges every line against the same instant.
	Now time.Time
	// BatchSize signals per fc_check call (default DefaultBatchSize).
	BatchSize int
	// CacheDir is the compilation cache ("" = none).
	CacheDir string
	// Summary, when set, receives a one-line count per status at the end.
	Summary io.Writer
}

// TestLine is one output line of RunTest.
type TestLine struct {
	Line   int    `json:"line"`
	Status string `json:"status"` // pass, warn, fail, not_applicable; skipped or not_evaluated
	Reason uint16 `json:"reason"`
	Text   string `json:"text"`
}

// inputLine is a line of `fleetcore decode` output.
type inputLine struct {
	Frame int    `json:"frame"`
	Error string `json:"error"`
}

// Statuses of RunTest's lines that are not a verdict of the rule.
const (
	StatusSkipped      = "skipped"       // the input line is not a decoded signal
	StatusNotEvaluated = "not_evaluated" // the rule could not evaluate the signal
)

// TestSummary counts a test run's output lines by status: a verdict
// (pass, warn, fail, not_applicable), StatusSkipped or StatusNotEvaluated.
type TestSummary map[string]int

// Lines is the number of output lines (non-blank input lines).
func (s TestSummary) Lines() int {
	n := 0
	for _, c := range s {
		n += c
	}
	return n
}

// Evaluated is the number of lines the rule gave a verdict on.
func (s TestSummary) Evaluated() int {
	return s.Lines() - s[StatusSkipped] - s[StatusNotEvaluated]
}

// RunTest is Test without the summary.
func RunTest(ctx context.Context, wasmPath string, in io.Reader, out io.Writer, opts TestOptions) error {
	_, err := Test(ctx, wasmPath, in, out, opts)
	return err
}

// Test evaluates the rule in wasmPath over signals read from in (the
// JSON lines `fleetcore decode` prints: canonical signal JSON plus "frame")
// and writes one TestLine per non-blank input line to out. Lines carrying
// "error" (frames the decoder rejected) and lines that are not JSON are
// reported with status "skipped". prev_* come from the previous signal of
// the same device by device time (ties in line order), as in the server: for
// input in device-time order that is the previous line of the same device.
// The rule's self-tests run first; a failing self-test or a
// batch that could not be evaluated makes Test return an error after all
// lines are written. The summary counts the lines written by status; a
// skipped line is not an error (the caller judges, as `fleetcore rules
// test` does with its exit code).
func Test(ctx context.Context, wasmPath string, in io.Reader, out io.Writer, opts TestOptions) (TestSummary, error) {
	src, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, fmt.Errorf("reading rule: %w", err)
	}
	wasm, err := ModuleBytes(wasmPath, src)
	if err != nil {
		return nil, err
	}
	host, err := NewHost(Config{CacheDir: opts.CacheDir, BatchSize: opts.BatchSize, MaxFailures: 1 << 30})
	if err != nil {
		return nil, err
	}
	defer host.Close(ctx)
	rule, err := host.Compile(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", wasmPath, err)
	}
	defer rule.Close(ctx)
	var problems []error
	var extra []TestCase
	if tb, err := os.ReadFile(testsPath(wasmPath)); err == nil {
		if extra, err = ReadTests(bytes.NewReader(tb)); err != nil {
			problems = append(problems, err)
		}
	}
	if err := rule.SelfTest(ctx, extra); err != nil {
		problems = append(problems, err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	meta := rule.Meta()
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)
	counts := TestSummary{}
	emit := func(l TestLine) error {
		counts[l.Status]++
		if err := enc.Encode(l); err != nil {
			return fmt.Errorf("writing result: %w", err)
		}
		return nil
	}

	type entry struct {
		line int
		skip string // why the line is skipped; "" for a signal
	}
	var (
		entries []entry
		signals []signal.Signal
	)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 256*1024), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var il inputLine
		var sj signal.JSON
		switch err := json.Unmarshal(b, &il); {
		case err != nil:
			entries = append(entries, entry{line: n, skip: "not a JSON object: " + err.Error()})
		case il.Error != "":
			entries = append(entries, entry{line: n, skip: fmt.Sprintf("frame %d not decoded: %s", il.Frame, il.Error)})
		default:
			if err := json.Unmarshal(b, &sj); err != nil {
				entries = append(entries, entry{line: n, skip: "not a signal: " + err.Error()})
				break
			}
			signals = append(signals, sj.Signal())
			entries = append(entries, entry{line: n})
		}
	}
	if err := sc.Err(); err != nil {
		return counts, fmt.Errorf("reading signals: %w", err)
	}

	inputs := make([]Input, len(signals))
	for i := range signals {
		inputs[i] = Input{Signal: signals[i], Now: now}
	}
	linkByDeviceTime(signals, inputs)

	verdicts := make([]Verdict, len(inputs))
	evalErr := make([]error, len(inputs))
	batchMax := host.Config().BatchSize
	for i := 0; i < len(inputs); {
		got, err := rule.Check(ctx, inputs[i:])
		copy(verdicts[i:], got)
		i += len(got)
		if err != nil {
			if KindOf(err) == KindCanceled {
				return counts, err
			}
			problems = append(problems, err)
			end := min(i+batchMax, len(inputs))
			for j := i; j < end; j++ {
				evalErr[j] = err
			}
			i = end
		}
	}
	k := 0
	for _, e := range entries {
		l := TestLine{Line: e.line, Status: StatusSkipped, Text: e.skip}
		if e.skip == "" {
			if evalErr[k] != nil {
				l = TestLine{Line: e.line, Status: StatusNotEvaluated, Text: evalErr[k].Error()}
			} else {
				v := verdicts[k]
				l = TestLine{Line: e.line, Status: v.Status.String(), Reason: v.Reason, Text: meta.Reason(v.Reason, &inputs[k])}
			}
			k++
		}
		if err := emit(l); err != nil {
			return counts, err
		}
	}
	if err := bw.Flush(); err != nil {
		return counts, fmt.Errorf("writing results: %w", err)
	}
	if opts.Summary != nil {
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s=%d", k, counts[k])
		}
		fmt.Fprintf(opts.Summary, "%s %s: %s\n", meta.Name, meta.Version, strings.Join(parts, " "))
	}
	return counts, errors.Join(problems...)
}

// InspectOptions tunes InspectWith.
type InspectOptions struct {
	// WAT prints the module generated from a check file as WebAssembly
	// text after the report.
	WAT bool
}

// Inspect prints what a rule module is: file size and hash, cold compile
// and instantiate time, imports and exports, metadata, and the self-test
// outcome. It returns the load or self-test error after printing what it
// could. A check file (.check.hcl) is compiled first and the generated
// module is inspected.
func Inspect(ctx context.Context, wasmPath string, out io.Writer) error {
	return InspectWith(ctx, wasmPath, out, InspectOptions{})
}

// InspectWith is Inspect with options.
func InspectWith(ctx context.Context, wasmPath string, out io.Writer, opts InspectOptions) error {
	src, err := os.ReadFile(wasmPath)
	if err != nil {
		return fmt.Errorf("reading rule: %w", err)
	}
	w := &errWriter{w: out}
	w.printf("file:         %s\n", wasmPath)
	wasm := src
	var gen *checklang.Module
	if strings.HasSuffix(wasmPath, CheckSuffix) {
		w.printf("source:       declarative check, %d bytes\n", len(src))
		if gen, err = checklang.CompileFile(wasmPath, src); err != nil {
			w.printf("status:       refused\n")
			w.printf("error:        %v\n", err)
			return errors.Join(fmt.Errorf("compiling check: %w", err), w.err)
		}
		wasm = gen.Wasm
		w.printf("generated:    rule module (emitted by fleetcore, no toolchain)\n")
	}
	sum := sha256.Sum256(wasm)
	w.printf("size:         %d bytes\n", len(wasm))
	w.printf("sha256:       %s\n", hex.EncodeToString(sum[:]))
	host, err := NewHost(Config{})
	if err != nil {
		return err
	}
	defer host.Close(ctx)
	start := time.Now()
	rule, err := host.Compile(ctx, wasm)
	if err != nil {
		w.printf("status:       refused\n")
		w.printf("error:        %v\n", err)
		return errors.Join(fmt.Errorf("loading %s: %w", wasmPath, err), w.err)
	}
	defer rule.Close(ctx)
	w.printf("compile:      %v (cold, no cache)\n", rule.CompileTime().Round(time.Microsecond))
	w.printf("instantiate:  %v (first instance, incl. _initialize)\n", (time.Since(start) - rule.CompileTime()).Round(time.Microsecond))
	w.printf("abi:          %d\n", ABIVersion)
	imports := rule.Imports()
	sort.Strings(imports)
	if len(imports) == 0 {
		imports = []string{"(none)"}
	}
	w.printf("imports:      %s\n", strings.Join(imports, "\n              "))
	exports := rule.Exports()
	sort.Strings(exports)
	w.printf("exports:      %s\n", strings.Join(exports, "\n              "))
	meta := rule.Meta()
	short := meta
	short.Tests = nil
	var mj bytes.Buffer
	menc := json.NewEncoder(&mj)
	menc.SetEscapeHTML(false)
	menc.SetIndent("              ", "  ")
	_ = menc.Encode(short)
	w.printf("metadata:     %s", mj.Bytes())
	for i, tc := range meta.Tests {
		label := "              "
		if i == 0 {
			label = "tests:        "
		}
		w.printf("%s%s -> %s %d\n", label, tc.Name, tc.Want, tc.Reason)
	}
	var extra []TestCase
	tp := testsPath(wasmPath)
	if tb, err := os.ReadFile(tp); err == nil {
		extra, err = ReadTests(bytes.NewReader(tb))
		if err != nil {
			w.printf("tests file:   %s: %v\n", tp, err)
			return errors.Join(err, w.err)
		}
		w.printf("tests file:   %s (%d cases)\n", tp, len(extra))
	}
	total := len(meta.Tests) + len(extra)
	if err := rule.SelfTest(ctx, extra); err != nil {
		w.printf("self-test:    FAILED: %v\n", err)
		return errors.Join(err, w.err)
	}
	w.printf("self-test:    %d of %d cases pass\n", total, total)
	if opts.WAT {
		if gen == nil {
			w.printf("wat:          only for a check file (.check.hcl)\n")
		} else {
			w.printf("wat:\n%s", gen.WAT())
		}
	}
	return w.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	if _, err := fmt.Fprintf(e.w, format, args...); err != nil {
		e.err = fmt.Errorf("writing inspection: %w", err)
	}
}

// linkByDeviceTime sets each input's Prev to the same device's previous
// signal by device time; equal times keep their input order.
func linkByDeviceTime(signals []signal.Signal, inputs []Input) {
	byDev := make(map[string][]int)
	for i := range signals {
		byDev[signals[i].DeviceID] = append(byDev[signals[i].DeviceID], i)
	}
	for _, idx := range byDev {
		sort.SliceStable(idx, func(a, b int) bool { return signals[idx[a]].TS.Before(signals[idx[b]].TS) })
		for j := 1; j < len(idx); j++ {
			inputs[idx[j]].Prev = &signals[idx[j-1]]
		}
	}
}
